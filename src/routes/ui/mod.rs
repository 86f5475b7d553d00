//! The web UI: server-rendered pages under `/`, Japanese first (issue 4).
//!
//! Handlers stay thin: they authenticate with [`UiUser`], call the same services as the API
//! (which answer 404 for what the viewer may not see) and render a template. Every form post
//! carries a CSRF token (double submit: a random cookie and the same value in the form), and
//! every HTML response a strict Content-Security-Policy.

mod admin;
mod application_form;
mod applications;
mod calendar;
mod documents;
mod evidence;
mod form;
mod ismap;
mod items;
mod obligations;
mod portal;
mod session;
mod settings;
mod structure_chart;
pub mod view;

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use rand::RngCore as _;
use serde_json::json;

use crate::auth::{session as auth_session, AuthUser, TOKEN_COOKIE};
use crate::error::{ApiError, ErrorCode};
use view::{Lang, Page, UiLang};

/// The CSRF cookie (double submit).
pub const CSRF_COOKIE: &str = "itaku_csrf";

/// The policy of every UI response: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest URL-encoded form a page may post.
const FORM_LIMIT: usize = 512 * 1024;

const SITE_CSS: &str = include_str!("../../../frontend/static/site.css");
const PRINT_CSS: &str = include_str!("../../../frontend/static/print.css");

/// The UI's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(page_headers))
            // The application form's long texts need more than the default 16 KiB.
            .app_data(web::FormConfig::default().limit(FORM_LIMIT))
            .route("/", web::get().to(home))
            .route("/static/{file}", web::get().to(asset))
            .route("/language", web::post().to(session::language))
            .route("/sign-in", web::get().to(session::form))
            .route("/sign-in", web::post().to(session::sign_in))
            .route("/sign-out", web::post().to(session::sign_out))
            .route("/inbox", web::get().to(applications::inbox))
            .route("/settings", web::get().to(settings::form))
            .route("/settings", web::post().to(settings::save))
            .route("/portal", web::get().to(portal::home))
            .route("/admin/workflows", web::get().to(admin::workflows))
            .route("/admin/users", web::get().to(admin::users))
            .route("/admin/users", web::post().to(admin::create_user))
            .route("/admin/users/{id}/roles", web::post().to(admin::grant_role))
            .route(
                "/admin/users/{id}/deactivate",
                web::post().to(admin::deactivate),
            )
            .route(
                "/admin/memberships/{id}/end",
                web::post().to(admin::end_role),
            )
            .route("/admin/mail", web::get().to(admin::mail))
            .route("/admin/mail/{id}/retry", web::post().to(admin::retry_mail))
            .route("/admin/mail/{id}/eml", web::get().to(admin::mail_eml))
            .route("/admin/organisations", web::get().to(admin::organisations))
            .route(
                "/admin/organisations",
                web::post().to(admin::create_organisation),
            )
            .route(
                "/admin/organisations/{id}",
                web::get().to(admin::organisation),
            )
            .route(
                "/admin/organisations/{id}",
                web::post().to(admin::update_organisation),
            )
            .route("/ismap", web::get().to(ismap::list))
            .route("/ismap", web::post().to(ismap::import))
            .route(
                "/applications/new",
                web::get().to(application_form::new_form),
            )
            .route("/applications", web::post().to(application_form::create))
            .route("/applications/{id}", web::get().to(applications::detail))
            .route(
                "/applications/{id}/edit",
                web::get().to(application_form::edit_form),
            )
            .route(
                "/applications/{id}/edit",
                web::post().to(application_form::update),
            )
            .route(
                "/applications/{id}/events",
                web::post().to(applications::fire),
            )
            .route("/evidence", web::get().to(evidence::overview))
            .route(
                "/organisations/{id}/evidence",
                web::get().to(evidence::library),
            )
            .route(
                "/organisations/{id}/evidence",
                web::post().to(evidence::create),
            )
            .route(
                "/organisations/{id}/evidence/new",
                web::get().to(evidence::new_form),
            )
            .route("/evidence/{id}/files", web::post().to(evidence::attach))
            .route("/evidence/{id}/verify", web::post().to(evidence::verify))
            .route("/evidence/{id}/revoke", web::post().to(evidence::revoke))
            .route("/calendar", web::get().to(calendar::month))
            .route("/obligations/{id}", web::get().to(obligations::detail))
            .route(
                "/obligations/{id}/record",
                web::post().to(obligations::record),
            )
            .route(
                "/obligations/{id}/{decision}",
                web::post().to(obligations::decision),
            )
            .route("/documents", web::get().to(documents::index))
            .route("/documents/assessments", web::post().to(documents::record))
            .route(
                "/documents/assessments/{id}/withdraw",
                web::post().to(documents::withdraw),
            )
            .route("/items", web::get().to(items::list))
            .route("/items/{id}", web::get().to(items::chain))
            .route(
                "/items/{id}/structure-chart",
                web::get().to(structure_chart::chart),
            )
            .route(
                "/items/{id}/structure-chart/versions",
                web::post().to(structure_chart::create_version),
            )
            .route(
                "/items/{id}/structure-chart/versions/{number}",
                web::get().to(structure_chart::version),
            )
            .route(
                "/items/{id}/structure-chart/versions/{number}/submit",
                web::post().to(structure_chart::submit_version),
            ),
    );
}

