//! Users, organisations, memberships and deputies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{deputy, membership, organisation, revoked_token, user, workflow_instance};
use sea_orm::sea_query::{Alias, Expr, PostgresQueryBuilder, Query, SelectStatement, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IdenStatic as _, Iterable as _, JoinType, QueryFilter, QueryResult, Set,
    SqlErr,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::batch::{Load, TaskConnection};
use super::new_id;
use crate::auth::{password, Deputyship, Grant};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::workflow::Vocabulary;

/// Longest accepted login.
pub const MAX_LOGIN_CHARS: usize = 64;

/// A user to create.
#[derive(Debug)]
pub struct NewUser {
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password: SecretString,
}

/// An organisation to create.
#[derive(Debug, Clone)]
pub struct NewOrganisation {
    /// Stable identifier chosen by the caller (for example the corporate number).
    pub id: String,
    pub kind: String,
    pub name_ja: String,
    pub name_en: Option<String>,
}

/// A role for a user in an organisation, from `valid_from` to `valid_until` inclusive.
#[derive(Debug, Clone)]
pub struct NewMembership {
    pub user_id: String,
    pub organisation_id: String,
    pub role: String,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
}

/// A registered deputy (代決) for a principal's role in an organisation.
#[derive(Debug, Clone)]
pub struct NewDeputy {
    pub principal_user_id: String,
    pub deputy_user_id: String,
    pub role: String,
    pub organisation_id: String,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
}

/// A user whose id and password hash the caller supplies.
#[derive(Debug)]
pub struct ImportedUser {
    /// Kept as given, so that references made elsewhere (another directory, a context naming
    /// its submitter) stay valid: 1 to 64 characters without spaces.
    pub id: String,
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
    /// An argon2 PHC string (`$argon2id$v=19$…`), computed by the caller.
    pub password_hash: String,
}

/// Creates a user; the password is hashed with argon2id. A taken login is a `conflict`.
pub async fn create_user<C: ConnectionTrait>(
    db: &C,
    new: NewUser,
    now: DateTime<Utc>,
) -> Result<user::Model, ApiError> {
    let (profile, mut errors) = check_profile(&new.login, &new.display_name, new.email);
    if new.password.expose_secret().chars().count() < password::MIN_PASSWORD_CHARS {
        errors.push(FieldError::new(
            "password",
            "パスワードは12文字以上にしてください。",
            "The password must be at least 12 characters long.",
        ));
    }
    reject_if_any(errors)?;
    let password_hash = password::hash_blocking(new.password).await?;
    insert_user(db, new_id(now), profile, password_hash, now).await
}

/// Creates a user with the id and password hash given: imports from another directory, and
/// fixtures that create users in bulk (argon2 costs tens of milliseconds per hash on purpose,
/// so a thousand users can share one hash). A taken id or login is a `conflict`.
pub async fn import_user<C: ConnectionTrait>(
    db: &C,
    new: ImportedUser,
    now: DateTime<Utc>,
) -> Result<user::Model, ApiError> {
    let (profile, mut errors) = check_profile(&new.login, &new.display_name, new.email);
    let id = new.id.trim().to_owned();
    if !is_plausible_name(&id) {
        errors.push(FieldError::new(
            "id",
            "IDは空白を含まない64文字以内で指定してください。",
            "The id must be 1 to 64 characters without spaces.",
        ));
    }
    if !password::is_phc(&new.password_hash) {
        errors.push(FieldError::new(
            "password_hash",
            "パスワードハッシュはargon2のPHC形式で指定してください。",
            "The password hash must be an argon2 PHC string.",
        ));
    }
    reject_if_any(errors)?;
    if find_by_id(db, &id).await?.is_some() {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_details(serde_json::json!({ "field": "id" }))
        );
    }
    insert_user(db, id, profile, new.password_hash, now).await
}

/// A user's login, display name and e-mail address, trimmed and checked.
struct Profile {
    login: String,
    display_name: String,
    email: Option<String>,
}

fn check_profile(
    login: &str,
    display_name: &str,
    email: Option<String>,
) -> (Profile, Vec<FieldError>) {
    let login = login.trim().to_owned();
    let display_name = display_name.trim().to_owned();
    let email = email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    let mut errors = Vec::new();
    if !is_plausible_name(&login) {
        errors.push(FieldError::new(
            "login",
            "ログインIDは空白を含まない64文字以内で指定してください。",
            "The login must be 1 to 64 characters without spaces.",
        ));
    }
    if display_name.is_empty() {
        errors.push(required("display_name"));
    }
    if email.as_deref().is_some_and(|e| !is_plausible_email(e)) {
        errors.push(FieldError::new(
            "email",
            "メールアドレスの形式が正しくありません。",
            "The e-mail address is not valid.",
        ));
    }
    let profile = Profile {
        login,
        display_name,
        email,
    };
    (profile, errors)
}

