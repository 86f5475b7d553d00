//! SQLite-only guarantees.

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{spawn_app, Backend};

async fn pragma(app: &crate::helpers::TestApp, name: &str) -> String {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one(Statement::from_string(backend, format!("PRAGMA {name}")))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0)
        .map(|n| n.to_string())
        .or_else(|_| row.try_get_by_index::<String>(0))
        .unwrap()
}

#[tokio::test]
async fn pooled_sqlite_connections_use_wal_full_sync_foreign_keys_and_a_busy_timeout() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(pragma(&app, "journal_mode").await, "wal");
    assert_eq!(pragma(&app, "synchronous").await, "2", "2 = FULL");
    assert_eq!(pragma(&app, "foreign_keys").await, "1");
    assert_eq!(pragma(&app, "busy_timeout").await, "5000");
}
