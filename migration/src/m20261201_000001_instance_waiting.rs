//! Who an instance waits for, kept on its row: the organisation of the route step it stands at
//! and the roles that may act there. The inbox then finds what waits for a user with one indexed
//! query instead of reading every instance at a step. The application writes both columns with
//! each transition; rows written before this migration are filled in when it next starts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            text_null(WorkflowInstances::WaitingOrg),
            text_null(WorkflowInstances::WaitingRoles),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WorkflowInstances::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_workflow_instances_waiting")
                    .table(WorkflowInstances::Table)
                    .col(WorkflowInstances::WaitingOrg)
                    .col(WorkflowInstances::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_workflow_instances_waiting")
                    .table(WorkflowInstances::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            WorkflowInstances::WaitingRoles,
            WorkflowInstances::WaitingOrg,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WorkflowInstances::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum WorkflowInstances {
    Table,
    WaitingOrg,
    WaitingRoles,
    UpdatedAt,
}
