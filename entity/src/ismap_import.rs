//! `ismap_imports`: one import of the ISMAP cloud service list, insert-only: who, when, the
//! file's SHA-256, how it was read, and its difference from the previous import. The newest
//! (highest `sequence`) is the current list.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ismap_imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// 1, 2, …; unique, so two racing imports cannot both become the same next one.
    pub sequence: i32,
    #[sea_orm(column_type = "Text")]
    pub imported_by: String,
    pub imported_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub filename: Option<String>,
    /// SHA-256 of the uploaded bytes, hex.
    #[sea_orm(column_type = "Text")]
    pub sha256: String,
    /// `utf-8`, `utf-8-bom` or `shift_jis`.
    #[sea_orm(column_type = "Text")]
    pub encoding: String,
    /// The column mapping used, as JSON (field → header).
    #[sea_orm(column_type = "Text")]
    pub mapping: String,
    pub row_count: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub previous_id: Option<String>,
    /// The difference from the previous import, as JSON.
    #[sea_orm(column_type = "Text")]
    pub diff: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
