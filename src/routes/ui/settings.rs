//! The user's own settings: how they take their mail (each as it comes, or one daily digest).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::view::{self, Lang, Page, UiLang};
use super::{html, see_other, Csrf, UiError, UiUser};
use crate::services::users::{self, MailPreference, MAIL_DAILY_DIGEST};
use crate::startup::AppState;

/// `GET /settings` (`?saved=1` after a change).
pub async fn form(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let pref = users::mail_preference(&state.db, &user.0.id)
        .await
        .map_err(fail)?;
    let saved = request.query_string().split('&').any(|p| p == "saved=1");
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/settings")
        .await
        .map_err(fail)?;
    let data = page.data(
        &lang.text("settings.title", ""),
        json!({
            "digest": pref.mail == MAIL_DAILY_DIGEST,
            "saved": saved,
            "email": user.0.email,
        }),
    );
    let body = view::render("settings", &data).map_err(fail)?;
    Ok(csrf.apply(html(StatusCode::OK, body)))
}

/// The settings form.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    mail: String,
}

/// `POST /settings`: stores the mail preference, then shows the page again.
pub async fn save(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, UiError> {
    Csrf::check(&request, form.csrf.as_deref())?;
    let lang = Lang::of(&request);
    let input = MailPreference {
        mail: form.mail.clone(),
    };
    users::set_mail_preference(&state.db, &user.0.id, &input)
        .await
        .map_err(|e| UiError::api(e, lang))?;
    Ok(see_other("/settings?saved=1"))
}
