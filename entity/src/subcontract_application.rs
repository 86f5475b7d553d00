//! `subcontract_applications`: a 再委託申請 as filed by the parent tier's contractor; its
//! decisions are the `application_targets`, one per municipality.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subcontract_applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// e.g. `令和8年度-再委-0042`, unique per applicant.
    #[sea_orm(column_type = "Text")]
    pub number: String,
    pub fiscal_year: i32,
    /// The parent tier's contractor that files it.
    #[sea_orm(column_type = "Text")]
    pub applicant_id: String,
    /// The proposed subcontractor.
    #[sea_orm(column_type = "Text")]
    pub contractor_id: String,
    /// Every field of the application, as JSON.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
