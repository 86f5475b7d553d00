//! Revoked session tokens.

use chrono::{DateTime, Utc};
use entity::revoked_token;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::error::ApiError;

/// Marks a token id as revoked until `expires_at`. Revoking twice is harmless.
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    revoked_token::Entity::insert(revoked_token::ActiveModel {
        jti: Set(jti.to_owned()),
        expires_at: Set(expires_at),
    })
    .on_conflict(
        OnConflict::column(revoked_token::Column::Jti)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether a token id has been revoked.
pub async fn is_revoked<C: ConnectionTrait>(db: &C, jti: &str) -> Result<bool, ApiError> {
    Ok(revoked_token::Entity::find_by_id(jti.to_owned())
        .one(db)
        .await?
        .is_some())
}

/// Deletes revocations of tokens that have expired by `now` (they are refused anyway).
pub async fn purge_expired<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let result = revoked_token::Entity::delete_many()
        .filter(revoked_token::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
