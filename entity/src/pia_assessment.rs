//! `pia_assessments`: the municipality's record that it made the assessment (特定個人情報保護評価)
//! a significant change needs, before permitting the subcontract that makes it (事前). Never
//! deleted: one recorded by mistake is withdrawn (who, when, why); its record and its withdrawal
//! each have an audit record in the permission instance's chain.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pia_assessments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    #[sea_orm(column_type = "Text")]
    pub pia_file: String,
    /// The pending node whose permission makes the change.
    #[sea_orm(column_type = "Text")]
    pub node_id: String,
    /// The significant changes assessed, as a JSON array of names.
    #[sea_orm(column_type = "Text")]
    pub items: String,
    pub assessed_on: Date,
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    /// The permission instance whose audit chain holds the record.
    #[sea_orm(column_type = "Text")]
    pub instance_id: String,
    pub audit_seq: i64,
    #[sea_orm(column_type = "Text")]
    pub recorded_by: String,
    pub recorded_at: DateTimeUtc,
    /// Set when the assessment was withdrawn (recorded by mistake); it then covers nothing.
    pub withdrawn_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub withdrawn_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub withdrawal_reason: Option<String>,
    /// The withdrawal's record in the permission instance's audit chain.
    pub withdrawal_audit_seq: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
