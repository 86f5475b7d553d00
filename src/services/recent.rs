//! What this replica read or wrote last, kept so that an event can be decided without reading
//! it again, and never trusted.
//!
//! Every event needs its session (the user, their grants and deputyships today, whether the
//! token was revoked) and its instance's row, and every creation its session. Read for every
//! request, they cost PostgreSQL a third of its work at 8 clients and every request a round
//! trip before its write. A replica keeps the last session it read for each token and the last
//! row it read or wrote for each instance, and decides an event or a plain creation on them;
//! the write of that decision then proves they still hold, in the same statement:
//!
//! - the row, by the version condition every transition's write already has: any change of
//!   the row, by any replica, moves its version;
//! - the session, by the authorisation epoch ([`AUTHZ_EPOCH`]), a counter that triggers move on
//!   every change of the users, memberships, deputyships and revoked tokens (the migration
//!   `m20261203_000001_authz_epoch`): the write is made only if it still has the value read
//!   with the session.
//!
//! A decision on kept values that is refused, needs more than the row and its record, or
//! whose write finds them changed (a new row is inserted only under the epoch) writes nothing, and the request is answered as if nothing
//! had been kept: both are read and the event decided again. What a request is answered is
//! therefore what it would be without this cache; only the reads it saves differ.

use std::sync::Arc;

use chrono::NaiveDate;
use entity::workflow_instance;
use quick_cache::sync::Cache;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, Statement};

use crate::services::users::Session;

/// The authorisation epoch as a subquery, for the session read and the conditional writes.
pub const AUTHZ_EPOCH: &str = "(SELECT epoch FROM authz_epoch WHERE id = 1)";

/// The condition under which a write decided on a session read at `epoch` is made: the epoch
/// has not moved since.
pub fn epoch_holds(epoch: i64) -> SimpleExpr {
    Expr::cust_with_values(format!("{AUTHZ_EPOCH} = ?"), [epoch])
}

/// The authorisation epoch now.
pub async fn current_epoch(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    db.query_one(Statement::from_string(
        backend,
        format!("SELECT {AUTHZ_EPOCH}"),
    ))
    .await?
    .ok_or_else(|| DbErr::Custom("the authorisation epoch has no row".to_owned()))?
    .try_get_by_index(0)
}

/// How many tokens' sessions a replica keeps.
const SESSIONS: usize = 4_096;
/// How many instances' rows a replica keeps.
const ROWS: usize = 4_096;

/// The sessions and rows one replica keeps; shared by its HTTP workers.
pub struct Recent {
    /// By token id (`jti`) and the day (Asia/Tokyo) the grants were read for.
    sessions: Cache<(String, NaiveDate), Arc<Session>>,
    /// By instance id.
    rows: Cache<String, Arc<workflow_instance::Model>>,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent")
            .field("sessions", &self.sessions.len())
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            sessions: Cache::new(SESSIONS),
            rows: Cache::new(ROWS),
        }
    }
}

impl Recent {
    /// The session kept for token `jti` of `user_id` on `day`.
    pub fn session(&self, user_id: &str, jti: &str, day: NaiveDate) -> Option<Arc<Session>> {
        self.sessions
            .get(&(jti.to_owned(), day))
            .filter(|session| session.user_id == user_id)
    }

    /// Keeps a session just read for token `jti` on `day`; a revoked token's is not kept.
    pub fn keep_session(&self, jti: &str, day: NaiveDate, session: &Session) {
        if !session.token_revoked {
            self.sessions
                .insert((jti.to_owned(), day), Arc::new(session.clone()));
        }
    }

    /// The row kept for instance `id`.
    pub fn row(&self, id: &str) -> Option<Arc<workflow_instance::Model>> {
        self.rows.get(id)
    }

    /// Keeps a row as it was just read or written.
    pub fn keep_row(&self, row: workflow_instance::Model) {
        self.rows.insert(row.id.clone(), Arc::new(row));
    }

    /// Forgets the row of instance `id` (it changed, or may have).
    pub fn forget_row(&self, id: &str) {
        self.rows.remove(id);
    }
}
