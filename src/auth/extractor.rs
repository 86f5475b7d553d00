//! The [`AuthUser`] extractor: a handler that takes one cannot forget to authenticate.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use entity::workflow_instance;
use serde::Serialize;

use super::token::{Claims, TOKEN_COOKIE};
use super::{Deputyship, Grant};
use crate::error::{ApiError, ErrorCode};
use crate::services::users::{Session, SessionKey, SessionRead};
use crate::startup::AppState;

/// The signed-in user of a request, with what they may do today (Asia/Tokyo).
#[derive(Debug, Clone, Serialize)]
pub struct AuthUser {
    pub id: String,
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Roles held today through effective memberships.
    pub grants: Vec<Grant>,
    /// Principals this user is a registered deputy for today, with the grants concerned.
    pub deputy_for: Vec<Deputyship>,
    /// The token the request presented.
    #[serde(skip)]
    pub token: PresentedToken,
}

/// Identity of the token a request was authenticated with.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

impl AuthUser {
    /// Whether the user holds `role` today, in any organisation.
    pub fn has_role(&self, role: &str) -> bool {
        self.grants.iter().any(|grant| grant.role == role)
    }

    /// Whether the user holds `role` today in organisation `org`.
    pub fn has_role_in(&self, role: &str, org: &str) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.role == role && grant.org.as_deref() == Some(org))
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticating = Authenticating::extract(request);
        Box::pin(async move { authenticating?.user().await })
    }
}

/// A request's session check, started but not finished: its token is present, allowed for the
/// request and signed by us, and the session (revocation, the user, their grants) is still to
/// be read. A handler about one instance reads its row with the session
/// ([`Authenticating::user_and_instance`]): one statement, one wait, and nothing read from the
/// database for a token that is not ours or a session that does not hold.
pub struct Authenticating {
    state: web::Data<AppState>,
    claims: Claims,
}

impl Authenticating {
    /// The checks that need no database, in the order the API answers them.
    fn extract(request: &HttpRequest) -> Result<Self, ApiError> {
        let state = request
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| ApiError::internal("AppState is not registered"))?;
        let token = presented_token(request);
        // The session cookie reaches the API from any page the browser shows, so on its own it
        // authorises reads only: the web UI writes through its own forms, each with its CSRF
        // token, and API clients send the bearer token. Defence in depth beside SameSite=Strict.
        if matches!(token, Some(Presented::Cookie(_)))
            && request.path().starts_with("/api/")
            && !request.method().is_safe()
        {
            return Err(ErrorCode::CookieCannotWrite.into());
        }
        let token = token.ok_or(ErrorCode::Unauthenticated)?;
        let claims = state
            .jwt
            .verify(token.value(), state.clock.now())
            .map_err(|error| {
                tracing::debug!(%error, "token refused");
                ApiError::new(ErrorCode::Unauthenticated)
            })?;
        Ok(Self { state, claims })
    }

    /// Reads the session: the signed-in user, or why there is none.
    pub async fn user(self) -> Result<AuthUser, ApiError> {
        self.read(None).await.map(|(user, _)| user)
    }

    /// Reads the session and, in the same statement, the row of instance `id` (`None`: no such
    /// instance). The row is returned only with a session that holds; whether the user may see
    /// the instance is for the caller to decide.
    pub async fn user_and_instance(
        self,
        id: String,
    ) -> Result<(AuthUser, Option<workflow_instance::Model>), ApiError> {
        self.read(Some(id)).await
    }

    /// The session this replica kept for the token (see [`crate::services::recent`]) and the
    /// authorisation epoch it was read at, without reading it: only for a decision whose write
    /// is made on condition that the epoch has not moved since.
    pub fn kept(&self) -> Option<(AuthUser, i64)> {
        let day = self.state.clock.today_jst();
        let session = self
            .state
            .recent
            .session(&self.claims.sub, &self.claims.jti, day)?;
        let epoch = session.authz_epoch;
        Some((
            signed_in(Session::clone(&session), &self.claims, &self.state),
            epoch,
        ))
    }

    async fn read(
        self,
        instance: Option<String>,
    ) -> Result<(AuthUser, Option<workflow_instance::Model>), ApiError> {
        let Self { state, claims } = self;
        let day = state.clock.today_jst();
        let key = SessionKey {
            user_id: claims.sub.clone(),
            jti: claims.jti.clone(),
            day,
            instance,
        };
        let SessionRead { session, instance } = state
            .sessions
            .load(key)
            .await?
            .ok_or(ErrorCode::Unauthenticated)?;
        if session.token_revoked {
            tracing::debug!(jti = %claims.jti, "revoked token presented");
            return Err(ErrorCode::Unauthenticated.into());
        }
        state.recent.keep_session(&claims.jti, day, &session);
        Ok((signed_in(session, &claims, &state), instance))
    }
}

/// The user a session that holds stands for, with the token presented.
fn signed_in(session: Session, claims: &Claims, state: &AppState) -> AuthUser {
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(|| state.clock.now());
    AuthUser {
        id: session.user_id,
        login: session.login,
        display_name: session.display_name,
        email: session.email,
        grants: session.grants,
        deputy_for: session.deputy_for,
        token: PresentedToken {
            jti: claims.jti.clone(),
            expires_at,
        },
    }
}

impl FromRequest for Authenticating {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::extract(request))
    }
}

/// A token and where the request carried it.
enum Presented {
    Bearer(String),
    Cookie(String),
}

impl Presented {
    fn value(&self) -> &str {
        match self {
            Self::Bearer(t) | Self::Cookie(t) => t,
        }
    }
}

/// The bearer token of the `Authorization` header, else the session cookie.
fn presented_token(request: &HttpRequest) -> Option<Presented> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .map(Presented::Bearer);
    }
    request
        .cookie(TOKEN_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| !token.is_empty())
        .map(Presented::Cookie)
}
