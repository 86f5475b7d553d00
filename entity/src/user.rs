//! `users`: people who sign in.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// UUID v7 as text.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(unique, column_type = "Text")]
    pub login: String,
    #[sea_orm(column_type = "Text")]
    pub display_name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub email: Option<String>,
    /// PHC string (argon2id); never serialised.
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    /// The web UI's language the user chose (`ja` or `en`); none means Japanese.
    #[sea_orm(column_type = "Text", nullable)]
    pub language: Option<String>,
    /// `immediate` (each mail as it comes) or `daily_digest` (one mail a day listing them).
    #[sea_orm(column_type = "Text")]
    pub mail_preference: String,
    /// When an administrator deactivated the user: they can no longer sign in, and their
    /// sessions end.
    pub deactivated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::membership::Entity")]
    Membership,
}

impl Related<super::membership::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Membership.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
