//! `committee_submissions`: a committee submission (付議) of a consignment or a subcontract as
//! it was submitted: a snapshot of its fields, against which the next one's changes are marked.
//! Insert only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "committee_submissions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// The root municipality whose committee it went to.
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    /// The node it is about: tier 1 for a consignment (委託), below for a subcontract (再委託).
    #[sea_orm(column_type = "Text")]
    pub node_id: String,
    /// `consignment` or `subcontract`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// The submission's fields as submitted, as JSON.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    /// The day it was put before the committee.
    pub submitted_on: Date,
    #[sea_orm(column_type = "Text")]
    pub submitted_by: String,
    pub submitted_at: DateTimeUtc,
    /// The permission instance whose audit chain records it (subcontracts), and the record's seq.
    #[sea_orm(column_type = "Text", nullable)]
    pub instance_id: Option<String>,
    pub audit_seq: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
