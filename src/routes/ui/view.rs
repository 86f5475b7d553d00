//! Templates, message catalogues and the pieces every page shares (language, header, dates).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::HttpRequest;
use chrono::{DateTime, NaiveDate, Utc};
use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::auth::AuthUser;
use crate::domain::fiscal::date_label_ja;
use crate::error::ApiError;
use crate::services;
use crate::startup::AppState;

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "itaku_lang";

/// The templates, embedded in the binary: `(name, source)`.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout",
        include_str!("../../../frontend/templates/layout.hbs"),
    ),
    (
        "sign_in",
        include_str!("../../../frontend/templates/sign_in.hbs"),
    ),
    (
        "message",
        include_str!("../../../frontend/templates/message.hbs"),
    ),
    (
        "inbox",
        include_str!("../../../frontend/templates/inbox.hbs"),
    ),
    (
        "application",
        include_str!("../../../frontend/templates/application.hbs"),
    ),
    (
        "items",
        include_str!("../../../frontend/templates/items.hbs"),
    ),
    ("item", include_str!("../../../frontend/templates/item.hbs")),
    (
        "form_field",
        include_str!("../../../frontend/templates/form_field.hbs"),
    ),
    (
        "form_sections",
        include_str!("../../../frontend/templates/form_sections.hbs"),
    ),
    (
        "form_summary",
        include_str!("../../../frontend/templates/form_summary.hbs"),
    ),
    (
        "expiry_calendar",
        include_str!("../../../frontend/templates/expiry_calendar.hbs"),
    ),
    (
        "evidence_library",
        include_str!("../../../frontend/templates/evidence_library.hbs"),
    ),
    (
        "evidence_form",
        include_str!("../../../frontend/templates/evidence_form.hbs"),
    ),
    (
        "application_form",
        include_str!("../../../frontend/templates/application_form.hbs"),
    ),
    (
        "portal",
        include_str!("../../../frontend/templates/portal.hbs"),
    ),
    (
        "admin_users",
        include_str!("../../../frontend/templates/admin_users.hbs"),
    ),
    (
        "admin_organisations",
        include_str!("../../../frontend/templates/admin_organisations.hbs"),
    ),
    (
        "admin_mail",
        include_str!("../../../frontend/templates/admin_mail.hbs"),
    ),
    (
        "admin_organisation",
        include_str!("../../../frontend/templates/admin_organisation.hbs"),
    ),
    (
        "admin_workflows",
        include_str!("../../../frontend/templates/admin_workflows.hbs"),
    ),
    (
        "ismap",
        include_str!("../../../frontend/templates/ismap.hbs"),
    ),
    (
        "evidence_overview",
        include_str!("../../../frontend/templates/evidence_overview.hbs"),
    ),
    (
        "settings",
        include_str!("../../../frontend/templates/settings.hbs"),
    ),
    (
        "obligation",
        include_str!("../../../frontend/templates/obligation.hbs"),
    ),
    (
        "calendar",
        include_str!("../../../frontend/templates/calendar.hbs"),
    ),
    (
        "documents",
        include_str!("../../../frontend/templates/documents.hbs"),
    ),
    (
        "structure_chart",
        include_str!("../../../frontend/templates/structure_chart.hbs"),
    ),
    (
        "structure_chart_version",
        include_str!("../../../frontend/templates/structure_chart_version.hbs"),
    ),
];

/// The message catalogues, embedded in the binary.
pub const CATALOGUE_JA: &str = include_str!("../../../frontend/i18n/ja.toml");
/// English.
pub const CATALOGUE_EN: &str = include_str!("../../../frontend/i18n/en.toml");

/// The language of the UI: the diagrams' own, so that both always agree.
pub use crate::workflow::diagram::Lang;

