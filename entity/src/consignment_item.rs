//! `consignment_items`: one consigned task of a municipality (委託事項), the root of one chain.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consignment_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// The municipality that consigns (the root consignor of the chain).
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    /// 保有課.
    #[sea_orm(column_type = "Text", nullable)]
    pub owning_section: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// PIA handler-count bracket (`under_10`, `10_to_49`, …).
    #[sea_orm(column_type = "Text")]
    pub handler_bracket: String,
    /// Personal-data items handled, as a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub data_items: String,
    /// The PIA file (特定個人情報ファイル) the item belongs to.
    #[sea_orm(column_type = "Text")]
    pub pia_file: String,
    /// 記録媒体, e.g. cloud servers.
    #[sea_orm(column_type = "Text")]
    pub recording_medium: String,
    pub period_start: Date,
    pub period_end: Date,
    /// The tier-1 contractor.
    #[sea_orm(column_type = "Text")]
    pub contractor_id: String,
    /// 再委託の許諾方法: the municipality's policy text for subcontracts.
    #[sea_orm(column_type = "Text")]
    pub subcontract_policy: String,
    /// 登録業務の名称 (the registered work the 付議 names, e.g. 国民健康保険).
    #[sea_orm(column_type = "Text", nullable)]
    pub registered_work: Option<String>,
    /// 委託理由 (why the work is consigned, as the 付議 states it).
    #[sea_orm(column_type = "Text", nullable)]
    pub consignment_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
