//! Indexes for the lists and the inbox (issue 4): the application list and the inbox are
//! filtered, counted and paged in SQL, through an application's targets, the targets below a
//! parent node, and the applications of an organisation, newest first.

use sea_orm_migration::prelude::*;

use crate::indexes::{self, PlainIndex};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, table, columns)` of each index.
const INDEXES: &[PlainIndex] = &[
    (
        "idx_application_targets_application",
        "application_targets",
        &["application_id"],
    ),
    (
        "idx_application_targets_parent_node",
        "application_targets",
        &["parent_node_id"],
    ),
    (
        "idx_subcontract_applications_applicant",
        "subcontract_applications",
        &["applicant_id", "created_at"],
    ),
    (
        "idx_subcontract_applications_contractor",
        "subcontract_applications",
        &["contractor_id", "created_at"],
    ),
    (
        "idx_subcontract_applications_created",
        "subcontract_applications",
        &["created_at", "id"],
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
