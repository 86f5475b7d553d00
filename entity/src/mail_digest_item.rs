//! `mail_digest_items`: a message held for a user who takes a daily digest, until the digest
//! that lists it is written.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_digest_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub user_id: String,
    /// The outbox row the user would have received.
    #[sea_orm(column_type = "Text")]
    pub outbox_id: String,
    /// The Japanese day it was held on; it goes out with the digest of a later day.
    pub held_on: Date,
    #[sea_orm(column_type = "Text")]
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub link: String,
    /// The outbox row of the digest that listed it, once written.
    #[sea_orm(column_type = "Text", nullable)]
    pub digest_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