/// 1 to [`MAX_LOGIN_CHARS`] characters, none of them white space.
fn is_plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_LOGIN_CHARS
        && !name.chars().any(char::is_whitespace)
}

async fn insert_user<C: ConnectionTrait>(
    db: &C,
    id: String,
    profile: Profile,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<user::Model, ApiError> {
    let model = user::ActiveModel {
        id: Set(id),
        login: Set(profile.login),
        display_name: Set(profile.display_name),
        email: Set(profile.email),
        password_hash: Set(password_hash),
        created_at: Set(now),
        language: Set(None),
        mail_preference: Set(MAIL_IMMEDIATE.to_owned()),
        deactivated_at: Set(None),
    };
    model
        .insert(db)
        .await
        .map_err(|error| conflict_on_unique(error, "login"))
}

/// Creates an organisation. A taken id is a `conflict`.
pub async fn create_organisation<C: ConnectionTrait>(
    db: &C,
    new: NewOrganisation,
    now: DateTime<Utc>,
) -> Result<organisation::Model, ApiError> {
    let mut errors = Vec::new();
    if new.id.trim().is_empty() {
        errors.push(required("id"));
    }
    if new.kind.trim().is_empty() {
        errors.push(required("kind"));
    }
    if new.name_ja.trim().is_empty() {
        errors.push(required("name_ja"));
    }
    reject_if_any(errors)?;
    let model = organisation::ActiveModel {
        id: Set(new.id.trim().to_owned()),
        kind: Set(new.kind.trim().to_owned()),
        name_ja: Set(new.name_ja.trim().to_owned()),
        name_en: Set(new
            .name_en
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())),
        created_at: Set(now),
        address: Set(None),
        representative: Set(None),
        corporate_number: Set(None),
        contacts: Set("[]".to_owned()),
    };
    model
        .insert(db)
        .await
        .map_err(|error| conflict_on_unique(error, "id"))
}

/// Gives a user one of the product's roles in an organisation for a period.
pub async fn add_membership<C: ConnectionTrait>(
    db: &C,
    new: NewMembership,
    now: DateTime<Utc>,
) -> Result<membership::Model, ApiError> {
    add_membership_in(db, &Vocabulary::product(), new, now).await
}

/// Gives a user a role of `vocabulary` in an organisation for a period: a deployment whose
/// definitions use roles of their own (its `Kinds::vocabulary`) can grant them.
pub async fn add_membership_in<C: ConnectionTrait>(
    db: &C,
    vocabulary: &Vocabulary,
    new: NewMembership,
    now: DateTime<Utc>,
) -> Result<membership::Model, ApiError> {
    let mut errors = check_role_and_period(vocabulary, &new.role, new.valid_from, new.valid_until);
    errors.extend(check_user_exists(db, "user_id", &new.user_id).await?);
    errors.extend(check_organisation_exists(db, &new.organisation_id).await?);
    reject_if_any(errors)?;
    let model = membership::ActiveModel {
        id: Set(new_id(now)),
        user_id: Set(new.user_id),
        organisation_id: Set(new.organisation_id),
        role: Set(new.role),
        valid_from: Set(new.valid_from),
        valid_until: Set(new.valid_until),
    };
    Ok(model.insert(db).await?)
}

/// Registers `deputy_user_id` as deputy for `principal_user_id`'s role in an organisation.
pub async fn add_deputy<C: ConnectionTrait>(
    db: &C,
    new: NewDeputy,
    now: DateTime<Utc>,
) -> Result<deputy::Model, ApiError> {
    let mut errors = check_role_and_period(
        &Vocabulary::product(),
        &new.role,
        new.valid_from,
        new.valid_until,
    );
    if new.principal_user_id == new.deputy_user_id {
        errors.push(FieldError::new(
            "deputy_user_id",
            "本人を代決者に指定することはできません。",
            "A user cannot be their own deputy.",
        ));
    }
    errors.extend(check_user_exists(db, "principal_user_id", &new.principal_user_id).await?);
    errors.extend(check_user_exists(db, "deputy_user_id", &new.deputy_user_id).await?);
    errors.extend(check_organisation_exists(db, &new.organisation_id).await?);
    reject_if_any(errors)?;
    let model = deputy::ActiveModel {
        id: Set(new_id(now)),
        principal_user_id: Set(new.principal_user_id),
        deputy_user_id: Set(new.deputy_user_id),
        role: Set(new.role),
        organisation_id: Set(new.organisation_id),
        valid_from: Set(new.valid_from),
        valid_until: Set(new.valid_until),
    };
    Ok(model.insert(db).await?)
}

