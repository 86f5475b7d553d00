//! Identity: users, organisations, effective-dated memberships and deputies (代決), revoked tokens.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(text(Users::Id).primary_key())
                    .col(text(Users::Login).unique_key())
                    .col(text(Users::DisplayName))
                    .col(ColumnDef::new(Users::Email).text().null())
                    .col(text(Users::PasswordHash))
                    .col(timestamp(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Organisations::Table)
                    .col(text(Organisations::Id).primary_key())
                    .col(text(Organisations::Kind))
                    .col(text(Organisations::NameJa))
                    .col(ColumnDef::new(Organisations::NameEn).text().null())
                    .col(timestamp(Organisations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(text(Memberships::Id).primary_key())
                    .col(text(Memberships::UserId))
                    .col(text(Memberships::OrganisationId))
                    .col(text(Memberships::Role))
                    .col(date(Memberships::ValidFrom))
                    .col(ColumnDef::new(Memberships::ValidUntil).date().null())
                    .foreign_key(&mut user_fk(Memberships::Table, Memberships::UserId))
                    .foreign_key(&mut organisation_fk(
                        Memberships::Table,
                        Memberships::OrganisationId,
                    ))
                    .check(valid_period(
                        Memberships::ValidFrom,
                        Memberships::ValidUntil,
                    ))
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Memberships::Table,
            "idx_memberships_user",
            Memberships::UserId,
        )
        .await?;
        create_index(
            manager,
            Memberships::Table,
            "idx_memberships_organisation",
            Memberships::OrganisationId,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Deputies::Table)
                    .col(text(Deputies::Id).primary_key())
                    .col(text(Deputies::PrincipalUserId))
                    .col(text(Deputies::DeputyUserId))
                    .col(text(Deputies::Role))
                    .col(text(Deputies::OrganisationId))
                    .col(date(Deputies::ValidFrom))
                    .col(ColumnDef::new(Deputies::ValidUntil).date().null())
                    .foreign_key(&mut user_fk(Deputies::Table, Deputies::PrincipalUserId))
                    .foreign_key(&mut user_fk(Deputies::Table, Deputies::DeputyUserId))
                    .foreign_key(&mut organisation_fk(
                        Deputies::Table,
                        Deputies::OrganisationId,
                    ))
                    .check(valid_period(Deputies::ValidFrom, Deputies::ValidUntil))
                    .check(
                        Expr::col(Deputies::PrincipalUserId).ne(Expr::col(Deputies::DeputyUserId)),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            Deputies::Table,
            "idx_deputies_deputy",
            Deputies::DeputyUserId,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(text(RevokedTokens::Jti).primary_key())
                    .col(timestamp(RevokedTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            RevokedTokens::Table,
            "idx_revoked_tokens_expires_at",
            RevokedTokens::ExpiresAt,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents; indexes go with their tables.
        for table in [
            RevokedTokens::Table.into_iden(),
            Deputies::Table.into_iden(),
            Memberships::Table.into_iden(),
            Organisations::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn date<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).date().not_null().to_owned()
}

fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A period is open-ended (`valid_until` NULL) or ends on or after the day it starts.
fn valid_period<T: IntoIden + Copy + 'static>(from: T, until: T) -> SimpleExpr {
    Expr::col(until)
        .is_null()
        .or(Expr::col(until).gte(Expr::col(from)))
}

fn user_fk<T: IntoIden + 'static, C: IntoIden + 'static>(
    table: T,
    column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn organisation_fk<T: IntoIden + 'static, C: IntoIden + 'static>(
    table: T,
    column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Organisations::Table, Organisations::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

async fn create_index<T: IntoIden + 'static, C: IntoIden + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    name: &str,
    column: C,
) -> Result<(), DbErr> {
    manager
        .create_index(
            Index::create()
                .name(name)
                .table(table)
                .col(column)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Login,
    DisplayName,
    Email,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Organisations {
    Table,
    Id,
    Kind,
    NameJa,
    NameEn,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Memberships {
    Table,
    Id,
    UserId,
    OrganisationId,
    Role,
    ValidFrom,
    ValidUntil,
}

#[derive(DeriveIden, Clone, Copy)]
enum Deputies {
    Table,
    Id,
    PrincipalUserId,
    DeputyUserId,
    Role,
    OrganisationId,
    ValidFrom,
    ValidUntil,
}

#[derive(DeriveIden, Clone, Copy)]
enum RevokedTokens {
    Table,
    Jti,
    ExpiresAt,
}
