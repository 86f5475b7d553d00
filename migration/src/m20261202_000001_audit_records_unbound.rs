//! The audit records lose their foreign key to `workflow_instances`.
//!
//! A record is only ever written together with its instance's row: in one statement on
//! PostgreSQL (the records of the rows the statement wrote), in one transaction on SQLite. The
//! key added nothing to that, but on PostgreSQL it cost every record a query and a row lock on
//! the instance it had just written: a third of the group commit's statement. A record whose
//! instance row is missing is reported by `verify-audit` (`instance_row_missing`), as every
//! other break of the trail is.
//!
//! SQLite cannot drop a constraint, so the table is made again without it (the same columns,
//! rows, ids and index), in one transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, TransactionTrait};

use crate::m20261122_000002_workflow::{
    audit_records_instance_key, audit_records_seq_index, audit_records_table, AuditRecords,
    AUDIT_RECORDS_INSTANCE_KEY,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild(manager, false).await,
            _ => {
                manager
                    .drop_foreign_key(
                        ForeignKey::drop()
                            .name(AUDIT_RECORDS_INSTANCE_KEY)
                            .table(AuditRecords::Table)
                            .to_owned(),
                    )
                    .await
            }
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild(manager, true).await,
            _ => {
                manager
                    .create_foreign_key(audit_records_instance_key(AuditRecords::Table))
                    .await
            }
        }
    }
}

/// SQLite: makes `audit_records` again, with the foreign key or without, keeping every row.
async fn rebuild(manager: &SchemaManager<'_>, bound: bool) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let next = Alias::new("audit_records_next");
    let txn = manager.get_connection().begin().await?;
    txn.execute(backend.build(&audit_records_table(next.clone(), bound)))
        .await?;
    txn.execute_unprepared("INSERT INTO \"audit_records_next\" SELECT * FROM \"audit_records\"")
        .await?;
    txn.execute(backend.build(Table::drop().table(AuditRecords::Table)))
        .await?;
    txn.execute(backend.build(Table::rename().table(next, AuditRecords::Table)))
        .await?;
    // The index the table had and keeps.
    txn.execute(backend.build(&audit_records_seq_index()))
        .await?;
    txn.commit().await
}
