//! The trail of document actions that belong to no workflow instance (an ISMAP list import, a
//! structure chart version produced or submitted): one insert-only row per action, written in
//! the action's own transaction.

use chrono::{DateTime, Utc};
use entity::document_event;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr,
};
use serde::Serialize;
use serde_json::Value;

/// A failed insert of the next numbered document row: another writer took the number first
/// (`concurrent_update`, the caller may retry), or the database's own error.
pub fn numbered_insert_error(e: DbErr) -> crate::error::ApiError {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        crate::error::ErrorCode::ConcurrentUpdate.into()
    } else {
        e.into()
    }
}

/// Who acted, when, and under which request.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user_id: &'a str,
    pub at: DateTime<Utc>,
    pub request_id: Option<&'a str>,
}

/// Appends one action to the trail.
pub async fn record(
    conn: &impl ConnectionTrait,
    actor: Actor<'_>,
    event: &str,
    subject_id: &str,
    details: &Value,
) -> Result<(), DbErr> {
    document_event::ActiveModel {
        id: NotSet,
        at: Set(crate::services::db_time::to_db_precision(actor.at)),
        actor_id: Set(actor.user_id.to_owned()),
        event: Set(event.to_owned()),
        subject_id: Set(subject_id.to_owned()),
        request_id: Set(actor.request_id.map(str::to_owned)),
        details: Set(details.to_string()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// One action of the trail as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrailEntry {
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub event: String,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The actions on one subject, oldest first.
pub async fn of_subject(
    conn: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<TrailEntry>, DbErr> {
    Ok(document_event::Entity::find()
        .filter(document_event::Column::SubjectId.eq(subject_id))
        .order_by_asc(document_event::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|e| TrailEntry {
            at: e.at,
            actor_id: e.actor_id,
            event: e.event,
            request_id: e.request_id,
            details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
        })
        .collect())
}
