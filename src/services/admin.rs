//! Administration of users, their roles and organisations, for holders of the `admin` role
//! (the callers check it). Every change is recorded in `admin_events` in its own transaction;
//! a password never is.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{admin_event, membership, organisation, user};
use rand::Rng as _;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::chains::{self, OrganisationInput};
use super::new_id;
use super::outbox::{self, RetryError};
use super::users::{self, ImportedUser, NewMembership};
use crate::auth::password;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::workflow::Vocabulary;

/// Length of a generated initial password (letters and digits).
pub const INITIAL_PASSWORD_CHARS: usize = 20;

/// A user with every membership they hold or held, earliest first.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub user: user::Model,
    pub memberships: Vec<membership::Model>,
}

/// Every user by login, with their memberships.
pub async fn users(db: &impl ConnectionTrait) -> Result<Vec<UserRow>, ApiError> {
    let users = user::Entity::find()
        .order_by_asc(user::Column::Login)
        .all(db)
        .await?;
    let mut memberships = membership::Entity::find()
        .order_by_asc(membership::Column::ValidFrom)
        .order_by_asc(membership::Column::Id)
        .all(db)
        .await?;
    Ok(users
        .into_iter()
        .map(|user| {
            let (mine, rest) = memberships.drain(..).partition(|m| m.user_id == user.id);
            memberships = rest;
            UserRow {
                user,
                memberships: mine,
            }
        })
        .collect())
}

