//! Documents the municipality files (issue 6): the inputs of the threshold test (しきい値判断)
//! per PIA file, each municipality's document settings (the latest serious incident, which
//! changes are significant), the assessments recorded before a significant change, and the
//! handler-count bracket of every chain node below tier 1 (tier 1 keeps it on its item).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(s: &str) -> Alias {
    Alias::new(s)
}

fn org_fk(name: &str, table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(a(table), a("municipality_id"))
        .to(a("organisations"), a("id"))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(a("chain_nodes"))
                    .add_column(text_null(a("handler_bracket")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("pia_files"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("municipality_id")))
                    .col(text(a("name")))
                    .col(text(a("people_bracket")))
                    .col(text(a("own_staff_bracket")))
                    .col(date(a("counted_on")))
                    .col(text(a("updated_by")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut org_fk("fk_pia_files_municipality", "pia_files"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_pia_files_municipality_name")
                    .table(a("pia_files"))
                    .col(a("municipality_id"))
                    .col(a("name"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("document_settings"))
                    .col(text(a("municipality_id")).primary_key())
                    .col(date_null(a("last_serious_incident_on")))
                    .col(text_null(a("significant_changes")))
                    .col(text(a("updated_by")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut org_fk(
                        "fk_document_settings_municipality",
                        "document_settings",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("pia_assessments"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("municipality_id")))
                    .col(text(a("pia_file")))
                    .col(text(a("node_id")))
                    .col(text(a("items")))
                    .col(date(a("assessed_on")))
                    .col(text(a("summary")))
                    .col(text(a("instance_id")))
                    .col(big_integer(a("audit_seq")))
                    .col(text(a("recorded_by")))
                    .col(timestamp_with_time_zone(a("recorded_at")))
                    .foreign_key(&mut org_fk(
                        "fk_pia_assessments_municipality",
                        "pia_assessments",
                    ))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_pia_assessments_node")
                            .from(a("pia_assessments"), a("node_id"))
                            .to(a("chain_nodes"), a("id"))
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pia_assessments_node")
                    .table(a("pia_assessments"))
                    .col(a("node_id"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["pia_assessments", "document_settings", "pia_files"] {
            manager
                .drop_table(Table::drop().table(a(table)).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(a("chain_nodes"))
                    .drop_column(a("handler_bracket"))
                    .to_owned(),
            )
            .await
    }
}