/// The user with this exact login.
pub async fn find_by_login<C: ConnectionTrait>(
    db: &C,
    login: &str,
) -> Result<Option<user::Model>, ApiError> {
    Ok(user::Entity::find()
        .filter(user::Column::Login.eq(login))
        .one(db)
        .await?)
}

/// The user with this id.
pub async fn find_by_id<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<user::Model>, ApiError> {
    Ok(user::Entity::find_by_id(id.to_owned()).one(db).await?)
}

/// What a request's token stands for: its user, whether the token was revoked, and what the
/// user may do on the day.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
    /// The token was signed out.
    pub token_revoked: bool,
    /// As [`effective_grants`].
    pub grants: Vec<Grant>,
    /// As [`effective_deputyships`].
    pub deputy_for: Vec<Deputyship>,
    /// The authorisation epoch read with the session (see [`crate::services::recent`]): a
    /// write made on this session's authority may require that it has not moved since.
    pub authz_epoch: i64,
}

/// What [`SessionReads`] is asked: a token `(user_id, jti)`, the day (Asia/Tokyo) on which its
/// user's memberships must be in effect and, for a request about one instance, that instance's
/// id, whose row the same statement reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionKey {
    pub user_id: String,
    pub jti: String,
    pub day: NaiveDate,
    pub instance: Option<String>,
}

/// A session, and the row of the instance asked about with it (`None`: none was asked about,
/// or there is no such instance). Nothing says the user may see that instance: the caller
/// decides, once it has checked the session.
#[derive(Debug, Clone)]
pub struct SessionRead {
    pub session: Session,
    pub instance: Option<workflow_instance::Model>,
}

/// A key of one statement of [`SessionReads`]: user id, jti, instance id.
type Presented<'a> = (&'a str, &'a str, Option<&'a str>);

/// One row of the session query: the key asked about, its user, one membership in effect (if
/// any), and flags. The instance asked about, if any, comes in the same row, in columns named
/// [`INSTANCE_PREFIX`] and the column's name.
#[derive(Debug, FromQueryResult)]
struct SessionRow {
    presented_user: String,
    presented_jti: String,
    presented_instance: Option<String>,
    id: String,
    login: String,
    display_name: String,
    email: Option<String>,
    role: Option<String>,
    organisation_id: Option<String>,
    token_revoked: bool,
    deputises: bool,
    authz_epoch: i64,
}

/// The prefix of the instance's columns in a row of the session query.
const INSTANCE_PREFIX: &str = "instance_";

/// Where the session statement takes its keys and its day from.
enum Asked<'a> {
    /// Values bound in the statement: the distinct keys (not empty) as a `VALUES` list. Its
    /// text depends on how many keys there are (SQLite).
    Values(&'a BTreeSet<Presented<'a>>, NaiveDate),
    /// PostgreSQL parameters: `$1`, `$2` and `$3` the keys' user ids, jtis and instance ids as
    /// arrays of equal length, `$4` the day; one text for every batch, prepared once.
    PostgresArrays,
}

/// PostgreSQL's session statement (see [`Asked::PostgresArrays`]).
static POSTGRES_SESSIONS: LazyLock<String> =
    LazyLock::new(|| session_query(Asked::PostgresArrays).to_string(PostgresQueryBuilder));

