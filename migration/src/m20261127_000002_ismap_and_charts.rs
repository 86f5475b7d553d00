//! The ISMAP cloud service list (issue 6): each import with who, when, the file's hash and its
//! difference from the previous one, and the entries it holds; the implementation structure
//! chart (履行体制図): each node's responsible person, manager, staff count and work location,
//! and the chart versions an item's chain produced (snapshot, SVG hash, submission); and the
//! insert-only trail of document actions (an import, a chart version, a submission).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(s: &str) -> Alias {
    Alias::new(s)
}

/// The structure chart's fields of a node, added one by one (SQLite alters one column at a time).
const NODE_COLUMNS: [&str; 4] = [
    "responsible_person",
    "manager",
    "staff_count",
    "work_location",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in NODE_COLUMNS {
            let def = if column == "staff_count" {
                integer_null(a(column))
            } else {
                text_null(a(column))
            };
            manager
                .alter_table(
                    Table::alter()
                        .table(a("chain_nodes"))
                        .add_column(def)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(a("ismap_imports"))
                    .col(text(a("id")).primary_key())
                    .col(integer(a("sequence")).unique_key())
                    .col(text(a("imported_by")))
                    .col(timestamp_with_time_zone(a("imported_at")))
                    .col(text_null(a("filename")))
                    .col(text(a("sha256")))
                    .col(text(a("encoding")))
                    .col(text(a("mapping")))
                    .col(integer(a("row_count")))
                    .col(text_null(a("previous_id")))
                    .col(text(a("diff")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("ismap_entries"))
                    .col(text(a("import_id")))
                    .col(text(a("registration_number")))
                    .col(text(a("service_name")))
                    .col(text(a("provider")))
                    .col(date(a("registration_date")))
                    .col(date(a("expiry_date")))
                    .col(text(a("remarks")))
                    .primary_key(
                        Index::create()
                            .col(a("import_id"))
                            .col(a("registration_number")),
                    )
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_ismap_entries_import")
                            .from(a("ismap_entries"), a("import_id"))
                            .to(a("ismap_imports"), a("id"))
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("chart_versions"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("item_id")))
                    .col(integer(a("number")))
                    .col(date(a("as_of")))
                    .col(text(a("snapshot")))
                    .col(text(a("svg_sha256")))
                    .col(text(a("created_by")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(text_null(a("submitted_by")))
                    .col(timestamp_with_time_zone_null(a("submitted_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_chart_versions_item")
                            .from(a("chart_versions"), a("item_id"))
                            .to(a("consignment_items"), a("id"))
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_chart_versions_item_number")
                    .table(a("chart_versions"))
                    .col(a("item_id"))
                    .col(a("number"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("document_events"))
                    .col(big_integer(a("id")).auto_increment().primary_key())
                    .col(timestamp_with_time_zone(a("at")))
                    .col(text(a("actor_id")))
                    .col(text(a("event")))
                    .col(text(a("subject_id")))
                    .col(text_null(a("request_id")))
                    .col(text(a("details")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_document_events_subject")
                    .table(a("document_events"))
                    .col(a("subject_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "document_events",
            "chart_versions",
            "ismap_entries",
            "ismap_imports",
        ] {
            manager
                .drop_table(Table::drop().table(a(table)).to_owned())
                .await?;
        }
        for column in NODE_COLUMNS.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(a("chain_nodes"))
                        .drop_column(a(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
