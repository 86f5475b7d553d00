//! Mail templates: handlebars, embedded in the binary, Japanese first and then English.
//!
//! Each template `NAME` is two files in `frontend/templates/mail/`: `NAME.text.hbs`, whose first
//! line is the subject and the rest the plain-text part, and `NAME.html.hbs`, the HTML part.
//! Both wrap their body in a shared layout (`_text_layout.hbs`, `_html_layout.hbs`) that adds
//! the application's particulars, the comment, the link and the footer. The HTML part is
//! rendered with handlebars' HTML escaping; the text part and the subject are plain text.

use handlebars::{no_escape, Handlebars};
use serde_json::Value;

/// Where the template files live, relative to this file (they are compiled in).
macro_rules! embedded {
    ($($name:literal),+ $(,)?) => {
        &[$((
            $name,
            include_str!(concat!("../../frontend/templates/mail/", $name, ".text.hbs")),
            include_str!(concat!("../../frontend/templates/mail/", $name, ".html.hbs")),
        )),+]
    };
}

/// Every template: `(name, text with the subject on its first line, html)`.
const TEMPLATES: &[(&str, &str, &str)] = embedded!(
    "application_submitted",
    "application_endorsed",
    "application_returned",
    "application_permitted",
    "application_rejected",
    "application_withdrawn",
    "step_waiting",
    "post_review_requested",
    "decision_reminder",
    "decision_escalated",
    "evidence_expiring",
    "evidence_expired",
    "permission_suspended",
    "permission_suspended_by_cascade",
    "permission_reinstated",
    "obligation_due",
    "obligation_overdue",
    "obligation_escalated",
    "obligation_submitted",
    "obligation_accepted",
    "obligation_returned",
    "daily_digest",
);

const TEXT_LAYOUT: &str = include_str!("../../frontend/templates/mail/_text_layout.hbs");
const HTML_LAYOUT: &str = include_str!("../../frontend/templates/mail/_html_layout.hbs");

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line, without control characters.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A template could not be registered or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("mail template {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("no mail template named {0}")]
    Unknown(String),
    #[error("mail template {name} does not render: {source}")]
    Render {
        name: String,
        #[source]
        source: Box<handlebars::RenderError>,
    },
}

/// The compiled templates (built once, shared by the dispatcher).
#[derive(Debug)]
pub struct MailTemplates {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

impl MailTemplates {
    /// The templates compiled into the binary. `strict` makes a reference to a missing field
    /// an error (the tests use it to catch misspelt fields; delivery renders it empty).
    pub fn embedded(strict: bool) -> Result<Self, TemplateError> {
        let mut text = Handlebars::new();
        text.register_escape_fn(no_escape);
        let mut html = Handlebars::new();
        for registry in [&mut text, &mut html] {
            registry.set_strict_mode(strict);
        }
        register(&mut text, "text_layout", TEXT_LAYOUT)?;
        register(&mut html, "html_layout", HTML_LAYOUT)?;
        for (name, text_source, html_source) in TEMPLATES {
            let (subject, body) = text_source.split_once('\n').unwrap_or((text_source, ""));
            register(&mut text, &format!("{name}.subject"), subject)?;
            register(&mut text, name, body)?;
            register(&mut html, name, html_source)?;
        }
        Ok(Self { text, html })
    }

    /// The names of every template.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TEMPLATES.iter().map(|(name, _, _)| *name)
    }

    /// Whether a template of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.html.has_template(name)
    }

    /// Renders the subject, then both parts with `data` (the subject is added to it as
    /// `subject`, for the HTML title).
    pub fn render(&self, name: &str, data: &Value) -> Result<RenderedMail, TemplateError> {
        if !self.has(name) {
            return Err(TemplateError::Unknown(name.to_owned()));
        }
        let failed = |source| TemplateError::Render {
            name: name.to_owned(),
            source: Box::new(source),
        };
        let subject = one_line(
            &self
                .text
                .render(&format!("{name}.subject"), data)
                .map_err(failed)?,
        );
        let mut data = data.clone();
        if let Some(object) = data.as_object_mut() {
            object.insert("subject".to_owned(), Value::String(subject.clone()));
        }
        let text = self.text.render(name, &data).map_err(failed)?;
        let html = self.html.render(name, &data).map_err(failed)?;
        Ok(RenderedMail {
            subject,
            text: tidy(&text),
            html,
        })
    }
}

fn register(
    registry: &mut Handlebars<'static>,
    name: &str,
    source: &str,
) -> Result<(), TemplateError> {
    registry
        .register_template_string(name, source)
        .map_err(|source| TemplateError::Register {
            name: name.to_owned(),
            source: Box::new(source),
        })
}