/// A user the administrator creates.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// Creates a user with a random initial password, returned once for the administrator to
/// hand over (only its argon2id hash is stored).
pub async fn create_user(
    db: &DatabaseConnection,
    actor: &str,
    new: NewAccount,
    now: DateTime<Utc>,
) -> Result<(user::Model, SecretString), ApiError> {
    if users::find_by_login(db, new.login.trim()).await?.is_some() {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
                "login",
                "このログインIDは既に使われています。",
                "This login is taken.",
            )]),
        );
    }
    let initial: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(INITIAL_PASSWORD_CHARS)
        .map(char::from)
        .collect();
    // Hashing takes tens of milliseconds on purpose: done before the transaction opens.
    let password_hash = password::hash_blocking(SecretString::from(initial.clone())).await?;
    let txn = db.begin().await?;
    let created = users::import_user(
        &txn,
        ImportedUser {
            id: new_id(now),
            login: new.login,
            display_name: new.display_name,
            email: new.email,
            password_hash,
        },
        now,
    )
    .await?;
    record(
        &txn,
        actor,
        "user_created",
        &created.id,
        json!({ "login": created.login, "display_name": created.display_name, "email": created.email }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((created, SecretString::from(initial)))
}

/// Gives a user a role in an organisation from `valid_from` (to `valid_until`, inclusive).
pub async fn grant_role(
    db: &DatabaseConnection,
    vocabulary: &Vocabulary,
    actor: &str,
    new: NewMembership,
    now: DateTime<Utc>,
) -> Result<membership::Model, ApiError> {
    let txn = db.begin().await?;
    let granted = users::add_membership_in(&txn, vocabulary, new, now).await?;
    record(
        &txn,
        actor,
        "role_granted",
        &granted.user_id,
        json!({
            "membership_id": granted.id,
            "organisation_id": granted.organisation_id,
            "role": granted.role,
            "valid_from": granted.valid_from,
            "valid_until": granted.valid_until,
        }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(granted)
}

/// Ends a membership: its last day becomes yesterday (Japan), or, if it has not started yet,
/// it is removed. One already over answers `conflict`.
pub async fn end_role(
    db: &DatabaseConnection,
    actor: &str,
    membership_id: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let txn = db.begin().await?;
    let held = membership::Entity::find_by_id(membership_id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let yesterday = today.pred_opt().unwrap_or(today);
    if held.valid_until.is_some_and(|u| u < today) {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
                "membership_id",
                "この役割は既に終了しています。",
                "This role has already ended.",
            )]),
        );
    }
    let detail = json!({
        "membership_id": held.id,
        "organisation_id": held.organisation_id,
        "role": held.role,
        "valid_until": if held.valid_from >= today { None } else { Some(yesterday) },
    });
    let user_id = held.user_id.clone();
    if held.valid_from >= today {
        membership::Entity::delete_by_id(held.id).exec(&txn).await?;
    } else {
        let mut model: membership::ActiveModel = held.into();
        model.valid_until = Set(Some(yesterday));
        model.update(&txn).await?;
    }
    record(&txn, actor, "role_ended", &user_id, detail, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Deactivates a user: they can no longer sign in and their sessions end. An administrator
/// cannot deactivate themselves; deactivating twice answers `conflict`.
pub async fn deactivate(
    db: &DatabaseConnection,
    actor: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if user_id == actor {
        return Err(
            ApiError::new(ErrorCode::ValidationFailed).with_details(vec![FieldError::new(
                "user_id",
                "自分自身を無効にすることはできません。",
                "You cannot deactivate yourself.",
            )]),
        );
    }
    let txn = db.begin().await?;
    let found = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    if found.deactivated_at.is_some() {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(
                "user_id",
                "この利用者は既に無効です。",
                "This user is already deactivated.",
            )]),
        );
    }
    let login = found.login.clone();
    let mut model: user::ActiveModel = found.into();
    model.deactivated_at = Set(Some(now));
    model.update(&txn).await?;
    record(
        &txn,
        actor,
        "user_deactivated",
        user_id,
        json!({ "login": login }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Registers an organisation.
pub async fn create_organisation(
    db: &DatabaseConnection,
    actor: &str,
    input: OrganisationInput,
    now: DateTime<Utc>,
) -> Result<organisation::Model, ApiError> {
    let txn = db.begin().await?;
    let created = chains::insert_organisation(&txn, input, now).await?;
    record(
        &txn,
        actor,
        "organisation_created",
        &created.id,
        organisation_detail(&created),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Changes an organisation's names, address, representative, corporate number and contacts.
pub async fn update_organisation(
    db: &DatabaseConnection,
    actor: &str,
    id: &str,
    input: OrganisationInput,
    now: DateTime<Utc>,
) -> Result<organisation::Model, ApiError> {
    let txn = db.begin().await?;
    let updated = chains::update_organisation(&txn, id, input).await?;
    record(
        &txn,
        actor,
        "organisation_updated",
        id,
        organisation_detail(&updated),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

fn organisation_detail(o: &organisation::Model) -> Value {
    json!({
        "kind": o.kind,
        "name_ja": o.name_ja,
        "name_en": o.name_en,
        "address": o.address,
        "representative": o.representative,
        "corporate_number": o.corporate_number,
        "contacts": serde_json::from_str::<Value>(&o.contacts).unwrap_or(Value::Null),
    })
}

/// The administration records about a user or organisation, newest first.
pub async fn events_of(
    db: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<admin_event::Model>, ApiError> {
    Ok(admin_event::Entity::find()
        .filter(admin_event::Column::SubjectId.eq(subject_id))
        .order_by_desc(admin_event::Column::At)
        .order_by_desc(admin_event::Column::Id)
        .all(db)
        .await?)
}

/// Puts a permanently failed mail message back in the queue ([`outbox::retry`]) and records
/// who did it in `admin_events`, in one transaction. An unknown message is `404`; one that is
/// not failed (already retried, pending or sent) is `409` and nothing changes.
pub async fn retry_mail(
    db: &DatabaseConnection,
    actor: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<entity::outbox::Model, ApiError> {
    let txn = db.begin().await?;
    let row = match outbox::retry(&txn, id, now).await {
        Ok(row) => row,
        Err(RetryError::NotFound) => return Err(ErrorCode::NotFound.into()),
        Err(RetryError::NotFailed(status)) => {
            return Err(ApiError::new(ErrorCode::Conflict)
                .with_details(json!({ "field": "status", "status": status })))
        }
        Err(RetryError::Db(e)) => return Err(e.into()),
    };
    record(
        &txn,
        actor,
        "mail_retried",
        &row.id,
        json!({ "template": row.template, "last_error": row.last_error }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

async fn record(
    db: &impl ConnectionTrait,
    actor: &str,
    action: &str,
    subject_id: &str,
    detail: Value,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    admin_event::ActiveModel {
        id: Set(new_id(now)),
        at: Set(now),
        actor_id: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        subject_id: Set(subject_id.to_owned()),
        detail: Set(detail.to_string()),
    }
    .insert(db)
    .await?;
    Ok(())
}
