//! The change history (変更箇所) and the committee submission (付議) of issue 6: the fields the
//! 付議 names that the data model lacked — 登録業務の名称 and 委託理由 of a consignment item, the
//! 記録媒体 of a subcontract node — and the record of each 付議 as submitted (a snapshot of its
//! fields), against which the next one's changes are marked.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(s: &str) -> Alias {
    Alias::new(s)
}

/// SQLite alters one column per statement.
const ADDED: [(&str, &str); 3] = [
    ("consignment_items", "registered_work"),
    ("consignment_items", "consignment_reason"),
    ("chain_nodes", "recording_medium"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in ADDED {
            manager
                .alter_table(
                    Table::alter()
                        .table(a(table))
                        .add_column(text_null(a(column)))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(a("committee_submissions"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("municipality_id")))
                    .col(text(a("item_id")))
                    .col(text(a("node_id")))
                    .col(text(a("kind")))
                    .col(text(a("fields")))
                    .col(date(a("submitted_on")))
                    .col(text(a("submitted_by")))
                    .col(timestamp_with_time_zone(a("submitted_at")))
                    .col(text_null(a("instance_id")))
                    .col(big_integer_null(a("audit_seq")))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_committee_submissions_municipality")
                            .from(a("committee_submissions"), a("municipality_id"))
                            .to(a("organisations"), a("id"))
                            .to_owned(),
                    )
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_committee_submissions_node")
                            .from(a("committee_submissions"), a("node_id"))
                            .to(a("chain_nodes"), a("id"))
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_committee_submissions_node")
                    .table(a("committee_submissions"))
                    .col(a("node_id"))
                    .col(a("submitted_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(a("committee_submissions")).to_owned())
            .await?;
        for (table, column) in ADDED.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(a(table))
                        .drop_column(a(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
