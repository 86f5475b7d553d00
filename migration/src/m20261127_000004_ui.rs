//! The web UI's administration (issue 4): users can be deactivated, and every change an
//! administrator makes to users, roles and organisations is recorded in `admin_events`.

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
                    .add_column(timestamp_with_time_zone_null(Users::DeactivatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AdminEvents::Table)
                    .col(text(AdminEvents::Id).primary_key())
                    .col(timestamp_with_time_zone(AdminEvents::At))
                    .col(text(AdminEvents::ActorId))
                    .col(text(AdminEvents::Action))
                    .col(text(AdminEvents::SubjectId))
                    .col(text(AdminEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("admin_events_subject")
                    .table(AdminEvents::Table)
                    .col(AdminEvents::SubjectId)
                    .col(AdminEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AdminEvents::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DeactivatedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DeactivatedAt,
}

#[derive(DeriveIden)]
enum AdminEvents {
    Table,
    Id,
    At,
    ActorId,
    Action,
    SubjectId,
    Detail,
}
