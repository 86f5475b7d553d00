//! An assessment recorded by mistake is withdrawn, never deleted: who, when and why are kept on
//! the row (and the withdrawal is audited in the permission instance's chain, as its record is).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            timestamp_with_time_zone_null(PiaAssessments::WithdrawnAt),
            text_null(PiaAssessments::WithdrawnBy),
            text_null(PiaAssessments::WithdrawalReason),
            big_integer_null(PiaAssessments::WithdrawalAuditSeq),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PiaAssessments::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            PiaAssessments::WithdrawalAuditSeq,
            PiaAssessments::WithdrawalReason,
            PiaAssessments::WithdrawnBy,
            PiaAssessments::WithdrawnAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PiaAssessments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PiaAssessments {
    Table,
    WithdrawnAt,
    WithdrawnBy,
    WithdrawalReason,
    WithdrawalAuditSeq,
}