/// What the UI needs of a language: its code, its catalogue and its texts.
pub trait UiLang: Sized {
    /// The language a code names; anything else is Japanese.
    fn parse(code: &str) -> Self;
    /// The request's language: its `itaku_lang` cookie, else Japanese.
    fn of(request: &HttpRequest) -> Self;
    /// `ja` or `en`.
    fn code(self) -> &'static str;
    /// The catalogue of this language.
    fn catalogue(self) -> &'static Value;
    /// `key` as `section.name` from the catalogue, or `fallback` when it has none.
    fn text(self, key: &str, fallback: &str) -> String;
    /// The text of a `{ja, en}` pair in this language.
    fn pick<'a>(self, ja: &'a str, en: &'a str) -> &'a str;
}

impl UiLang for Lang {
    fn parse(code: &str) -> Self {
        if code == "en" {
            Self::En
        } else {
            Self::Ja
        }
    }

    fn of(request: &HttpRequest) -> Self {
        request
            .cookie(LANG_COOKIE)
            .map_or(Self::Ja, |c| Self::parse(c.value()))
    }

    fn code(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }

    fn catalogue(self) -> &'static Value {
        match self {
            Self::Ja => &CATALOGUES.0,
            Self::En => &CATALOGUES.1,
        }
    }

    fn text(self, key: &str, fallback: &str) -> String {
        let mut at = self.catalogue();
        for part in key.split('.') {
            match at.get(part) {
                Some(next) => at = next,
                None => return fallback.to_owned(),
            }
        }
        at.as_str().unwrap_or(fallback).to_owned()
    }

    fn pick<'a>(self, ja: &'a str, en: &'a str) -> &'a str {
        match self {
            Self::Ja => ja,
            Self::En => en,
        }
    }
}

/// The text of a `{"ja": …, "en": …}` object (a message or a label) in `lang`.
pub fn text_of(lang: Lang, pair: Option<&Value>) -> String {
    let side = |key: &str| {
        pair.and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    lang.pick(side("ja"), side("en")).to_owned()
}

/// Parses a catalogue; a broken one is caught by the unit tests, so at run time it is empty.
pub fn parse_catalogue(source: &str) -> Result<Value, String> {
    toml::from_str::<Value>(source).map_err(|e| e.to_string())
}

static CATALOGUES: LazyLock<(Value, Value)> = LazyLock::new(|| {
    let load = |source: &str| {
        parse_catalogue(source).unwrap_or_else(|error| {
            tracing::error!(%error, "a UI message catalogue does not parse");
            Value::Null
        })
    };
    (load(CATALOGUE_JA), load(CATALOGUE_EN))
});

/// Builds the registry: strict (a missing value is an error, not an empty string), HTML
/// escaping on, every template embedded.
pub fn registry() -> Result<Handlebars<'static>, String> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.set_dev_mode(false);
    for (name, source) in TEMPLATES {
        registry
            .register_partial(name, *source)
            .map_err(|e| format!("{name}: {e}"))?;
        registry
            .register_template_string(name, *source)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(registry)
}

static REGISTRY: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(registry);

/// Renders a page template with `data`.
pub fn render(template: &str, data: &Value) -> Result<String, ApiError> {
    let registry = REGISTRY
        .as_ref()
        .map_err(|e| ApiError::internal(format!("templates: {e}")))?;
    registry
        .render(template, data)
        .map_err(|e| ApiError::internal(format!("template {template}: {e}")))
}

/// What the layout needs: the catalogue, language, CSRF token, path and the signed-in user.
pub struct Page {
    pub lang: Lang,
    pub csrf: String,
    pub path: String,
    pub user: Value,
}

impl Page {
    /// A page for someone not signed in.
    pub fn anonymous(lang: Lang, csrf: &str, path: &str) -> Self {
        Self {
            lang,
            csrf: csrf.to_owned(),
            path: path.to_owned(),
            user: Value::Null,
        }
    }

    /// A page for `user`, with their organisations and roles of today for the header.
    pub async fn for_user(
        state: &AppState,
        user: &AuthUser,
        lang: Lang,
        csrf: &str,
        path: &str,
    ) -> Result<Self, ApiError> {
        let names =
            services::chains::names(&state.db, user.grants.iter().filter_map(|g| g.org.clone()))
                .await?;
        let grants: Vec<Value> = user
            .grants
            .iter()
            .map(|g| {
                let org = g.org.clone().unwrap_or_default();
                json!({
                    "org_name": names.get(&org).cloned().unwrap_or(org),
                    "role": lang.text(&format!("roles.{}", g.role), &g.role),
                })
            })
            .collect();
        Ok(Self {
            lang,
            csrf: csrf.to_owned(),
            path: path.to_owned(),
            user: json!({
                "display_name": user.display_name,
                "grants": grants,
                "is_contractor": user.grants.iter().any(|g| g.role == "contractor"),
                "is_admin": user.has_role("admin"),
                "is_municipal": user.grants.iter().any(|g| {
                    crate::services::access::MUNICIPAL_ROLES.contains(&g.role.as_str())
                }),
            }),
        })
    }

    /// The template data: the layout's values with the page's own merged in.
    pub fn data(&self, title: &str, own: Value) -> Value {
        let mut data = json!({
            "t": self.lang.catalogue(),
            "lang": self.lang.code(),
            "csrf": self.csrf,
            "path": self.path,
            "user": self.user,
            "title": title,
        });
        if let (Some(data), Value::Object(own)) = (data.as_object_mut(), own) {
            data.extend(own);
        }
        data
    }
}

/// A day as shown on a decision: the Japanese era date beside the Western one in Japanese
/// (`令和8年11月22日（2026-11-22）`), the Western one alone in English.
pub fn day_label(lang: Lang, day: NaiveDate) -> String {
    match lang {
        Lang::Ja => format!("{}（{day}）", date_label_ja(day)),
        Lang::En => day.to_string(),
    }
}

/// A moment in Japan's time, with the era date in Japanese.
pub fn moment_label(lang: Lang, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&crate::clock::jst());
    format!(
        "{} {}",
        day_label(lang, local.date_naive()),
        local.format("%H:%M")
    )
}

