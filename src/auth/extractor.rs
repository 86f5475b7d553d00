//! The [`AuthUser`] extractor: a handler that takes one cannot forget to authenticate.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::token::TOKEN_COOKIE;
use super::{Deputyship, Grant};
use crate::error::{ApiError, ErrorCode};
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
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = presented_token(request);
        // The session cookie reaches the API from any page the browser shows, so on its own it
        // authorises reads only: the web UI writes through its own forms, each with its CSRF
        // token, and API clients send the bearer token. Defence in depth beside SameSite=Strict.
        let cookie_write = matches!(token, Some(Presented::Cookie(_)))
            && request.path().starts_with("/api/")
            && !request.method().is_safe();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState is not registered"))?;
            if cookie_write {
                return Err(ErrorCode::CookieCannotWrite.into());
            }
            let token = token.ok_or(ErrorCode::Unauthenticated)?;
            authenticate(&state, token.value()).await
        })
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

async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let now = state.clock.now();
    let claims = state.jwt.verify(token, now).map_err(|error| {
        tracing::debug!(%error, "token refused");
        ApiError::new(ErrorCode::Unauthenticated)
    })?;
    let today = state.clock.today_jst();
    let session = state
        .sessions
        .load((claims.sub.clone(), claims.jti.clone(), today))
        .await?
        .ok_or(ErrorCode::Unauthenticated)?;
    if session.token_revoked {
        tracing::debug!(jti = %claims.jti, "revoked token presented");
        return Err(ErrorCode::Unauthenticated.into());
    }
    Ok(AuthUser {
        id: session.user_id,
        login: session.login,
        display_name: session.display_name,
        email: session.email,
        grants: session.grants,
        deputy_for: session.deputy_for,
        token: PresentedToken {
            jti: claims.jti,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
        },
    })
}