/// The statement of [`SessionReads`].
fn session_query(asked: Asked<'_>) -> SelectStatement {
    let day = match &asked {
        Asked::Values(_, day) => SimpleExpr::from(*day),
        Asked::PostgresArrays => Expr::cust("$4::date"),
    };
    let presented = Alias::new("presented");
    // The columns of a `VALUES` list are `column1`, `column2`, … on both backends.
    let presented_user = || Expr::col((presented.clone(), Alias::new("column1")));
    let presented_jti = || Expr::col((presented.clone(), Alias::new("column2")));
    let presented_instance = || Expr::col((presented.clone(), Alias::new("column3")));
    let revoked = Query::select()
        .expr(Expr::val(1))
        .from(revoked_token::Entity)
        .and_where(revoked_token::Column::Jti.into_expr().eq(presented_jti()))
        .to_owned();
    let deputyships = Query::select()
        .expr(Expr::val(1))
        .from(deputy::Entity)
        .and_where(
            Expr::col((deputy::Entity, deputy::Column::DeputyUserId))
                .equals((user::Entity, user::Column::Id)),
        )
        .cond_where(in_effect_on(
            deputy::Column::ValidFrom,
            deputy::Column::ValidUntil,
            day.clone(),
        ))
        .to_owned();
    let mut select = Query::select();
    select
        .expr_as(presented_user(), Alias::new("presented_user"))
        .expr_as(presented_jti(), Alias::new("presented_jti"))
        .expr_as(presented_instance(), Alias::new("presented_instance"))
        .columns([
            (user::Entity, user::Column::Id),
            (user::Entity, user::Column::Login),
            (user::Entity, user::Column::DisplayName),
            (user::Entity, user::Column::Email),
        ])
        .columns([
            (membership::Entity, membership::Column::Role),
            (membership::Entity, membership::Column::OrganisationId),
        ])
        .expr_as(Expr::exists(revoked), Alias::new("token_revoked"))
        .expr_as(Expr::exists(deputyships), Alias::new("deputises"))
        .expr_as(
            Expr::cust(crate::services::recent::AUTHZ_EPOCH),
            Alias::new("authz_epoch"),
        );
    for column in workflow_instance::Column::iter() {
        select.expr_as(
            Expr::col((workflow_instance::Entity, column)),
            Alias::new(format!("{INSTANCE_PREFIX}{}", column.as_str())),
        );
    }
    match asked {
        Asked::Values(distinct, _) => select.from_values(
            distinct.iter().map(|(user, jti, instance)| {
                (
                    (*user).to_owned(),
                    (*jti).to_owned(),
                    instance.map(str::to_owned),
                )
            }),
            presented.clone(),
        ),
        // Set-returning functions in one select list advance together: row i holds element i
        // of each array.
        Asked::PostgresArrays => select.from_subquery(
            Query::select()
                .expr_as(Expr::cust("unnest($1::text[])"), Alias::new("column1"))
                .expr_as(Expr::cust("unnest($2::text[])"), Alias::new("column2"))
                .expr_as(Expr::cust("unnest($3::text[])"), Alias::new("column3"))
                .to_owned(),
            presented.clone(),
        ),
    };
    select
        .join(
            JoinType::InnerJoin,
            user::Entity,
            Condition::all()
                .add(Expr::col((user::Entity, user::Column::Id)).eq(presented_user()))
                // A deactivated user's sessions end with the deactivation.
                .add(Expr::col((user::Entity, user::Column::DeactivatedAt)).is_null()),
        )
        .join(
            JoinType::LeftJoin,
            membership::Entity,
            Condition::all()
                .add(
                    Expr::col((membership::Entity, membership::Column::UserId))
                        .equals((user::Entity, user::Column::Id)),
                )
                .add(in_effect_on(
                    membership::Column::ValidFrom,
                    membership::Column::ValidUntil,
                    day,
                )),
        )
        .join(
            JoinType::LeftJoin,
            workflow_instance::Entity,
            Expr::col((workflow_instance::Entity, workflow_instance::Column::Id))
                .eq(presented_instance()),
        )
        .to_owned()
}

/// The instance in a row of [`session_query`], if one was asked about and exists.
fn instance_in(row: &QueryResult) -> Result<Option<workflow_instance::Model>, DbErr> {
    let id: Option<String> =
        row.try_get(INSTANCE_PREFIX, workflow_instance::Column::Id.as_str())?;
    id.map(|_| workflow_instance::Model::from_query_result(row, INSTANCE_PREFIX))
        .transpose()
}

