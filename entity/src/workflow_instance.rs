//! One running (or decided) application: its state, route progress, context and audit chain head.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_instances")]
pub struct Model {
    /// UUID v7 as a lowercase hyphenated string.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub workflow_id: String,
    pub workflow_version: i32,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// Optimistic concurrency counter; starts at 1 and grows by one per transition.
    pub version: i64,
    #[sea_orm(column_type = "Text")]
    pub submitter: String,
    /// The owning organisation, for authorisation.
    #[sea_orm(column_type = "Text", nullable)]
    pub organisation_id: Option<String>,
    /// Typed context of the workflow kind, as JSON text.
    #[sea_orm(column_type = "Text")]
    pub context: String,
    /// Route progress (step cursor, approvals, pending post-reviews), as JSON text.
    #[sea_orm(column_type = "Text")]
    pub progress: String,
    /// A correction is a new instance linked to the decided one it corrects.
    #[sea_orm(column_type = "Text", nullable)]
    pub corrects_instance_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// `seq` of the last audit record of this instance (0 before the first one).
    pub audit_seq: i64,
    /// `hash` of the last audit record of this instance (64 zeros before the first one).
    #[sea_orm(column_type = "Text")]
    pub audit_head: String,
    /// The organisation of the route step the instance waits at (empty when the step names
    /// none; none when it stands at no step).
    #[sea_orm(column_type = "Text", nullable)]
    pub waiting_org: Option<String>,
    /// The roles that may act at that step, each between spaces (` officer `, ` a b `); none
    /// when the instance stands at no route step.
    #[sea_orm(column_type = "Text", nullable)]
    pub waiting_roles: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::workflow_definition::Entity",
        from = "(Column::WorkflowId, Column::WorkflowVersion)",
        to = "(super::workflow_definition::Column::WorkflowId, super::workflow_definition::Column::Version)"
    )]
    WorkflowDefinition,
    #[sea_orm(has_many = "super::audit_record::Entity")]
    AuditRecord,
    #[sea_orm(has_many = "super::outbox::Entity")]
    Outbox,
    #[sea_orm(has_many = "super::timer::Entity")]
    Timer,
}

impl Related<super::workflow_definition::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowDefinition.def()
    }
}

impl Related<super::audit_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditRecord.def()
    }
}

impl Related<super::outbox::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Outbox.def()
    }
}

impl Related<super::timer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Timer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