/// Display names of users by id.
pub async fn user_names(
    state: &AppState,
    ids: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut names = BTreeMap::new();
    for id in ids {
        if names.contains_key(&id) {
            continue;
        }
        if let Some(user) = services::users::find_by_id(&state.db, &id).await? {
            names.insert(id, user.display_name);
        }
    }
    Ok(names)
}

/// Escapes text for HTML and SVG written by hand (templates escape by themselves).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    keys(&format!("{prefix}{k}."), v, out);
                }
            }
            _ => {
                out.insert(prefix.trim_end_matches('.').to_owned());
            }
        }
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let ja = parse_catalogue(CATALOGUE_JA).expect("ja.toml parses");
        let en = parse_catalogue(CATALOGUE_EN).expect("en.toml parses");
        let (mut ja_keys, mut en_keys) = (BTreeSet::new(), BTreeSet::new());
        keys("", &ja, &mut ja_keys);
        keys("", &en, &mut en_keys);
        let only_ja: Vec<_> = ja_keys.difference(&en_keys).collect();
        let only_en: Vec<_> = en_keys.difference(&ja_keys).collect();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "only in ja.toml: {only_ja:?}; only in en.toml: {only_en:?}"
        );
        assert!(ja_keys.len() > 50);
    }

    #[test]
    fn every_template_compiles() {
        registry().expect("templates compile");
    }

    #[test]
    fn a_decision_day_shows_the_era_beside_the_western_date() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date");
        assert_eq!(day_label(Lang::Ja, day), "令和8年11月22日（2026-11-22）");
        assert_eq!(day_label(Lang::En, day), "2026-11-22");
    }

    #[test]
    fn hand_written_markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('1')</script>&\""),
            "&lt;script&gt;alert(&#x27;1&#x27;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
