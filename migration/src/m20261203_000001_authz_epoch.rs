//! `authz_epoch`: one counter that moves whenever anything a session stands for changes.
//!
//! A session check reads the user, their memberships and deputyships in effect, and whether the
//! token was revoked. A replica that keeps a session it read may decide an event on it without
//! reading it again only if the write of that event proves the session still holds: the write
//! is made on condition that this counter still has the value read with the session. Triggers
//! move it on every change of `users`, `memberships`, `deputies` and `revoked_tokens`, so no
//! code path (nor an operator's SQL) can change what a session stands for without it moving.
//!
//! A later migration that makes one of those tables again on SQLite (which drops its triggers)
//! must make the triggers again; a test checks that every change of each table moves it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose changes move the counter.
const WATCHED: [&str; 4] = ["users", "memberships", "deputies", "revoked_tokens"];

/// The statement every trigger runs.
const BUMP: &str = "UPDATE authz_epoch SET epoch = epoch + 1";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE authz_epoch (id integer PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL)",
        )
        .await?;
        db.execute_unprepared("INSERT INTO authz_epoch (id, epoch) VALUES (1, 0)")
            .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION itaku_bump_authz_epoch() RETURNS trigger LANGUAGE plpgsql \
                     AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
                ))
                .await?;
                for table in WATCHED {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_authz_epoch \
                         AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION itaku_bump_authz_epoch()"
                    ))
                    .await?;
                }
            }
            _ => {
                for table in WATCHED {
                    for operation in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_authz_epoch_{operation} \
                             AFTER {operation} ON {table} BEGIN {BUMP}; END"
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for table in WATCHED {
                    db.execute_unprepared(&format!("DROP TRIGGER {table}_authz_epoch ON {table}"))
                        .await?;
                }
                db.execute_unprepared("DROP FUNCTION itaku_bump_authz_epoch()")
                    .await?;
            }
            _ => {
                for table in WATCHED {
                    for operation in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER {table}_authz_epoch_{operation}"
                        ))
                        .await?;
                    }
                }
            }
        }
        db.execute_unprepared("DROP TABLE authz_epoch").await?;
        Ok(())
    }
}
