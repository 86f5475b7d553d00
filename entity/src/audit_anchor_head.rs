//! The last anchored head of each instance: a derived index that lets an anchor find changed
//! heads without reading earlier anchors. Not evidence; `verify` never trusts it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_anchor_heads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub instance_id: String,
    pub seq: i64,
    #[sea_orm(column_type = "Text")]
    pub hash: String,
    /// The anchor that committed this head.
    pub anchor_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
