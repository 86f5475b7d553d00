//! Per-user mail preferences (issue 5): immediate delivery, or one daily digest listing what
//! the user would have received; and the messages held for each user's next digest.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(text(Users::MailPreference).default("immediate"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailDigestItems::Table)
                    .col(text(MailDigestItems::Id).primary_key())
                    .col(text(MailDigestItems::UserId))
                    .col(text(MailDigestItems::OutboxId))
                    .col(date(MailDigestItems::HeldOn))
                    .col(text(MailDigestItems::Subject))
                    .col(text(MailDigestItems::Link))
                    .col(text_null(MailDigestItems::DigestId))
                    .col(timestamp_with_time_zone(MailDigestItems::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mail_digest_items_user")
                            .from(MailDigestItems::Table, MailDigestItems::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A message is held once per user, however often its delivery is retried.
        manager
            .create_index(
                Index::create()
                    .name("ux_mail_digest_items_user_outbox")
                    .table(MailDigestItems::Table)
                    .col(MailDigestItems::UserId)
                    .col(MailDigestItems::OutboxId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The digest pass reads the items still waiting, by the day they were held.
        manager
            .create_index(
                Index::create()
                    .name("ix_mail_digest_items_waiting")
                    .table(MailDigestItems::Table)
                    .col(MailDigestItems::DigestId)
                    .col(MailDigestItems::HeldOn)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailDigestItems::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::MailPreference)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    MailPreference,
}

#[derive(DeriveIden)]
enum MailDigestItems {
    Table,
    Id,
    UserId,
    OutboxId,
    HeldOn,
    Subject,
    Link,
    DigestId,
    CreatedAt,
}
