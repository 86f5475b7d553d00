//! `document_events`: the trail of actions on documents that belong to no workflow instance
//! (an ISMAP list import, a structure chart version produced or submitted), written in the same
//! transaction as the action. Insert-only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "document_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub actor_id: String,
    /// `ismap_import`, `chart_version_created`, `chart_version_submitted`.
    #[sea_orm(column_type = "Text")]
    pub event: String,
    /// The import's or the chart version's id.
    #[sea_orm(column_type = "Text")]
    pub subject_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub request_id: Option<String>,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub details: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