/// Control characters (a newline in a name, say) never reach the Subject header.
fn one_line(text: &str) -> String {
    text.split(char::is_control)
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most one blank line in a row, and a final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        blank = if line.is_empty() { blank + 1 } else { 0 };
        if blank < 2 {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every field any template reads, as the dispatcher fills them.
    pub(crate) fn sample(contractor: &str) -> Value {
        json!({
            "link": "https://itaku.example.lg.jp/applications/a1",
            "application": {
                "id": "a1",
                "number": "令和8年度-再委-0001",
                "applicant": "東京都国民健康保険団体連合会",
                "contractor": contractor,
                "root_consignor": "目黒区",
            },
            "state": { "ja": "審査・決裁中", "en": "Under review and decision" },
            "step": { "ja": "課長決裁", "en": "Manager" },
            "comment": "体制図を修正してください。\n二行目",
            "timer": { "label": { "ja": "決裁の督促", "en": "Decision reminder" }, "business_days": 5, "due": "2026-12-01" },
            "evidence": {
                "id": "e1",
                "kind": { "ja": "ISO/IEC 27001", "en": "ISO/IEC 27001" },
                "organisation": "株式会社テスト",
                "valid_until": "2027-03-31",
            },
            "obligation": {
                "title": { "ja": "研修の実施", "en": "Training" },
                "organisation": "株式会社テスト",
                "due": "2027-03-31",
            },
            "digest": { "count": 1, "items": [{ "subject": "件名", "link": "https://itaku.example.lg.jp/x" }] },
        })
    }

    #[test]
    fn every_template_renders_strictly_with_a_subject_both_parts_and_the_link() {
        let templates = MailTemplates::embedded(true).unwrap();
        for name in MailTemplates::names() {
            let mail = templates
                .render(name, &sample("株式会社テスト"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!mail.subject.is_empty(), "{name}");
            assert!(mail.subject.contains(" / "), "{name}: ja / en subject");
            let link = "https://itaku.example.lg.jp/";
            assert!(mail.text.contains(link), "{name} text link");
            assert!(mail.html.contains(link), "{name} html link");
            assert!(mail.html.starts_with("<!DOCTYPE html>"), "{name}");
            // Japanese first, then English.
            let ja = mail.text.find("このメール").unwrap_or(usize::MAX);
            let en = mail.text.find("This message").unwrap_or(0);
            assert!(ja < en, "{name}");
        }
    }

    #[test]
    fn every_template_a_workflow_or_the_vocabulary_names_exists() {
        let templates = MailTemplates::embedded(false).unwrap();
        // The embedded list must be MAIL_TEMPLATES exactly (include_str! needs literals).
        let embedded: Vec<&str> = MailTemplates::names().collect();
        assert_eq!(embedded, crate::domain::MAIL_TEMPLATES);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let mut named = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let value: toml::Value = toml::from_str(&source).unwrap();
            let mut found = Vec::new();
            templates_named(&value, &mut found);
            for name in found {
                assert!(templates.has(&name), "{} names {name}", path.display());
                named += 1;
            }
        }
        assert!(named > 10, "the product workflows name templates");
    }

    /// Every string under a `template` key, at any depth.
    fn templates_named(value: &toml::Value, found: &mut Vec<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, v) in table {
                    match (key.as_str(), v) {
                        ("template", toml::Value::String(name)) => found.push(name.clone()),
                        _ => templates_named(v, found),
                    }
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| templates_named(v, found)),
            _ => {}
        }
    }

    #[test]
    fn names_are_escaped_in_html_and_kept_on_one_line_in_the_subject() {
        let templates = MailTemplates::embedded(true).unwrap();
        let mail = templates
            .render(
                "application_submitted",
                &sample("<script>alert(1)</script>\r\nBcc: x@evil.example"),
            )
            .unwrap();
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(mail.html.contains("&lt;script&gt;"), "{}", mail.html);
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
        // Plain text shows the name as it is.
        assert!(mail.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn the_text_part_reads_in_order_with_the_particulars() {
        let templates = MailTemplates::embedded(true).unwrap();
        let mail = templates
            .render("application_returned", &sample("株式会社テスト"))
            .unwrap();
        assert_eq!(
            mail.subject,
            "再委託申請が差し戻されました 令和8年度-再委-0001 / Subcontract application returned"
        );
        assert!(
            mail.text
                .starts_with("再委託申請 令和8年度-再委-0001(株式会社テスト)が差し戻されました。"),
            "{}",
            mail.text
        );
        assert!(
            mail.text
                .contains("申請番号 / Application: 令和8年度-再委-0001\n"),
            "{}",
            mail.text
        );
        assert!(
            mail.text
                .contains("コメント / Comment:\n体制図を修正してください。\n二行目\n"),
            "{}",
            mail.text
        );
        assert!(!mail.text.contains("\n\n\n"), "{}", mail.text);
    }

    #[test]
    fn an_unknown_template_is_an_error() {
        let templates = MailTemplates::embedded(false).unwrap();
        assert!(matches!(
            templates.render("no_such_mail", &json!({})),
            Err(TemplateError::Unknown(_))
        ));
    }
}