/// The answers to `keys`, in order, from the rows of [`session_query`] (`None`: no such user,
/// or a deactivated one).
async fn assemble_sessions<C: ConnectionTrait>(
    db: &C,
    keys: &[Presented<'_>],
    rows: Vec<(SessionRow, Option<workflow_instance::Model>)>,
    day: NaiveDate,
) -> Result<Vec<Option<SessionRead>>, DbErr> {
    type Owned = (String, String, Option<String>);
    let mut found: BTreeMap<Owned, SessionRead> = BTreeMap::new();
    let mut deputises = BTreeSet::new();
    for (row, instance) in rows {
        let key = (
            row.presented_user,
            row.presented_jti,
            row.presented_instance,
        );
        if row.deputises && !row.token_revoked {
            deputises.insert(key.clone());
        }
        let read = found.entry(key).or_insert_with(|| SessionRead {
            session: Session {
                user_id: row.id,
                login: row.login,
                display_name: row.display_name,
                email: row.email,
                token_revoked: row.token_revoked,
                grants: Vec::new(),
                deputy_for: Vec::new(),
                authz_epoch: row.authz_epoch,
            },
            instance,
        });
        if let (Some(role), Some(org)) = (row.role, row.organisation_id) {
            let grant = Grant {
                role,
                org: Some(org),
            };
            if !read.session.grants.contains(&grant) {
                read.session.grants.push(grant);
            }
        }
    }
    for (key, read) in &mut found {
        read.session.grants.sort();
        if deputises.contains(key) {
            read.session.deputy_for = effective_deputyships(db, &key.0, day).await?;
        }
    }
    Ok(keys
        .iter()
        .map(|(user, jti, instance)| {
            let key = (
                (*user).to_owned(),
                (*jti).to_owned(),
                instance.map(str::to_owned),
            );
            found.get(&key).cloned()
        })
        .collect())
}

/// Reads sessions for [`crate::services::batch::Batcher`]: the requests being authenticated
/// at one time, in one statement per day (a batch spans midnight at most).
///
/// Every request asks this (but an event or a creation on what this replica kept, see
/// [`crate::services::recent`]), so for each token the user, their memberships in effect, the
/// revocation of the token and whether they deputise for anyone come back in that one
/// statement; the deputyships themselves are only looked up for users who have some. A request
/// about one instance (an event) has its row read by the same statement, which saves the
/// database a statement and the request a wait. On PostgreSQL the statement's text is the same
/// for every batch (the keys are bound as arrays): it is prepared once and never rebuilt;
/// building and rendering it for each batch took about half the task's CPU.
#[derive(Debug)]
pub struct SessionReads {
    conn: TaskConnection,
}

impl SessionReads {
    /// Reads on `db` (on PostgreSQL, on a connection of its own made with its options).
    pub fn new(db: sea_orm::DatabaseConnection) -> Self {
        Self {
            conn: TaskConnection::new(db, "itaku session reads"),
        }
    }

    /// Runs [`POSTGRES_SESSIONS`] for `distinct` on the task's own connection.
    async fn read_postgres(
        &mut self,
        distinct: &BTreeSet<Presented<'_>>,
        day: NaiveDate,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let mut users = Vec::with_capacity(distinct.len());
        let mut jtis = Vec::with_capacity(distinct.len());
        let mut instances = Vec::with_capacity(distinct.len());
        for (user, jti, instance) in distinct {
            users.push(*user);
            jtis.push(*jti);
            instances.push(*instance);
        }
        let query = sea_orm::sqlx::query(POSTGRES_SESSIONS.as_str())
            .bind(users)
            .bind(jtis)
            .bind(instances)
            .bind(day);
        self.conn.fetch_all_postgres(query).await
    }
}

impl Load for SessionReads {
    type Key = SessionKey;
    type Value = Option<SessionRead>;

    async fn load(&mut self, keys: &[SessionKey]) -> Result<Vec<Option<SessionRead>>, DbErr> {
        let mut answers = vec![None; keys.len()];
        let days: BTreeSet<NaiveDate> = keys.iter().map(|key| key.day).collect();
        for day in days {
            let (slots, asked): (Vec<usize>, Vec<Presented<'_>>) = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key.day == day)
                .map(|(ix, key)| {
                    let presented = (
                        key.user_id.as_str(),
                        key.jti.as_str(),
                        key.instance.as_deref(),
                    );
                    (ix, presented)
                })
                .unzip();
            let distinct: BTreeSet<Presented<'_>> = asked.iter().copied().collect();
            if distinct.is_empty() {
                continue;
            }
            let rows = if self.conn.pool().get_database_backend() == DbBackend::Postgres {
                self.read_postgres(&distinct, day).await?
            } else {
                self.conn
                    .query_all(&session_query(Asked::Values(&distinct, day)))
                    .await?
            };
            let rows = rows
                .iter()
                .map(|row| Ok((SessionRow::from_query_result(row, "")?, instance_in(row)?)))
                .collect::<Result<Vec<_>, DbErr>>()?;
            let reads = assemble_sessions(self.conn.pool(), &asked, rows, day).await?;
            for (ix, read) in slots.into_iter().zip(reads) {
                if let Some(slot) = answers.get_mut(ix) {
                    *slot = read;
                }
            }
        }
        Ok(answers)
    }
}

/// The roles the user holds on `day` through memberships in effect that day, sorted.
pub async fn effective_grants<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    day: NaiveDate,
) -> Result<Vec<Grant>, ApiError> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(in_effect(
            membership::Column::ValidFrom,
            membership::Column::ValidUntil,
            day,
        ))
        .all(db)
        .await?;
    let grants: BTreeSet<Grant> = memberships.into_iter().map(grant_of).collect();
    Ok(grants.into_iter().collect())
}

