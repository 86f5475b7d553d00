//! Deployed workflow definitions: each `(id, version)` is recorded with its content hash and
//! source, so a changed file under an old version is refused, and old versions stay loadable
//! for the instances that still run on them.

use chrono::{DateTime, Utc};
use entity::workflow_definition;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set, TransactionTrait};

use crate::services::db_time::to_db_precision;
use crate::workflow::{Kinds, WorkflowSet};

/// Why the definitions could not be deployed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Changed(String),
    #[error("stored definition {id} v{version} no longer compiles:\n{problems}")]
    Stored {
        id: String,
        version: i32,
        problems: String,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Records every definition of `set` that is new, refuses any whose `(id, version)` is stored
/// with another hash, and adds the stored versions missing from the folder to `set`.
pub async fn deploy<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    set: &mut WorkflowSet,
    kinds: &Kinds,
    now: DateTime<Utc>,
) -> Result<(), DeployError> {
    let txn = db.begin().await?;
    let stored = workflow_definition::Entity::find().all(&txn).await?;
    let mut changed = Vec::new();
    for row in &stored {
        let version = u32::try_from(row.version).unwrap_or(0);
        match set.get(&row.workflow_id, version) {
            Some(rt) if rt.content_hash() != row.content_hash => changed.push(format!(
                "workflow \"{}\" version {} was changed without a version bump (deployed sha256 {}, file sha256 {})",
                row.workflow_id,
                row.version,
                short(&row.content_hash),
                short(rt.content_hash()),
            )),
            Some(_) => {}
            None => {
                let rt = kinds
                    .compile(
                        &format!("(stored) {} v{}", row.workflow_id, row.version),
                        &row.source,
                    )
                    .map_err(|e| DeployError::Stored {
                        id: row.workflow_id.clone(),
                        version: row.version,
                        problems: e
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    })?;
                set.insert(rt).map_err(DeployError::Changed)?;
            }
        }
    }
    if !changed.is_empty() {
        return Err(DeployError::Changed(changed.join("\n")));
    }
    let new_rows: Vec<workflow_definition::ActiveModel> = set
        .iter()
        .filter(|rt| {
            !stored.iter().any(|row| {
                row.workflow_id == rt.id() && u32::try_from(row.version).ok() == Some(rt.version())
            })
        })
        .map(|rt| workflow_definition::ActiveModel {
            workflow_id: Set(rt.id().to_owned()),
            version: Set(i32::try_from(rt.version()).unwrap_or(i32::MAX)),
            content_hash: Set(rt.content_hash().to_owned()),
            source: Set(rt.source().to_owned()),
            deployed_at: Set(to_db_precision(now)),
        })
        .collect();
    if !new_rows.is_empty() {
        // Replicas starting together may race to record the same version: the first wins and
        // the others find an identical row.
        workflow_definition::Entity::insert_many(new_rows)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    workflow_definition::Column::WorkflowId,
                    workflow_definition::Column::Version,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Compares the folder with what is deployed, without writing: the lines of definitions that
/// changed without a version bump (for `check-workflows` against a live database).
pub async fn changed_without_bump(
    db: &impl ConnectionTrait,
    set: &WorkflowSet,
) -> Result<Vec<String>, DbErr> {
    let stored = workflow_definition::Entity::find().all(db).await?;
    Ok(stored
        .iter()
        .filter_map(|row| {
            let rt = set.get(&row.workflow_id, u32::try_from(row.version).ok()?)?;
            (rt.content_hash() != row.content_hash).then(|| {
                format!(
                    "workflow \"{}\" version {} was changed without a version bump (deployed sha256 {}, file sha256 {})",
                    row.workflow_id,
                    row.version,
                    short(&row.content_hash),
                    short(rt.content_hash())
                )
            })
        })
        .collect())
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
