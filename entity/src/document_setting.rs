//! `document_settings`: one municipality's settings for the documents it files.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "document_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub municipality_id: String,
    /// The day of the latest serious incident (重大事故) concerning specific personal information
    /// at the municipality (the 評価実施機関), if any.
    pub last_serious_incident_on: Option<Date>,
    /// The kinds of change that are significant (重要な変更), as a JSON array of names; `None`
    /// for the default set.
    #[sea_orm(column_type = "Text", nullable)]
    pub significant_changes: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
