//! Sign-in, sign-out and the current user.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::auth::session::{self, Credentials, UserView};
use crate::auth::{AuthUser, Deputyship, Grant};
use crate::error::ApiError;
use crate::services::users::{self, MailPreference};
use crate::startup::AppState;

/// `POST /auth/sign-in`, `POST /auth/sign-out`, `GET /me`, `GET/PUT /me/mail-preference`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/sign-in").route(web::post().to(sign_in)))
        .service(web::resource("/auth/sign-out").route(web::post().to(sign_out)))
        .service(web::resource("/me").route(web::get().to(me)))
        .service(
            web::resource("/me/mail-preference")
                .route(web::get().to(mail_preference))
                .route(web::put().to(set_mail_preference)),
        );
}

/// The caller's mail preference: `{"mail": "immediate" | "daily_digest"}`.
async fn mail_preference(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let pref = users::mail_preference(&state.db, &user.id).await?;
    Ok(HttpResponse::Ok().json(pref))
}

/// Changes the caller's mail preference (anything but the two values is refused, naming
/// `mail`).
async fn set_mail_preference(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<MailPreference>,
) -> Result<HttpResponse, ApiError> {
    let pref = users::set_mail_preference(&state.db, &user.id, &body).await?;
    Ok(HttpResponse::Ok().json(pref))
}

async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    credentials: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    // The socket's peer, not X-Forwarded-For: a client could forge that to dodge the limit.
    let client_ip = request.peer_addr().map(|address| address.ip());
    let signed_in = session::sign_in(&state, credentials.into_inner(), client_ip).await?;
    Ok(HttpResponse::Ok()
        .cookie(session::session_cookie(&signed_in.token, state.token_ttl))
        .json(signed_in))
}

async fn sign_out(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    session::sign_out(&state, &user).await?;
    Ok(HttpResponse::NoContent()
        .cookie(session::removal_cookie())
        .finish())
}

/// The body of `GET /me`.
#[derive(Serialize)]
struct Me {
    user: UserView,
    grants: Vec<Grant>,
    deputy_for: Vec<Deputyship>,
}

async fn me(user: AuthUser) -> web::Json<Me> {
    web::Json(Me {
        user: UserView {
            id: user.id,
            login: user.login,
            display_name: user.display_name,
            email: user.email,
        },
        grants: user.grants,
        deputy_for: user.deputy_for,
    })
}
