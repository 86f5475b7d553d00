//! Consignment chains and their evidence: organisation details, consignment items (委託事項), chain
//! nodes of any depth, subcontract applications with one decision target per municipality
//! (共同委託), per-organisation application number sequences, evidence records and the
//! content-addressed files they carry. Portable SQL only; JSON is stored as text.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(name: &str, from: (Alias, Alias), to: (Alias, Alias)) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .to_owned()
}

fn a(s: &str) -> Alias {
    Alias::new(s)
}

fn org_fk(name: &str, table: &str, col: &str) -> ForeignKeyCreateStatement {
    fk(name, (a(table), a(col)), (a("organisations"), a("id")))
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: &str,
    cols: &[&str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut ix = Index::create();
    ix.name(name).table(a(table));
    for c in cols {
        ix.col(a(c));
    }
    if unique {
        ix.unique();
    }
    manager.create_index(ix.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            text_null(a("address")),
            text_null(a("representative")),
            text_null(a("corporate_number")),
            text(a("contacts")).default("[]").to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(a("organisations"))
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        index(
            manager,
            "uq_organisations_corporate_number",
            "organisations",
            &["corporate_number"],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("consignment_items"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("municipality_id")))
                    .col(text_null(a("owning_section")))
                    .col(text(a("title")))
                    .col(text(a("content")))
                    .col(text(a("handler_bracket")))
                    .col(text(a("data_items")))
                    .col(text(a("pia_file")))
                    .col(text(a("recording_medium")))
                    .col(date(a("period_start")))
                    .col(date(a("period_end")))
                    .col(text(a("contractor_id")))
                    .col(text(a("subcontract_policy")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut org_fk(
                        "fk_consignment_items_municipality",
                        "consignment_items",
                        "municipality_id",
                    ))
                    .foreign_key(&mut org_fk(
                        "fk_consignment_items_contractor",
                        "consignment_items",
                        "contractor_id",
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_consignment_items_municipality",
            "consignment_items",
            &["municipality_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("chain_nodes"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("item_id")))
                    .col(text_null(a("parent_id")))
                    .col(integer(a("tier")).check(Expr::col(a("tier")).gte(1)))
                    .col(text(a("contractor_id")))
                    .col(text(a("scope_of_work")))
                    .col(text(a("data_scope")))
                    .col(text(a("reason")))
                    .col(text(a("capability")))
                    .col(text(a("inspection_requirements")))
                    .col(big_integer_null(a("planned_amount")))
                    .col(text(a("structure_chart")))
                    .col(text(a("supervision")))
                    .col(date(a("period_start")))
                    .col(date(a("period_end")))
                    .col(boolean(a("hosts_environment")).default(false))
                    .col(text_null(a("cloud_classification")))
                    .col(text_null(a("service_name")))
                    .col(text_null(a("advance_permission")))
                    .col(text(a("permission_state")))
                    .col(timestamp_with_time_zone(a("state_changed_at")))
                    .col(text_null(a("state_reason")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut fk(
                        "fk_chain_nodes_item",
                        (a("chain_nodes"), a("item_id")),
                        (a("consignment_items"), a("id")),
                    ))
                    .foreign_key(&mut fk(
                        "fk_chain_nodes_parent",
                        (a("chain_nodes"), a("parent_id")),
                        (a("chain_nodes"), a("id")),
                    ))
                    .foreign_key(&mut org_fk(
                        "fk_chain_nodes_contractor",
                        "chain_nodes",
                        "contractor_id",
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_chain_nodes_item",
            "chain_nodes",
            &["item_id"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_chain_nodes_parent",
            "chain_nodes",
            &["parent_id"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_chain_nodes_contractor",
            "chain_nodes",
            &["contractor_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("application_sequences"))
                    .col(text(a("organisation_id")))
                    .col(integer(a("fiscal_year")))
                    .col(big_integer(a("last_value")))
                    .primary_key(
                        Index::create()
                            .col(a("organisation_id"))
                            .col(a("fiscal_year")),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("subcontract_applications"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("number")))
                    .col(integer(a("fiscal_year")))
                    .col(text(a("applicant_id")))
                    .col(text(a("contractor_id")))
                    .col(text(a("fields")))
                    .col(text(a("created_by")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut org_fk(
                        "fk_subcontract_applications_applicant",
                        "subcontract_applications",
                        "applicant_id",
                    ))
                    .foreign_key(&mut org_fk(
                        "fk_subcontract_applications_contractor",
                        "subcontract_applications",
                        "contractor_id",
                    ))
                    .to_owned(),
            )
            .await?;
        // Numbers come from the applicant's own sequence, so they are unique per applicant.
        index(
            manager,
            "uq_subcontract_applications_applicant_number",
            "subcontract_applications",
            &["applicant_id", "number"],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("application_targets"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("application_id")))
                    .col(text(a("municipality_id")))
                    .col(text(a("item_id")))
                    .col(text(a("parent_node_id")))
                    .col(text(a("node_id")).unique_key())
                    .col(text(a("instance_id")).unique_key())
                    .foreign_key(&mut fk(
                        "fk_application_targets_application",
                        (a("application_targets"), a("application_id")),
                        (a("subcontract_applications"), a("id")),
                    ))
                    .foreign_key(&mut org_fk(
                        "fk_application_targets_municipality",
                        "application_targets",
                        "municipality_id",
                    ))
                    .foreign_key(&mut fk(
                        "fk_application_targets_item",
                        (a("application_targets"), a("item_id")),
                        (a("consignment_items"), a("id")),
                    ))
                    .foreign_key(&mut fk(
                        "fk_application_targets_parent",
                        (a("application_targets"), a("parent_node_id")),
                        (a("chain_nodes"), a("id")),
                    ))
                    .foreign_key(&mut fk(
                        "fk_application_targets_node",
                        (a("application_targets"), a("node_id")),
                        (a("chain_nodes"), a("id")),
                    ))
                    .foreign_key(&mut fk(
                        "fk_application_targets_instance",
                        (a("application_targets"), a("instance_id")),
                        (a("workflow_instances"), a("id")),
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_application_targets_application_item",
            "application_targets",
            &["application_id", "item_id"],
            true,
        )
        .await?;
        index(
            manager,
            "idx_application_targets_municipality",
            "application_targets",
            &["municipality_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("files"))
                    .col(text(a("sha256")).primary_key())
                    .col(text(a("media_type")))
                    .col(big_integer(a("size")))
                    .col(blob(a("content")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("evidence_records"))
                    .col(text(a("id")).primary_key())
                    .col(text(a("organisation_id")))
                    .col(text_null(a("node_id")))
                    .col(text(a("kind")))
                    .col(text_null(a("service_name")))
                    .col(text(a("fields")))
                    .col(date_null(a("valid_from")))
                    .col(date_null(a("valid_until")))
                    .col(boolean(a("renewal_pending")).default(false))
                    .col(text_null(a("verified_by")))
                    .col(timestamp_with_time_zone_null(a("verified_at")))
                    .col(text_null(a("revoked_by")))
                    .col(timestamp_with_time_zone_null(a("revoked_at")))
                    .col(text_null(a("revoked_reason")))
                    .col(date_null(a("lapse_handled_on")))
                    .col(text(a("created_by")))
                    .col(timestamp_with_time_zone(a("created_at")))
                    .col(timestamp_with_time_zone(a("updated_at")))
                    .col(big_integer(a("version")).default(1))
                    .foreign_key(&mut org_fk(
                        "fk_evidence_records_organisation",
                        "evidence_records",
                        "organisation_id",
                    ))
                    .foreign_key(&mut fk(
                        "fk_evidence_records_node",
                        (a("evidence_records"), a("node_id")),
                        (a("chain_nodes"), a("id")),
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_evidence_records_organisation_kind",
            "evidence_records",
            &["organisation_id", "kind"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_evidence_records_valid_until",
            "evidence_records",
            &["valid_until"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("evidence_files"))
                    .col(text(a("evidence_id")))
                    .col(text(a("sha256")))
                    .col(text(a("filename")))
                    .col(text(a("uploaded_by")))
                    .col(timestamp_with_time_zone(a("uploaded_at")))
                    .primary_key(Index::create().col(a("evidence_id")).col(a("sha256")))
                    .foreign_key(&mut fk(
                        "fk_evidence_files_evidence",
                        (a("evidence_files"), a("evidence_id")),
                        (a("evidence_records"), a("id")),
                    ))
                    .foreign_key(&mut fk(
                        "fk_evidence_files_file",
                        (a("evidence_files"), a("sha256")),
                        (a("files"), a("sha256")),
                    ))
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so foreign keys never block a drop.
        for table in [
            "evidence_files",
            "evidence_records",
            "files",
            "application_targets",
            "subcontract_applications",
            "application_sequences",
            "chain_nodes",
            "consignment_items",
        ] {
            manager
                .drop_table(Table::drop().table(a(table)).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("uq_organisations_corporate_number")
                    .table(a("organisations"))
                    .to_owned(),
            )
            .await?;
        for column in ["contacts", "corporate_number", "representative", "address"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(a("organisations"))
                        .drop_column(a(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
