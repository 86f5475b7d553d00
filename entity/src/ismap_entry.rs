//! `ismap_entries`: one registered cloud service of one ISMAP list import.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ismap_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub import_id: String,
    /// 登録番号, e.g. `C21-0005-2`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub registration_number: String,
    /// サービス名称.
    #[sea_orm(column_type = "Text")]
    pub service_name: String,
    /// 事業者名.
    #[sea_orm(column_type = "Text")]
    pub provider: String,
    /// 登録日.
    pub registration_date: Date,
    /// 有効期限.
    pub expiry_date: Date,
    /// 備考 (empty when none).
    #[sea_orm(column_type = "Text")]
    pub remarks: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
