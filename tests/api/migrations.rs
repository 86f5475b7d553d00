use migration::{Migrator, MigratorTrait as _, SchemaManager};

use crate::helpers::{spawn_app, Backend};

const IDENTITY_TABLES: [&str; 5] = [
    "users",
    "organisations",
    "memberships",
    "deputies",
    "revoked_tokens",
];

async fn tables_present(app: &crate::helpers::TestApp) -> Vec<&'static str> {
    let manager = SchemaManager::new(&app.db);
    let mut present = Vec::new();
    for table in IDENTITY_TABLES {
        if manager.has_table(table).await.unwrap() {
            present.push(table);
        }
    }
    present
}

async fn migrations_roll_back_completely_and_apply_again(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(tables_present(&app).await, IDENTITY_TABLES);

    Migrator::down(&app.db, None).await.unwrap();
    assert!(tables_present(&app).await.is_empty());
    assert_eq!(
        itaku::db::migrations_pending(&app.db).await.unwrap(),
        Migrator::migrations().len()
    );

    Migrator::up(&app.db, None).await.unwrap();
    assert_eq!(tables_present(&app).await, IDENTITY_TABLES);
    assert_eq!(itaku::db::migrations_pending(&app.db).await.unwrap(), 0);
    // The schema is usable again, not just present.
    app.create_user("after-reapply").await;
}

crate::on_both_backends!(migrations_roll_back_completely_and_apply_again);