/// The principals the user deputises for on `day`, each with the principal's grants (held
/// that day) in the role and organisation of the registration. Principals who hold none of
/// those grants that day are left out: there is nothing to decide for them.
pub async fn effective_deputyships<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    day: NaiveDate,
) -> Result<Vec<Deputyship>, DbErr> {
    let registrations = deputy::Entity::find()
        .filter(deputy::Column::DeputyUserId.eq(user_id))
        .filter(in_effect(
            deputy::Column::ValidFrom,
            deputy::Column::ValidUntil,
            day,
        ))
        .all(db)
        .await?;
    if registrations.is_empty() {
        return Ok(Vec::new());
    }
    let principals: BTreeSet<&str> = registrations
        .iter()
        .map(|r| r.principal_user_id.as_str())
        .collect();
    let held = membership::Entity::find()
        .filter(membership::Column::UserId.is_in(principals))
        .filter(in_effect(
            membership::Column::ValidFrom,
            membership::Column::ValidUntil,
            day,
        ))
        .all(db)
        .await?;

    let mut by_principal: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for registration in &registrations {
        let covered = held.iter().filter(|m| {
            m.user_id == registration.principal_user_id
                && m.role == registration.role
                && m.organisation_id == registration.organisation_id
        });
        for membership in covered {
            by_principal
                .entry(registration.principal_user_id.clone())
                .or_default()
                .insert(grant_of(membership.clone()));
        }
    }
    Ok(by_principal
        .into_iter()
        .map(|(principal, grants)| Deputyship {
            principal,
            grants: grants.into_iter().collect(),
        })
        .collect())
}

/// `from <= day AND (until IS NULL OR day <= until)`: both ends inclusive.
pub(crate) fn in_effect<Col: ColumnTrait>(from: Col, until: Col, day: NaiveDate) -> Condition {
    in_effect_on(from, until, day.into())
}

/// [`in_effect`] on a day given as an expression (a statement's parameter).
fn in_effect_on<Col: ColumnTrait>(from: Col, until: Col, day: SimpleExpr) -> Condition {
    let column = |col: Col| Expr::col((col.entity_name(), col));
    Condition::all().add(column(from).lte(day.clone())).add(
        Condition::any()
            .add(column(until).is_null())
            .add(column(until).gte(day)),
    )
}

fn grant_of(membership: membership::Model) -> Grant {
    Grant {
        role: membership.role,
        org: Some(membership.organisation_id),
    }
}

fn check_role_and_period(
    vocabulary: &Vocabulary,
    role: &str,
    from: NaiveDate,
    until: Option<NaiveDate>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !vocabulary.roles.contains(role) {
        let known = vocabulary
            .roles
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        errors.push(FieldError::new(
            "role",
            format!("不明なロールです。使用できるロール: {known}"),
            format!("Unknown role; known roles: {known}"),
        ));
    }
    if until.is_some_and(|until| until < from) {
        errors.push(FieldError::new(
            "valid_until",
            "終了日は開始日以降にしてください。",
            "The end date must not be before the start date.",
        ));
    }
    errors
}

async fn check_user_exists<C: ConnectionTrait>(
    db: &C,
    field: &str,
    user_id: &str,
) -> Result<Option<FieldError>, ApiError> {
    Ok(find_by_id(db, user_id)
        .await?
        .is_none()
        .then(|| FieldError::new(field, "該当する利用者が存在しません。", "No such user.")))
}

async fn check_organisation_exists<C: ConnectionTrait>(
    db: &C,
    organisation_id: &str,
) -> Result<Option<FieldError>, ApiError> {
    Ok(organisation::Entity::find_by_id(organisation_id.to_owned())
        .one(db)
        .await?
        .is_none()
        .then(|| {
            FieldError::new(
                "organisation_id",
                "該当する組織が存在しません。",
                "No such organisation.",
            )
        }))
}

fn required(field: &str) -> FieldError {
    FieldError::new(field, "必須項目です。", "This field is required.")
}

fn reject_if_any(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// A unique-key violation becomes `conflict` naming the field and why, in the shape of a
/// validation error's field (`field`, `reason.ja`, `reason.en`), so a form shows it beside the
/// field; anything else stays internal.
fn conflict_on_unique(error: DbErr, field: &str) -> ApiError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::new(ErrorCode::Conflict)
            .with_details(serde_json::json!({
                "field": field,
                "reason": {
                    "ja": "この値は既に使われています。別の値を指定してください。",
                    "en": "This value is already taken; choose another.",
                },
            }))
            .with_cause(error),
        _ => ApiError::internal(error),
    }
}

