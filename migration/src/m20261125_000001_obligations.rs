//! Obligations (issue 5): what each contractor of a chain in force owes its root municipality
//! (training each 年度, on-site inspections, the follow-ups they give rise to), with the due day,
//! the reminder stage reached, and the record that closes them; and their history.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(s: &str) -> Alias {
    Alias::new(s)
}

fn fk(name: &str, col: &str, table: &str, key: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(a("obligations"), a(col))
        .to(a(table), a(key))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(a("obligations"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("generation_key")).unique_key())
                    .col(text(a("kind")))
                    .col(text(a("organisation_id")))
                    .col(text(a("municipality_id")))
                    .col(text(a("item_id")))
                    .col(text(a("node_id")))
                    .col(integer(a("fiscal_year")))
                    .col(date(a("due_on")))
                    .col(text(a("status")))
                    .col(text_null(a("parent_id")))
                    .col(text(a("detail")))
                    .col(text_null(a("record")))
                    .col(text_null(a("record_file")))
                    .col(text_null(a("record_filename")))
                    .col(text_null(a("submitted_by")))
                    .col(timestamp_with_time_zone_null(a("submitted_at")))
                    .col(text_null(a("decided_by")))
                    .col(timestamp_with_time_zone_null(a("decided_at")))
                    .col(text_null(a("return_reason")))
                    .col(integer(a("reminder_stage")).default(0))
                    .col(date_null(a("next_reminder_on")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut fk(
                        "fk_obligations_owner",
                        "organisation_id",
                        "organisations",
                        "id",
                    ))
                    .foreign_key(&mut fk(
                        "fk_obligations_municipality",
                        "municipality_id",
                        "organisations",
                        "id",
                    ))
                    .foreign_key(&mut fk(
                        "fk_obligations_node",
                        "node_id",
                        "chain_nodes",
                        "id",
                    ))
                    .foreign_key(&mut fk(
                        "fk_obligations_file",
                        "record_file",
                        "files",
                        "sha256",
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            // The reminder pass reads only what is due: a range scan, whatever the table's size.
            ("idx_obligations_next_reminder", &["next_reminder_on"][..]),
            (
                "idx_obligations_owner",
                &["organisation_id", "status", "due_on"][..],
            ),
            (
                "idx_obligations_municipality",
                &["municipality_id", "status", "due_on"][..],
            ),
        ] {
            let mut ix = Index::create();
            ix.name(name).table(a("obligations"));
            for c in cols {
                ix.col(a(c));
            }
            manager.create_index(ix.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(a("obligation_events"))
                    .col(big_integer(a("id")).auto_increment().primary_key())
                    .col(text(a("obligation_id")))
                    .col(timestamp_with_time_zone(a("at")))
                    .col(text(a("actor_id")))
                    .col(text(a("event")))
                    .col(text_null(a("from_status")))
                    .col(text(a("to_status")))
                    .col(text_null(a("comment")))
                    .col(text(a("details")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_obligation_events_obligation")
                            .from(a("obligation_events"), a("obligation_id"))
                            .to(a("obligations"), a("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_obligation_events_obligation")
                    .table(a("obligation_events"))
                    .col(a("obligation_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(a("obligation_events")).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(a("obligations")).to_owned())
            .await
    }
}
