//! A business-day timer started by a transition (reminder, escalation, deadline).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "timers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text", unique)]
    pub idempotency_key: String,
    #[sea_orm(column_type = "Text")]
    pub instance_id: String,
    /// The timer's name in the workflow definition.
    #[sea_orm(column_type = "Text")]
    pub timer: String,
    /// What happens when it fires (an event or effect name from the definition).
    #[sea_orm(column_type = "Text")]
    pub action: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub role: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub template: String,
    pub business_days: i32,
    pub started_at: DateTimeUtc,
    pub cancelled_at: Option<DateTimeUtc>,
    pub fired_at: Option<DateTimeUtc>,
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
