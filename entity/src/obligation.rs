//! `obligations`: what a contractor of a chain in force owes its root municipality (training,
//! an on-site inspection, a follow-up), with its due day, reminder stage and closing record.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "obligations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// Names what generated it (e.g. `training:<node>:<年度>`), so generation runs once.
    #[sea_orm(column_type = "Text", unique)]
    pub generation_key: String,
    /// `training`, `training_followup`, `inspection`, `inspection_followup`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// The owner: the node's contractor.
    #[sea_orm(column_type = "Text")]
    pub organisation_id: String,
    /// The root municipality, which watches and accepts.
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    #[sea_orm(column_type = "Text")]
    pub node_id: String,
    /// The 年度 (its starting year).
    pub fiscal_year: i32,
    /// Already moved to a business day.
    pub due_on: Date,
    /// `open`, `submitted`, `returned`, `closed`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    /// The obligation that gave rise to this follow-up.
    #[sea_orm(column_type = "Text", nullable)]
    pub parent_id: Option<String>,
    /// What it is about (a finding, the staff who missed training), as JSON.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    /// The closing record (attendance record, inspection report, corrective action), as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub record: Option<String>,
    /// SHA-256 of the record's file in `files`.
    #[sea_orm(column_type = "Text", nullable)]
    pub record_file: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub record_filename: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub return_reason: Option<String>,
    /// How many reminder stages of the policy are behind it.
    pub reminder_stage: i32,
    /// The day its next reminder stage is due; `None` when none is left or it is closed.
    pub next_reminder_on: Option<Date>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
