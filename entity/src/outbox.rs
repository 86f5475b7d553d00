//! A side effect (notification) waiting for delivery, written in the transition's transaction.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Delivery state of an outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text", unique)]
    pub idempotency_key: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub instance_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub effect: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub template: Option<String>,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub recipients: String,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// The addresses the message was accepted for (JSON array), once sent.
    #[sea_orm(column_type = "Text", nullable)]
    pub delivered_to: Option<String>,
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