/// `local@domain.tld`, loosely: mail delivery is the real test.
fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The web UI languages a user may choose.
pub const LANGUAGES: [&str; 2] = ["ja", "en"];

/// Stores the user's language for the web UI (`ja` or `en`).
pub async fn set_language<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    language: &str,
) -> Result<(), ApiError> {
    if !LANGUAGES.contains(&language) {
        return Err(ApiError::invalid_field(
            "language",
            "表示言語は ja または en を指定してください。",
            "The language is ja or en.",
        ));
    }
    user::Entity::update_many()
        .col_expr(user::Column::Language, Expr::value(language.to_owned()))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Mail as it comes.
pub const MAIL_IMMEDIATE: &str = "immediate";
/// One mail a day listing what the user would have received.
pub const MAIL_DAILY_DIGEST: &str = "daily_digest";

/// The user's mail preference, as the API shows and takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailPreference {
    /// `immediate` or `daily_digest`.
    pub mail: String,
}

/// The user's mail preference.
pub async fn mail_preference<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> Result<MailPreference, ApiError> {
    let u = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(MailPreference {
        mail: u.mail_preference,
    })
}

/// Stores the user's mail preference (`immediate` or `daily_digest`); anything else is refused
/// and changes nothing.
pub async fn set_mail_preference<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    input: &MailPreference,
) -> Result<MailPreference, ApiError> {
    if input.mail != MAIL_IMMEDIATE && input.mail != MAIL_DAILY_DIGEST {
        return Err(ApiError::invalid_field(
            "mail",
            "メールの受け取り方は immediate(都度)か daily_digest(1日1通のまとめ)を指定してください。",
            "Mail is immediate or daily_digest.",
        ));
    }
    user::Entity::update_many()
        .col_expr(
            user::Column::MailPreference,
            Expr::value(input.mail.clone()),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    mail_preference(db, user_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_email_addresses() {
        assert!(is_plausible_email("tanaka@city.example.lg.jp"));
        assert!(!is_plausible_email("tanaka"));
        assert!(!is_plausible_email("@example.jp"));
        assert!(!is_plausible_email("tanaka@localhost"));
        assert!(!is_plausible_email("ta naka@example.jp"));
    }

    #[test]
    fn unknown_roles_and_reversed_periods_are_both_reported() {
        let day = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        let product = Vocabulary::product();
        let errors = check_role_and_period(&product, "boss", day, day.pred_opt());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["role", "valid_until"]);
        assert!(check_role_and_period(&product, "chief", day, Some(day)).is_empty());
    }

    #[test]
    fn a_deployment_may_grant_the_roles_of_its_own_vocabulary() {
        let day = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        let product = Vocabulary::product();
        assert_eq!(check_role_and_period(&product, "staff", day, None).len(), 1);
        let extended = product.with_roles(&["staff"]);
        assert!(check_role_and_period(&extended, "staff", day, None).is_empty());
    }

    #[test]
    fn names_are_one_to_sixty_four_characters_without_spaces() {
        assert!(is_plausible_name("user-7"));
        assert!(is_plausible_name(&"x".repeat(MAX_LOGIN_CHARS)));
        assert!(!is_plausible_name(""));
        assert!(!is_plausible_name("user 7"));
        assert!(!is_plausible_name(&"x".repeat(MAX_LOGIN_CHARS + 1)));
    }

    /// Many tokens read in one statement (on PostgreSQL on the reader's own connection) get
    /// what each would get alone: grants in effect that day, a revoked token flagged (and its
    /// deputyships not looked up), a deactivated or unknown user none, a token asked twice the
    /// same answer twice; and the instance asked about with a token comes back with its session,
    /// as a read of it alone finds it (none when it does not exist or none was asked about).
    async fn sessions_in_one_statement_answer_as_each_alone(
        backend: crate::services::test_db::Backend,
    ) -> crate::services::test_db::TestResult {
        let db = crate::services::test_db::TestDb::fresh(backend).await?;
        let now = DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")?.with_timezone(&Utc);
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).ok_or("no such day");
        create_organisation(
            &db.conn,
            NewOrganisation {
                id: "meguro".to_owned(),
                kind: "municipality".to_owned(),
                name_ja: "目黒区".to_owned(),
                name_en: None,
            },
            now,
        )
        .await?;
        let hash = password::hash_blocking(SecretString::from("a long enough password")).await?;
        for id in ["officer", "deputy", "gone"] {
            let user = ImportedUser {
                id: id.to_owned(),
                login: id.to_owned(),
                display_name: id.to_owned(),
                email: None,
                password_hash: hash.clone(),
            };
            import_user(&db.conn, user, now).await?;
        }
        for (user, role, from, until) in [
            ("officer", "officer", day(1, 1)?, None),
            ("officer", "manager", day(1, 1)?, Some(day(6, 30)?)),
            ("deputy", "chief", day(1, 1)?, None),
        ] {
            let membership = NewMembership {
                user_id: user.to_owned(),
                organisation_id: "meguro".to_owned(),
                role: role.to_owned(),
                valid_from: from,
                valid_until: until,
            };
            add_membership(&db.conn, membership, now).await?;
        }
        let deputy = NewDeputy {
            principal_user_id: "officer".to_owned(),
            deputy_user_id: "deputy".to_owned(),
            role: "officer".to_owned(),
            organisation_id: "meguro".to_owned(),
            valid_from: day(1, 1)?,
            valid_until: None,
        };
        add_deputy(&db.conn, deputy, now).await?;
        crate::services::tokens::revoke(&db.conn, "deputy-revoked", now).await?;
        user::Entity::update_many()
            .col_expr(user::Column::DeactivatedAt, Expr::value(now))
            .filter(user::Column::Id.eq("gone"))
            .exec(&db.conn)
            .await?;

        for id in ["i-1", "i-2"] {
            crate::services::test_db::insert_instance(&db.conn, id, now).await?;
        }

        let on = day(11, 23)?;
        let keys: Vec<SessionKey> = [
            ("officer", "t1", Some("i-1")),
            ("deputy", "deputy-revoked", Some("i-1")),
            ("gone", "t3", Some("i-1")),
            ("officer", "t1", Some("i-1")),
            ("nobody", "t4", None),
            ("deputy", "t5", Some("i-2")),
            ("officer", "t1", None),
            ("officer", "t1", Some("missing")),
        ]
        .iter()
        .map(|(user, jti, instance)| SessionKey {
            user_id: (*user).to_owned(),
            jti: (*jti).to_owned(),
            day: on,
            instance: instance.map(str::to_owned),
        })
        .collect();
        let mut reads = SessionReads::new(db.conn.clone());
        let together = reads.load(&keys).await?;
        let mut alone = Vec::new();
        for key in &keys {
            alone.extend(reads.load(std::slice::from_ref(key)).await?);
        }
        assert_eq!(format!("{together:?}"), format!("{alone:?}"));

        // Who, whether revoked, the roles held, how many principals deputised for, the
        // instance read with the session.
        type Summary = (String, bool, Vec<String>, usize, Option<String>);
        let summary: Vec<Option<Summary>> = together
            .iter()
            .map(|read| {
                read.as_ref().map(
                    |SessionRead {
                         session: s,
                         instance,
                     }| {
                        let roles = s.grants.iter().map(|g| g.role.clone()).collect();
                        (
                            s.user_id.clone(),
                            s.token_revoked,
                            roles,
                            s.deputy_for.len(),
                            instance.as_ref().map(|row| row.id.clone()),
                        )
                    },
                )
            })
            .collect();
        let officer = |instance: Option<&str>| {
            Some((
                "officer".to_owned(),
                false,
                vec!["officer".to_owned()],
                0,
                instance.map(str::to_owned),
            ))
        };
        let deputy = |revoked, deputises, instance: &str| {
            Some((
                "deputy".to_owned(),
                revoked,
                vec!["chief".to_owned()],
                deputises,
                Some(instance.to_owned()),
            ))
        };
        assert_eq!(
            summary,
            [
                officer(Some("i-1")),
                deputy(true, 0, "i-1"),
                None,
                officer(Some("i-1")),
                None,
                deputy(false, 1, "i-2"),
                officer(None),
                officer(None),
            ]
        );
        // The row read with the session is the row as a read of it alone finds it.
        let read = together
            .first()
            .and_then(|read| read.as_ref())
            .and_then(|read| read.instance.clone());
        let alone = entity::workflow_instance::Entity::find_by_id("i-1".to_owned())
            .one(&db.conn)
            .await?;
        assert_eq!(read, alone);
        assert!(read.is_some());
        db.close().await
    }

    crate::services::test_db::backend_tests!(sessions_in_one_statement_answer_as_each_alone);
}
