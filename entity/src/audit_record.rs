//! One link of an instance's audit hash chain. Insert-only.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub instance_id: String,
    /// 1, 2, 3, … without gaps within one instance.
    pub seq: i64,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub actor_id: String,
    /// The principal when `actor_id` acted as deputy (代決).
    #[sea_orm(column_type = "Text", nullable)]
    pub on_behalf_of: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub event: String,
    /// `None` for the record that creates the instance.
    #[sea_orm(column_type = "Text", nullable)]
    pub from_state: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub to_state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub step: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub request_id: Option<String>,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub details: String,
    #[sea_orm(column_type = "Text")]
    pub prev_hash: String,
    #[sea_orm(column_type = "Text")]
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::workflow_instance::Entity",
        from = "Column::InstanceId",
        to = "super::workflow_instance::Column::Id"
    )]
    WorkflowInstance,
}

impl Related<super::workflow_instance::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowInstance.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
