//! `obligation_events`: the history of an obligation (created, record submitted, accepted,
//! returned), written in the same transaction as the change. Insert-only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "obligation_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub obligation_id: String,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub actor_id: String,
    #[sea_orm(column_type = "Text")]
    pub event: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub from_status: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub to_status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub details: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
