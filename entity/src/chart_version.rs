//! `chart_versions`: one produced version of a consignment item's implementation structure
//! chart (履行体制図): the chart's data as it stood (JSON) and the SHA-256 of its SVG; marked
//! submitted once the municipality has it on file.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chart_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    /// 1, 2, … per item.
    pub number: i32,
    /// The day the chart was drawn for.
    pub as_of: Date,
    /// The chart, as JSON.
    #[sea_orm(column_type = "Text")]
    pub snapshot: String,
    #[sea_orm(column_type = "Text")]
    pub svg_sha256: String,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub created_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTimeUtc>,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
