//! Database migrations, one file per change, each with a real `down`.

pub use sea_orm_migration::prelude::*;

mod indexes;
mod m20261122_000001_identity;
mod m20261122_000002_workflow;
mod m20261122_000003_chains;
mod m20261124_000001_mail_delivery;
mod m20261125_000001_obligations;
mod m20261125_000001_user_language;
mod m20261126_000001_documents;
mod m20261127_000001_change_history;
mod m20261127_000002_ismap_and_charts;
mod m20261127_000003_mail_preferences;
mod m20261127_000004_ui;
mod m20261128_000001_list_indexes;
mod m20261128_000201_assessment_withdrawal;
mod m20261201_000001_instance_waiting;
mod m20261201_000002_inbox_indexes;
mod m20261202_000001_audit_records_unbound;
mod m20261203_000001_authz_epoch;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_identity::Migration),
            Box::new(m20261122_000002_workflow::Migration),
            Box::new(m20261122_000003_chains::Migration),
            Box::new(m20261124_000001_mail_delivery::Migration),
            Box::new(m20261125_000001_obligations::Migration),
            Box::new(m20261125_000001_user_language::Migration),
            Box::new(m20261126_000001_documents::Migration),
            Box::new(m20261127_000001_change_history::Migration),
            Box::new(m20261127_000002_ismap_and_charts::Migration),
            Box::new(m20261127_000003_mail_preferences::Migration),
            Box::new(m20261127_000004_ui::Migration),
            Box::new(m20261128_000001_list_indexes::Migration),
            Box::new(m20261128_000201_assessment_withdrawal::Migration),
            Box::new(m20261201_000001_instance_waiting::Migration),
            Box::new(m20261201_000002_inbox_indexes::Migration),
            Box::new(m20261202_000001_audit_records_unbound::Migration),
            Box::new(m20261203_000001_authz_epoch::Migration),
        ]
    }
}
