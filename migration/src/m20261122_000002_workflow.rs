//! Workflow persistence: definitions, instances, the audit hash chains and their anchors, the
//! outbox and timers. Portable SQL only (SQLite and PostgreSQL); JSON is stored as text so both
//! backends keep it byte for byte.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Genesis value of an instance's `audit_head` before its first audit record.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WorkflowDefinitions::Table)
                    .col(text(WorkflowDefinitions::WorkflowId))
                    .col(integer(WorkflowDefinitions::Version))
                    .col(text(WorkflowDefinitions::ContentHash))
                    .col(text(WorkflowDefinitions::Source))
                    .col(timestamp_with_time_zone(WorkflowDefinitions::DeployedAt))
                    .primary_key(
                        Index::create()
                            .col(WorkflowDefinitions::WorkflowId)
                            .col(WorkflowDefinitions::Version),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WorkflowInstances::Table)
                    .col(text(WorkflowInstances::Id).primary_key())
                    .col(text(WorkflowInstances::WorkflowId))
                    .col(integer(WorkflowInstances::WorkflowVersion))
                    .col(text(WorkflowInstances::State))
                    .col(big_integer(WorkflowInstances::Version).default(1))
                    .col(text(WorkflowInstances::Submitter))
                    .col(text_null(WorkflowInstances::OrganisationId))
                    .col(text(WorkflowInstances::Context))
                    .col(text(WorkflowInstances::Progress))
                    .col(text_null(WorkflowInstances::CorrectsInstanceId))
                    .col(timestamp_with_time_zone(WorkflowInstances::CreatedAt))
                    .col(timestamp_with_time_zone(WorkflowInstances::UpdatedAt))
                    .col(big_integer(WorkflowInstances::AuditSeq).default(0))
                    .col(text(WorkflowInstances::AuditHead).default(GENESIS_HASH))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_workflow_instances_definition")
                            .from(
                                WorkflowInstances::Table,
                                (
                                    WorkflowInstances::WorkflowId,
                                    WorkflowInstances::WorkflowVersion,
                                ),
                            )
                            .to(
                                WorkflowDefinitions::Table,
                                (
                                    WorkflowDefinitions::WorkflowId,
                                    WorkflowDefinitions::Version,
                                ),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_workflow_instances_corrects")
                            .from(
                                WorkflowInstances::Table,
                                WorkflowInstances::CorrectsInstanceId,
                            )
                            .to(WorkflowInstances::Table, WorkflowInstances::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_workflow_instances_workflow_state")
                    .table(WorkflowInstances::Table)
                    .col(WorkflowInstances::WorkflowId)
                    .col(WorkflowInstances::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_workflow_instances_organisation")
                    .table(WorkflowInstances::Table)
                    .col(WorkflowInstances::OrganisationId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(audit_records_table(AuditRecords::Table, true))
            .await?;
        manager.create_index(audit_records_seq_index()).await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditAnchors::Table)
                    .col(big_integer(AuditAnchors::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditAnchors::At))
                    .col(text(AuditAnchors::Heads))
                    .col(text(AuditAnchors::PrevHash))
                    .col(text(AuditAnchors::Hash))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditAnchorHeads::Table)
                    .col(text(AuditAnchorHeads::InstanceId).primary_key())
                    .col(big_integer(AuditAnchorHeads::Seq))
                    .col(text(AuditAnchorHeads::Hash))
                    .col(big_integer(AuditAnchorHeads::AnchorSeq))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(text(Outbox::Id).primary_key())
                    .col(text_uniq(Outbox::IdempotencyKey))
                    .col(text_null(Outbox::InstanceId))
                    .col(text(Outbox::Effect))
                    .col(text_null(Outbox::Template))
                    .col(text(Outbox::Recipients))
                    .col(text(Outbox::Payload))
                    .col(
                        text(Outbox::Status)
                            .default("pending")
                            .check(Expr::col(Outbox::Status).is_in(["pending", "sent", "failed"])),
                    )
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_instance")
                            .from(Outbox::Table, Outbox::InstanceId)
                            .to(WorkflowInstances::Table, WorkflowInstances::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_status_next_attempt")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Timers::Table)
                    .col(text(Timers::Id).primary_key())
                    .col(text_uniq(Timers::IdempotencyKey))
                    .col(text(Timers::InstanceId))
                    .col(text(Timers::Timer))
                    .col(text(Timers::Action))
                    .col(text_null(Timers::Role))
                    .col(text(Timers::Template))
                    .col(integer(Timers::BusinessDays))
                    .col(timestamp_with_time_zone(Timers::StartedAt))
                    .col(timestamp_with_time_zone_null(Timers::CancelledAt))
                    .col(timestamp_with_time_zone_null(Timers::FiredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_timers_instance")
                            .from(Timers::Table, Timers::InstanceId)
                            .to(WorkflowInstances::Table, WorkflowInstances::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_timers_instance")
                    .table(Timers::Table)
                    .col(Timers::InstanceId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so foreign keys never block a drop.
        manager
            .drop_table(Table::drop().table(Timers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditAnchorHeads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditAnchors::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditRecords::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WorkflowInstances::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WorkflowDefinitions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WorkflowDefinitions {
    Table,
    WorkflowId,
    Version,
    ContentHash,
    Source,
    DeployedAt,
}

#[derive(DeriveIden)]
enum WorkflowInstances {
    Table,
    Id,
    WorkflowId,
    WorkflowVersion,
    State,
    Version,
    Submitter,
    OrganisationId,
    Context,
    Progress,
    CorrectsInstanceId,
    CreatedAt,
    UpdatedAt,
    AuditSeq,
    AuditHead,
}

/// The audit records' table as `name`: with its foreign key to `workflow_instances` when
/// `bound` (as this migration made it; a later one drops the key, see
/// [`crate::m20261202_000001_audit_records_unbound`]).
pub(crate) fn audit_records_table(name: impl IntoIden, bound: bool) -> TableCreateStatement {
    let name = name.into_iden();
    let mut table = Table::create()
        .table(name.clone())
        .col(big_integer(AuditRecords::Id).auto_increment().primary_key())
        .col(text(AuditRecords::InstanceId))
        .col(big_integer(AuditRecords::Seq).check(Expr::col(AuditRecords::Seq).gte(1)))
        .col(timestamp_with_time_zone(AuditRecords::At))
        .col(text(AuditRecords::ActorId))
        .col(text_null(AuditRecords::OnBehalfOf))
        .col(text(AuditRecords::Event))
        .col(text_null(AuditRecords::FromState))
        .col(text(AuditRecords::ToState))
        .col(text_null(AuditRecords::Step))
        .col(text_null(AuditRecords::Comment))
        .col(text_null(AuditRecords::RequestId))
        .col(text(AuditRecords::Details))
        .col(text(AuditRecords::PrevHash))
        .col(text(AuditRecords::Hash))
        .to_owned();
    if bound {
        table.foreign_key(&mut audit_records_instance_key(name));
    }
    table
}

/// The name of the audit records' foreign key to their instance.
pub(crate) const AUDIT_RECORDS_INSTANCE_KEY: &str = "fk_audit_records_instance";

/// [`AUDIT_RECORDS_INSTANCE_KEY`]: a record's instance must exist.
pub(crate) fn audit_records_instance_key(table: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(AUDIT_RECORDS_INSTANCE_KEY)
        .from(table.into_iden(), AuditRecords::InstanceId)
        .to(WorkflowInstances::Table, WorkflowInstances::Id)
        .to_owned()
}

/// One record per `(instance_id, seq)`: a chain cannot fork.
pub(crate) fn audit_records_seq_index() -> IndexCreateStatement {
    Index::create()
        .name("uq_audit_records_instance_seq")
        .table(AuditRecords::Table)
        .col(AuditRecords::InstanceId)
        .col(AuditRecords::Seq)
        .unique()
        .to_owned()
}

#[derive(DeriveIden)]
pub(crate) enum AuditRecords {
    Table,
    Id,
    InstanceId,
    Seq,
    At,
    ActorId,
    OnBehalfOf,
    Event,
    FromState,
    ToState,
    Step,
    Comment,
    RequestId,
    Details,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditAnchors {
    Table,
    Seq,
    At,
    Heads,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditAnchorHeads {
    Table,
    InstanceId,
    Seq,
    Hash,
    AnchorSeq,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    IdempotencyKey,
    InstanceId,
    Effect,
    Template,
    Recipients,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum Timers {
    Table,
    Id,
    IdempotencyKey,
    InstanceId,
    Timer,
    Action,
    Role,
    Template,
    BusinessDays,
    StartedAt,
    CancelledAt,
    FiredAt,
}
