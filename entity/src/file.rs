//! `files`: uploaded content, addressed by its SHA-256 so metadata and content commit together.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    /// Lowercase hex SHA-256 of `content`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub sha256: String,
    /// Sniffed from the content, never taken from the name.
    #[sea_orm(column_type = "Text")]
    pub media_type: String,
    pub size: i64,
    #[sea_orm(column_type = "Blob")]
    pub content: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
