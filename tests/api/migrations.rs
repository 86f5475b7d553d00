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

/// The migration that drops the audit records' foreign key (on SQLite by making the table
/// again), the second last, keeps every record and its id both ways, and new records follow the
/// old ids.
async fn the_audit_records_keep_their_rows_and_ids_without_their_foreign_key(backend: Backend) {
    use entity::audit_record;
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _};

    let app = spawn_app(backend).await;
    let cast = crate::helpers::Cast::create(&app).await;
    cast.submitted_tier2(&app).await;
    let records = || async {
        audit_record::Entity::find()
            .order_by_asc(audit_record::Column::Id)
            .all(&app.db)
            .await
            .unwrap()
    };
    let before = records().await;
    assert!(before.len() >= 2, "{before:?}");

    let ghost = || crate::helpers::ghost_record(app.now());
    let genesis = itaku::services::audit::ChainHead::genesis;

    Migrator::down(&app.db, Some(2)).await.unwrap();
    assert_eq!(records().await, before);
    let refused = itaku::services::audit::append(&app.db, genesis(), ghost()).await;
    assert!(refused.is_err(), "the foreign key is back: {refused:?}");
    Migrator::up(&app.db, None).await.unwrap();
    assert_eq!(records().await, before);
    assert_eq!(itaku::db::migrations_pending(&app.db).await.unwrap(), 0);
    // Without the key, a record of no instance can be written (and verify reports it).
    itaku::services::audit::append(&app.db, genesis(), ghost())
        .await
        .unwrap();
    audit_record::Entity::delete_many()
        .filter(audit_record::Column::InstanceId.eq("ghost"))
        .exec(&app.db)
        .await
        .unwrap();

    cast.submitted_tier2(&app).await;
    let after = records().await;
    assert_eq!(after[..before.len()], before[..]);
    let last = before.last().map(|r| r.id).unwrap_or_default();
    assert!(
        after[before.len()..].iter().all(|r| r.id > last),
        "{after:?}"
    );
    let report = itaku::services::audit::verify(&app.db).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

crate::on_both_backends!(
    migrations_roll_back_completely_and_apply_again,
    the_audit_records_keep_their_rows_and_ids_without_their_foreign_key,
);