/// The CSP on every UI response (pages and errors alike), and no caching of pages.
async fn page_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_asset = request.path().starts_with("/static/");
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// `/`: a contractor's home is its portal, everyone else's the inbox.
async fn home(user: Option<UiUser>) -> HttpResponse {
    let contractor = user.is_some_and(|u| u.0.grants.iter().any(|g| g.role == "contractor"));
    see_other(if contractor { "/portal" } else { "/inbox" })
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, UiError> {
    let body = match file.as_str() {
        "site.css" => SITE_CSS,
        "print.css" => PRINT_CSS,
        _ => return Err(UiError::not_found(Lang::Ja)),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body))
}

/// The query of a page that may say what was just done (`?done=…`).
#[derive(Debug, serde::Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: Option<String>,
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A signed-in user's page: `template` rendered with the layout's values (`title`, the CSRF
/// token of the request, `path` for the language form) and `own`, the CSRF cookie set when new.
#[allow(clippy::too_many_arguments)]
pub async fn user_page(
    state: &crate::startup::AppState,
    request: &HttpRequest,
    user: &UiUser,
    path: &str,
    title: &str,
    template: &str,
    own: serde_json::Value,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(request);
    let fail = |e| UiError::api(e, lang);
    let csrf = Csrf::of(request);
    let page = Page::for_user(state, &user.0, lang, &csrf.token, path)
        .await
        .map_err(fail)?;
    let body = view::render(template, &page.data(title, own)).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

/// An HTML page response.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The request's CSRF token: the cookie's, or a new one the response must set.
pub struct Csrf {
    pub token: String,
    fresh: bool,
}

impl Csrf {
    /// The token of the request's cookie, or a fresh random one.
    pub fn of(request: &HttpRequest) -> Self {
        match request
            .cookie(CSRF_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| v.len() == 64)
        {
            Some(token) => Self {
                token,
                fresh: false,
            },
            None => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                Self {
                    token: hex::encode(bytes),
                    fresh: true,
                }
            }
        }
    }

    /// Sets the cookie on `response` when the token is new.
    pub fn apply(&self, mut response: HttpResponse) -> HttpResponse {
        if self.fresh {
            let cookie = Cookie::build(CSRF_COOKIE, self.token.clone())
                .path("/")
                .http_only(true)
                .secure(true)
                .same_site(SameSite::Strict)
                .finish();
            // Only fails for an invalid cookie, which this is not.
            let _ = response.add_cookie(&cookie);
        }
        response
    }

    /// Checks a form's token against the cookie: both present and equal (in constant time).
    pub fn check(request: &HttpRequest, submitted: Option<&str>) -> Result<(), UiError> {
        let lang = Lang::of(request);
        let cookie = request.cookie(CSRF_COOKIE);
        match (cookie, submitted) {
            (Some(cookie), Some(submitted))
                if cookie.value().len() == 64
                    && constant_time_eq(cookie.value().as_bytes(), submitted.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(UiError::new(UiErrorKind::Csrf, lang)),
        }
    }
}

impl Csrf {
    /// Checks a multipart form's token before anything else of its body is read: the token
    /// must be the body's first part (`csrf`, as the UI's upload forms put it), so a post
    /// without the right token is refused before any file is received, buffered or stored.
    pub async fn check_multipart(
        request: &HttpRequest,
        payload: &mut actix_multipart::Multipart,
    ) -> Result<(), UiError> {
        use futures_util::StreamExt as _;
        let refused = || UiError::new(UiErrorKind::Csrf, Lang::of(request));
        // Refuse early when there is no cookie to compare with.
        if request
            .cookie(CSRF_COOKIE)
            .is_none_or(|c| c.value().len() != 64)
        {
            return Err(refused());
        }
        let Some(Ok(mut field)) = payload.next().await else {
            return Err(refused());
        };
        if field.name() != Some("csrf") {
            return Err(refused());
        }
        let mut token = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| refused())?;
            // A token is 64 hexadecimal digits; anything longer is not one.
            if token.len() + chunk.len() > 64 {
                return Err(refused());
            }
            token.extend_from_slice(&chunk);
        }
        let token = String::from_utf8(token).map_err(|_| refused())?;
        Self::check(request, Some(&token))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signed-in user of a UI request. Without a session the browser is sent to the sign-in
/// page; with an expired or revoked one it is told to sign in again.
pub struct UiUser(pub AuthUser);

impl FromRequest for UiUser {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let lang = Lang::of(request);
        let had_session = request
            .cookie(TOKEN_COOKIE)
            .is_some_and(|c| !c.value().is_empty());
        let user = AuthUser::from_request(request, payload);
        Box::pin(async move {
            match user.await {
                Ok(user) => Ok(Self(user)),
                Err(e) if e.code() == ErrorCode::Unauthenticated => {
                    let kind = if had_session {
                        UiErrorKind::SessionExpired
                    } else {
                        UiErrorKind::SignIn
                    };
                    Err(UiError::new(kind, lang))
                }
                Err(e) => Err(UiError::api(e, lang)),
            }
        })
    }
}

/// What went wrong, rendered as a page in the user's language.
#[derive(Debug)]
pub enum UiErrorKind {
    /// Not signed in: go to the sign-in page.
    SignIn,
    /// The session ended: say so, and forget the cookie.
    SessionExpired,
    /// A form without the right CSRF token.
    Csrf,
    /// An error of the services.
    Api(ApiError),
}

/// A UI failure.
#[derive(Debug)]
pub struct UiError {
    kind: UiErrorKind,
    lang: Lang,
}

impl UiError {
    pub fn new(kind: UiErrorKind, lang: Lang) -> Self {
        Self { kind, lang }
    }

    pub fn api(e: ApiError, lang: Lang) -> Self {
        Self::new(UiErrorKind::Api(e), lang)
    }

    pub fn not_found(lang: Lang) -> Self {
        Self::api(ApiError::new(ErrorCode::NotFound), lang)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            UiErrorKind::SignIn => write!(f, "not signed in"),
            UiErrorKind::SessionExpired => write!(f, "session expired"),
            UiErrorKind::Csrf => write!(f, "CSRF token missing or wrong"),
            UiErrorKind::Api(e) => write!(f, "{e:?}"),
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match &self.kind {
            UiErrorKind::SignIn => StatusCode::SEE_OTHER,
            UiErrorKind::SessionExpired => StatusCode::UNAUTHORIZED,
            UiErrorKind::Csrf => StatusCode::FORBIDDEN,
            UiErrorKind::Api(e) => e.code().spec().status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let lang = self.lang;
        let t = |key: &str| lang.text(key, key);
        let (heading, body, link) = match &self.kind {
            UiErrorKind::SignIn => return see_other("/sign-in"),
            UiErrorKind::SessionExpired => (
                t("session.expired_title"),
                t("session.expired_body"),
                json!({ "href": "/sign-in", "text": t("session.sign_in_again") }),
            ),
            UiErrorKind::Csrf => (
                t("errors.csrf_title"),
                t("errors.csrf_body"),
                json!({ "href": "/inbox", "text": t("errors.back_to_inbox") }),
            ),
            UiErrorKind::Api(e) if e.code() == ErrorCode::NotFound => (
                t("errors.not_found_title"),
                t("errors.not_found_body"),
                json!({ "href": "/inbox", "text": t("errors.back_to_inbox") }),
            ),
            UiErrorKind::Api(e) => {
                let spec = e.code().spec();
                (
                    t("errors.title"),
                    lang.pick(spec.ja, spec.en).to_owned(),
                    json!({ "href": "/inbox", "text": t("errors.back_to_inbox") }),
                )
            }
        };
        // Error pages carry no form token and no user: they must render whatever failed.
        let page = Page::anonymous(lang, "", "/inbox");
        let data = page.data(
            &heading,
            json!({ "heading": heading, "body": body, "link": link }),
        );
        let mut response = match view::render("message", &data) {
            Ok(body) => html(self.status_code(), body),
            Err(error) => {
                tracing::error!(?error, "the error page does not render");
                HttpResponse::build(self.status_code())
                    .content_type("text/plain; charset=utf-8")
                    .body(heading)
            }
        };
        if matches!(self.kind, UiErrorKind::SessionExpired) {
            let _ = response.add_removal_cookie(&auth_session::removal_cookie());
        }
        response
    }
}
