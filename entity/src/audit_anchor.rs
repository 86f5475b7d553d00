//! One link of the global anchor chain, committing instance chain heads.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_anchors")]
pub struct Model {
    /// 1, 2, 3, … without gaps; the primary key makes racing anchors fail.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub at: DateTimeUtc,
    /// JSON text `[[instance_id, seq, hash], …]` sorted by instance id.
    #[sea_orm(column_type = "Text")]
    pub heads: String,
    #[sea_orm(column_type = "Text")]
    pub prev_hash: String,
    #[sea_orm(column_type = "Text")]
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
