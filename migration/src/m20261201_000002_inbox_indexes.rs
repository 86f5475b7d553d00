//! Indexes the inbox and the application page read by: the drafts of a submitter; the open
//! obligations of an organisation or a municipality in due order (so the first page is read in
//! order and the scan stops there, rather than sorting every open obligation of a large
//! municipality); and the handler count of a PIA file, read from the index alone (the
//! organisation and bracket of each handling node of the file's items).

use sea_orm_migration::prelude::*;

use crate::indexes::{self, PlainIndex};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[PlainIndex] = &[
    (
        "idx_workflow_instances_submitter",
        "workflow_instances",
        &["submitter", "state"],
    ),
    (
        "idx_obligations_municipality_due",
        "obligations",
        &["municipality_id", "due_on", "id"],
    ),
    (
        "idx_obligations_owner_due",
        "obligations",
        &["organisation_id", "due_on", "id"],
    ),
    (
        "idx_chain_nodes_handlers",
        "chain_nodes",
        &[
            "item_id",
            "permission_state",
            "contractor_id",
            "handler_bracket",
            "parent_id",
            "cloud_classification",
        ],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::create(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop(manager, INDEXES).await
    }
}
