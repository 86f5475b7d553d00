//! Signing in and out: the rules around the password check and the token.

use std::net::IpAddr;

use actix_web::cookie::{time, Cookie, SameSite};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::rate_limit::AttemptKey;
use super::token::TOKEN_COOKIE;
use super::{password, AuthUser};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services;
use crate::startup::AppState;

/// The body of `POST /api/v1/auth/sign-in`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub login: String,
    pub password: SecretString,
}

/// A user as shown to clients.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub login: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// A successful sign-in.
#[derive(Debug, Serialize)]
pub struct SignedIn {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

/// Checks the credentials and issues a token.
///
/// Unknown logins and wrong passwords fail identically and take the same argon2 work; after
/// too many failures from one address for one login, every attempt is refused for a while.
pub async fn sign_in(
    state: &AppState,
    credentials: Credentials,
    client_ip: Option<IpAddr>,
) -> Result<SignedIn, ApiError> {
    validate(&credentials)?;
    let now = state.clock.now();
    let key = AttemptKey::new(&credentials.login, client_ip);
    state
        .sign_in_limiter
        .check(&key, now)
        .map_err(ApiError::rate_limited)?;

    let user = services::users::find_by_login(&state.db, credentials.login.trim()).await?;
    let stored_hash = user.as_ref().map_or_else(
        || state.dummy_password_hash.clone(),
        |user| user.password_hash.clone(),
    );
    let matches = password::verify_blocking(credentials.password, stored_hash).await?;
    let user = match user {
        // A deactivated user is refused like a wrong password, after the same work.
        Some(user) if matches && user.deactivated_at.is_none() => user,
        _ => {
            state.sign_in_limiter.record_failure(key, now);
            return Err(ErrorCode::InvalidCredentials.into());
        }
    };
    state.sign_in_limiter.reset(&key);

    let issued = state.jwt.issue(&user.id, now, state.token_ttl)?;
    tracing::info!(user_id = %user.id, "signed in");
    Ok(SignedIn {
        token: issued.token,
        expires_at: issued.expires_at,
        user: UserView {
            id: user.id,
            login: user.login,
            display_name: user.display_name,
            email: user.email,
        },
    })
}

/// Revokes the token the user signed in with.
pub async fn sign_out(state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    services::tokens::revoke(&state.db, &user.token.jti, user.token.expires_at).await?;
    tracing::info!(user_id = %user.id, "signed out");
    Ok(())
}

fn validate(credentials: &Credentials) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if credentials.login.trim().is_empty() {
        errors.push(FieldError::new(
            "login",
            "ログインIDを入力してください。",
            "Enter your login.",
        ));
    }
    if credentials.password.expose_secret().is_empty() {
        errors.push(FieldError::new(
            "password",
            "パスワードを入力してください。",
            "Enter your password.",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The session cookie for browsers: HttpOnly, Secure, SameSite=Strict, whole site.
pub fn session_cookie(token: &str, max_age: chrono::Duration) -> Cookie<'static> {
    Cookie::build(TOKEN_COOKIE, token.to_owned())
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age.num_seconds()))
        .finish()
}

/// A cookie that makes the browser forget the session cookie.
pub fn removal_cookie() -> Cookie<'static> {
    let mut cookie = session_cookie("", chrono::Duration::zero());
    cookie.make_removal();
    cookie
}
