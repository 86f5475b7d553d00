//! `admin_events`: what an administrator changed (users, roles, organisations), appended in
//! the change's own transaction.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admin_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    pub at: DateTimeUtc,
    /// The administrator.
    #[sea_orm(column_type = "Text")]
    pub actor_id: String,
    /// `user_created`, `role_granted`, `role_ended`, `user_deactivated`,
    /// `organisation_created`, `organisation_updated`.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// The user or organisation changed.
    #[sea_orm(column_type = "Text")]
    pub subject_id: String,
    /// What changed, as JSON (never a password).
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
