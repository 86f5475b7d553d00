//! Signing in and out, and choosing the language.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::view::{self, Lang, Page, UiLang, LANG_COOKIE};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::auth::session::{self as auth_session, Credentials};
use crate::error::ErrorCode;
use crate::services;
use crate::startup::AppState;

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

/// `GET /sign-in`.
pub async fn form(request: HttpRequest, q: web::Query<FormQuery>) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let notice = q
        .signed_out
        .as_ref()
        .map(|_| lang.text("sign_in.signed_out", ""));
    page(&request, lang, StatusCode::OK, "", notice, None)
}

fn page(
    request: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    login: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, UiError> {
    let csrf = Csrf::of(request);
    let page = Page::anonymous(lang, &csrf.token, "/sign-in");
    let title = lang.text("sign_in.title", "");
    let data = page.data(
        &title,
        json!({ "login": login, "notice": notice, "error": error }),
    );
    let body = view::render("sign_in", &data).map_err(|e| UiError::api(e, lang))?;
    Ok(csrf.apply(html(status, body)))
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// `POST /sign-in`: the session cookie and on to the inbox, or the form again with the reason.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    Csrf::check(&request, form.csrf.as_deref())?;
    let form = form.into_inner();
    let login = form.login.clone();
    let credentials = Credentials {
        login: form.login,
        password: SecretString::from(form.password),
    };
    let client_ip = request.peer_addr().map(|a| a.ip());
    match auth_session::sign_in(&state, credentials, client_ip).await {
        Ok(signed_in) => {
            // Home: the portal for a contractor, the inbox for anyone else.
            let mut response = see_other("/");
            let cookie = auth_session::session_cookie(&signed_in.token, state.token_ttl);
            let _ = response.add_cookie(&cookie);
            // The language the user chose follows them to any browser they sign in from.
            let chosen = services::users::find_by_id(&state.db, &signed_in.user.id)
                .await
                .map_err(|e| UiError::api(e, lang))?
                .and_then(|u| u.language);
            if let Some(chosen) = chosen {
                let _ = response.add_cookie(&lang_cookie(Lang::parse(&chosen)));
            }
            Ok(response)
        }
        Err(e) => {
            let (status, key) = match e.code() {
                ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "sign_in.rate_limited"),
                ErrorCode::InvalidCredentials | ErrorCode::ValidationFailed => {
                    (StatusCode::UNAUTHORIZED, "sign_in.failed")
                }
                _ => return Err(UiError::api(e, lang)),
            };
            page(
                &request,
                lang,
                status,
                &login,
                None,
                Some(lang.text(key, "")),
            )
        }
    }
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /sign-out`: revokes the token and forgets the cookie.
pub async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    Csrf::check(&request, form.csrf.as_deref())?;
    auth_session::sign_out(&state, &user.0)
        .await
        .map_err(|e| UiError::api(e, lang))?;
    let mut response = see_other("/sign-in?signed_out=1");
    let _ = response.add_removal_cookie(&auth_session::removal_cookie());
    Ok(response)
}

/// The language form.
#[derive(Debug, Deserialize)]
pub struct LanguageForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// The cookie that remembers the language in this browser.
fn lang_cookie(lang: Lang) -> Cookie<'static> {
    Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish()
}

/// `POST /language`: remembers the language in a cookie and, for a signed-in user, on the
/// user; then returns to the page.
pub async fn language(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: Option<UiUser>,
    form: web::Form<LanguageForm>,
) -> Result<HttpResponse, UiError> {
    Csrf::check(&request, form.csrf.as_deref())?;
    let lang = Lang::parse(&form.lang);
    if let Some(user) = user {
        services::users::set_language(&state.db, &user.0.id, lang.code())
            .await
            .map_err(|e| UiError::api(e, lang))?;
    }
    // Only a path of this site: never an open redirect.
    let back = if form.back.starts_with('/')
        && !form.back.starts_with("//")
        && !form.back.contains('\\')
    {
        form.back.as_str()
    } else {
        "/inbox"
    };
    let mut response = see_other(back);
    let _ = response.add_cookie(&lang_cookie(lang));
    Ok(response)
}
