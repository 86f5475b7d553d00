//! The web UI over HTTP: pages, the CSRF check, escaping, visibility and the CSP header.

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, Cast, TestApp, KOKUHOREN, PASSWORD};
use crate::on_both_backends;

/// A browser's cookies, kept by hand (the test client has no cookie store).
#[derive(Default)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// A jar holding a session token from the API's sign-in.
    pub fn with_session(token: &str) -> Self {
        let mut jar = Self::default();
        jar.set("itaku_token", token);
        jar
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        if !value.is_empty() {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.set(name, value);
        }
    }

    pub fn get_value(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub async fn get(&mut self, app: &TestApp, path: &str) -> Response {
        let response = app
            .client
            .get(app.url(path))
            .header(COOKIE, self.header())
            .send()
            .await
            .unwrap();
        self.take(&response);
        response
    }

    pub async fn post(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Response {
        let response = app
            .client
            .post(app.url(path))
            .header(COOKIE, self.header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(&response);
        response
    }
}

impl Jar {
    /// Posts a multipart form (uploads).
    pub async fn post_multipart(
        &mut self,
        app: &TestApp,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Response {
        let response = app
            .client
            .post(app.url(path))
            .header(COOKIE, self.header())
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.take(&response);
        response
    }
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + 64].to_owned()
}

/// The body of an HTML page with the expected status, the CSP and the content type.
pub async fn page(response: Response, status: u16) -> String {
    let got = response.status().as_u16();
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(
        csp.as_deref(),
        Some(itaku::routes::ui::CONTENT_SECURITY_POLICY),
        "every page carries the CSP"
    );
    assert!(content_type.unwrap().starts_with("text/html"));
    body
}

/// The application's first target at the officer's step, and its id.
async fn submitted(app: &TestApp, cast: &Cast) -> (String, Value) {
    let instance = cast.submitted_tier2(app).await;
    let apps = app
        .get_json("/api/v1/applications", &cast.officer.token)
        .await;
    let application = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["targets"][0]["instance_id"] == instance["id"])
        .unwrap()
        .clone();
    (application["id"].as_str().unwrap().to_owned(), application)
}

/// The counts of an inbox page.
fn inbox_counts(html: &str) -> [u32; 4] {
    ["total", "submit", "endorse", "approve"].map(|k| {
        let marker = format!(r#"<dd id="count-{k}">"#);
        let start = html.find(&marker).unwrap_or_else(|| panic!("no count-{k}")) + marker.len();
        html[start..].split('<').next().unwrap().parse().unwrap()
    })
}

/// Each target waits in the inbox of whoever acts at its step now: the submitter for a draft,
/// the intermediate tier to endorse, each step of the municipality's route in turn — and a
/// decision whose evidence is missing still waits for its decider.
async fn the_inbox_lists_each_target_for_whoever_acts_at_its_step(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let inbox = |token: String| {
        let app = &app;
        async move {
            let mut jar = Jar::with_session(&token);
            page(jar.get(app, "/inbox").await, 200).await
        }
    };
    let fire = |token: String, id: String, event: &'static str| {
        let app = &app;
        async move {
            let response = app
                .post_json_with_token(
                    &format!("/api/v1/applications/{id}/events"),
                    &token,
                    &json!({ "event": event }),
                )
                .await;
            assert_eq!(
                response.status(),
                200,
                "{event}: {}",
                response.text().await.unwrap()
            );
        }
    };
    // A tier-3 draft of 国保中央会, under its permitted node: its filer is asked to submit it.
    let vendor = app.new_vendor(crate::helpers::CHUOKAI).await;
    let filed = app
        .file_application(&cast.chuokai.token, &vendor, &[&cast.tier2])
        .await;
    let id = filed["id"].as_str().unwrap().to_owned();
    let number = filed["number"].as_str().unwrap().to_owned();
    let html = inbox(cast.chuokai.token.clone()).await;
    assert_eq!(inbox_counts(&html), [1, 1, 0, 0], "{html}");
    assert!(html.contains(&number));
    assert_eq!(
        inbox_counts(&inbox(cast.kokuhoren.token.clone()).await),
        [0; 4]
    );

    // Submitted: 東京都国保連 endorses it; the municipality does not see it waiting yet.
    fire(cast.chuokai.token.clone(), id.clone(), "submit").await;
    assert_eq!(
        inbox_counts(&inbox(cast.chuokai.token.clone()).await),
        [0; 4]
    );
    let html = inbox(cast.kokuhoren.token.clone()).await;
    assert_eq!(inbox_counts(&html), [1, 0, 1, 0], "{html}");
    assert_eq!(
        inbox_counts(&inbox(cast.officer.token.clone()).await),
        [0; 4]
    );

    // Endorsed: the officer's check, then the chief's, each in turn.
    fire(cast.kokuhoren.token.clone(), id.clone(), "endorse").await;
    let html = inbox(cast.officer.token.clone()).await;
    assert_eq!(inbox_counts(&html), [1, 0, 0, 1], "{html}");
    assert!(html.contains("担当者審査"), "the step that waits");
    assert_eq!(inbox_counts(&inbox(cast.chief.token.clone()).await), [0; 4]);
    fire(cast.officer.token.clone(), id.clone(), "approve").await;
    assert_eq!(
        inbox_counts(&inbox(cast.officer.token.clone()).await),
        [0; 4]
    );
    assert_eq!(
        inbox_counts(&inbox(cast.chief.token.clone()).await),
        [1, 0, 0, 1]
    );
    fire(cast.chief.token.clone(), id.clone(), "approve").await;

    // The vendor's certificate is revoked before the manager decides: the decision is blocked,
    // but it is still the manager's to deal with.
    let evidence = app
        .get_json(
            &format!("/api/v1/evidence?organisation={vendor}"),
            &cast.officer.token,
        )
        .await;
    for e in evidence["items"].as_array().unwrap() {
        let response = app
            .post_json_with_token(
                &format!("/api/v1/evidence/{}/revoke", e["id"].as_str().unwrap()),
                &cast.officer.token,
                &json!({ "reason": "証明書の失効が判明したため" }),
            )
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let html = inbox(cast.manager.token.clone()).await;
    assert_eq!(inbox_counts(&html), [1, 0, 0, 1], "{html}");
    assert!(html.contains(&format!("/applications/{id}")));
    assert!(!html.contains(r#"class="proxy""#), "the manager's own");
    // The manager's registered deputy (代決) sees it too, marked as the manager's.
    let deputy = app
        .person("meguro_deputy", &[(crate::helpers::MEGURO, "chief")])
        .await;
    itaku::services::users::add_deputy(
        &app.db,
        itaku::services::users::NewDeputy {
            principal_user_id: cast.manager.id.clone(),
            deputy_user_id: deputy.id.clone(),
            role: "manager".to_owned(),
            organisation_id: crate::helpers::MEGURO.to_owned(),
            valid_from: crate::helpers::day(2020, 4, 1),
            valid_until: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    let html = inbox(deputy.token.clone()).await;
    assert_eq!(inbox_counts(&html), [1, 0, 0, 1], "{html}");
    assert!(
        html.contains(r#"class="proxy""#) && html.contains("代決"),
        "{html}"
    );
    let refused = app
        .post_json_with_token(
            &format!("/api/v1/applications/{id}/events"),
            &cast.manager.token,
            &json!({ "event": "approve" }),
        )
        .await;
    assert_eq!(refused.status().as_u16() / 100, 4, "blocked");
    // A row written before instances kept who they wait for is indexed when the application
    // starts: until then the manager's inbox cannot find it, afterwards it can.
    let instance = filed["targets"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        use entity::workflow_instance::{Column, Entity};
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        Entity::update_many()
            .col_expr(Column::WaitingOrg, Expr::value(Option::<String>::None))
            .col_expr(Column::WaitingRoles, Expr::value(Option::<String>::None))
            .filter(Column::Id.eq(instance.as_str()))
            .exec(&app.db)
            .await
            .unwrap();
    }
    assert_eq!(
        inbox_counts(&inbox(cast.manager.token.clone()).await),
        [0; 4]
    );
    let filled = itaku::services::instances::index_waiting(&app.db, &app.state.workflows)
        .await
        .unwrap();
    assert_eq!(filled, 1, "only the row that lost its columns");
    let row = app.instance_row(&instance).await;
    assert_eq!(row.waiting_org.as_deref(), Some(crate::helpers::MEGURO));
    assert_eq!(row.waiting_roles.as_deref(), Some(" manager "));
    assert_eq!(
        inbox_counts(&inbox(cast.manager.token.clone()).await),
        [1, 0, 0, 1]
    );
    // Nothing of it reaches another municipality.
    assert_eq!(
        inbox_counts(&inbox(cast.outsider.token.clone()).await),
        [0; 4]
    );
}

async fn the_sign_in_page_is_japanese_by_default_with_a_strict_csp(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut jar = Jar::default();
    let html = page(jar.get(&app, "/sign-in").await, 200).await;
    assert!(html.contains(r#"<html lang="ja">"#));
    assert!(html.contains("ログインID"));
    assert!(!html.contains("<script"), "no script at all");
    assert!(!html.contains("style="), "no inline style");
    assert_eq!(jar.get_value("itaku_csrf").unwrap(), csrf_of(&html));
    let css = app.get("/static/site.css").await;
    assert_eq!(css.status(), 200);
}

async fn signing_in_through_the_form_shows_the_inbox_with_organisation_and_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let (id, application) = submitted(&app, &cast).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page(jar.get(&app, "/sign-in").await, 200).await);

    let wrong = jar
        .post(
            &app,
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("login", "meguro_officer"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert!(page(wrong, 401).await.contains("正しくありません"));

    let signed_in = jar
        .post(
            &app,
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("login", "meguro_officer"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()[LOCATION], "/");
    let home = jar.get(&app, "/").await;
    assert_eq!(
        home.headers()[LOCATION],
        "/inbox",
        "an officer's home is the inbox"
    );
    assert!(jar.get_value("itaku_token").is_some());

    let inbox = page(jar.get(&app, "/inbox").await, 200).await;
    assert!(
        inbox.contains("目黒区"),
        "the header names the organisation"
    );
    assert!(inbox.contains("担当者"), "and the role");
    assert!(inbox.contains(&format!("/applications/{id}")));
    assert!(inbox.contains(application["number"].as_str().unwrap()));
    assert!(
        inbox.contains(r#"<dd id="count-approve">1</dd>"#),
        "{inbox}"
    );

    // In English once the language is switched.
    let csrf = csrf_of(&inbox);
    let switched = jar
        .post(
            &app,
            "/language",
            &[("csrf", &csrf), ("lang", "en"), ("back", "/inbox")],
        )
        .await;
    assert_eq!(switched.status(), 303);
    let inbox = page(jar.get(&app, "/inbox").await, 200).await;
    assert!(inbox.contains(r#"<html lang="en">"#) && inbox.contains("Officer"));

    // Signing out revokes the session: the old cookie then asks to sign in again.
    let token = jar.get_value("itaku_token").unwrap().to_owned();
    let out = jar.post(&app, "/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert!(jar.get_value("itaku_token").is_none());
    let mut old = Jar::with_session(&token);
    let lapsed = page(old.get(&app, "/inbox").await, 401).await;
    assert!(lapsed.contains("もう一度サインインしてください"));
}

async fn a_form_post_without_the_right_csrf_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let (id, application) = submitted(&app, &cast).await;
    let target = application["targets"][0]["id"].as_str().unwrap();
    let mut jar = Jar::with_session(&cast.officer.token);
    let html = page(jar.get(&app, &format!("/applications/{id}")).await, 200).await;
    let csrf = csrf_of(&html);
    let path = format!("/applications/{id}/events");
    for token in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let refused = jar
            .post(
                &app,
                &path,
                &[("csrf", token), ("event", "approve"), ("target", target)],
            )
            .await;
        assert!(page(refused, 403).await.contains("フォームの有効期限"));
    }
    let no_field = jar
        .post(&app, &path, &[("event", "approve"), ("target", target)])
        .await;
    page(no_field, 403).await;
    // A token without its cookie (another site cannot read or set it) is refused too.
    let mut stranger = Jar::with_session(&cast.officer.token);
    let refused = stranger
        .post(
            &app,
            &path,
            &[("csrf", &csrf), ("event", "approve"), ("target", target)],
        )
        .await;
    page(refused, 403).await;
    let sign_in = Jar::default()
        .post(
            &app,
            "/sign-in",
            &[("login", "meguro_officer"), ("password", PASSWORD)],
        )
        .await;
    page(sign_in, 403).await;

    let after = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.officer.token)
        .await;
    assert_eq!(
        after["targets"][0]["version"],
        application["targets"][0]["version"]
    );

    // With the token, the same post is accepted.
    let version = application["targets"][0]["version"].as_i64().unwrap();
    let accepted = post_event(&mut jar, &app, &id, &csrf, "approve", target, version).await;
    assert_eq!(accepted.status(), 303);
}

async fn a_contractor_named_like_a_script_renders_as_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let evil = "<script>alert(1)</script>";
    app.create_organisation_of_kind("evil", "vendor", evil)
        .await;
    app.give_evidence("evil", KOKUHOREN, None).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, "evil", &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap();
    let mut jar = Jar::with_session(&cast.kokuhoren.token);
    for path in [
        format!("/applications/{id}"),
        format!("/items/{}", cast.item),
    ] {
        let html = page(jar.get(&app, &path).await, 200).await;
        assert!(!html.contains(evil), "{path} shows the name as markup");
        assert!(!html.contains("<script"), "{path}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {html}"
        );
    }
}

async fn another_organisations_application_answers_404_and_a_lapsed_session_asks_to_sign_in(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let (id, _) = submitted(&app, &cast).await;
    let mut outsider = Jar::with_session(&cast.outsider.token);
    let html = page(
        outsider.get(&app, &format!("/applications/{id}")).await,
        404,
    )
    .await;
    assert!(html.contains("見つかりません"));
    page(
        outsider.get(&app, &format!("/items/{}", cast.item)).await,
        404,
    )
    .await;
    let inbox = page(outsider.get(&app, "/inbox").await, 200).await;
    assert!(!inbox.contains(&id));

    let anonymous = app.get("/inbox").await;
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()[LOCATION], "/sign-in");
    let mut lapsed = Jar::with_session("not.a.token");
    let html = page(lapsed.get(&app, "/inbox").await, 401).await;
    assert!(html.contains("もう一度サインインしてください"));
    assert!(
        lapsed.get_value("itaku_token").is_none(),
        "the cookie is removed"
    );
}

/// Posts the detail page's action form.
async fn post_event(
    jar: &mut Jar,
    app: &TestApp,
    application: &str,
    csrf: &str,
    event: &str,
    target: &str,
    version: i64,
) -> Response {
    let path = format!("/applications/{application}/events");
    let version = version.to_string();
    let form = [
        ("csrf", csrf),
        ("event", event),
        ("target", target),
        ("version", &version),
    ];
    jar.post(app, &path, &form).await
}

/// An application for 証跡不足株式会社 (`thin`, created here with whatever evidence the caller
/// gave it afterwards), submitted and approved by the officer and the chief.
pub async fn thin_application_at_the_managers_step(app: &TestApp, cast: &Cast) -> String {
    app.create_organisation_of_kind("thin", "vendor", "証跡不足株式会社")
        .await;
    let filed = app
        .file_application(&cast.kokuhoren.token, "thin", &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap().to_owned();
    let events = format!("/api/v1/applications/{id}/events");
    for (who, event) in [
        (&cast.kokuhoren, "submit"),
        (&cast.officer, "approve"),
        (&cast.chief, "approve"),
    ] {
        let r = app
            .post_json_with_token(&events, &who.token, &json!({ "event": event }))
            .await;
        assert_eq!(r.status(), 200);
    }
    id
}

async fn a_refused_decision_lists_every_unmet_requirement_and_a_stale_page_is_a_conflict(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let id = thin_application_at_the_managers_step(&app, &cast).await;
    let id = id.as_str();
    let mut jar = Jar::with_session(&cast.manager.token);
    let html = page(jar.get(&app, &format!("/applications/{id}")).await, 200).await;
    assert!(
        html.contains("未提出"),
        "the checklist shows what is missing"
    );
    // The decision is not offered while requirements are unmet; a page shown before the
    // evidence went missing still posts it, and gets the refusal.
    assert!(!html.contains(r#"id="event-approve""#));
    let csrf = csrf_of(&html);
    let now = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.manager.token)
        .await;
    let target = now["targets"][0]["id"].as_str().unwrap();
    let version = now["targets"][0]["version"].as_i64().unwrap();
    let refused = post_event(&mut jar, &app, id, &csrf, "approve", target, version).await;
    let html = page(refused, 422).await;
    assert!(html.contains(r#"id="unmet-list""#));
    for requirement in [
        "親階層との秘密保持契約",
        "履行体制図",
        "安全管理措置",
        "ISO/IEC 27001",
    ] {
        assert!(html.contains(requirement), "{requirement} is listed");
    }
    let listed = html.matches("<li data-code=").count();
    assert!(listed >= 4, "every unmet requirement is listed: {listed}");

    // A page shown before someone else acted: the conflict message.
    let conflict = post_event(&mut jar, &app, id, &csrf, "approve", target, version - 1).await;
    let html = page(conflict, 409).await;
    assert!(html.contains("他の人が先に操作しました"));
}

/// The settings page: the mail preference is shown, changed with the CSRF token (refused
/// without it, nothing changed), and an unknown value is refused naming the field.
async fn the_settings_page_changes_the_mail_preference_with_csrf(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let mut jar = Jar::with_session(&cast.kokuhoren.token);
    let settings = page(jar.get(&app, "/settings").await, 200).await;
    assert!(settings.contains("メールの受け取り方"), "{settings}");
    assert!(
        settings.contains(r#"value="immediate" checked"#),
        "{settings}"
    );
    let csrf = csrf_of(&settings);
    let refused = jar
        .post(
            &app,
            "/settings",
            &[("csrf", "forged"), ("mail", "daily_digest")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let bad = jar
        .post(&app, "/settings", &[("csrf", &csrf), ("mail", "weekly")])
        .await;
    assert_eq!(bad.status(), 422);
    let pref = "/api/v1/me/mail-preference";
    assert_eq!(
        app.get_json(pref, &cast.kokuhoren.token).await["mail"],
        "immediate"
    );
    let saved = jar
        .post(
            &app,
            "/settings",
            &[("csrf", &csrf), ("mail", "daily_digest")],
        )
        .await;
    assert_eq!(saved.status(), 303);
    let settings = page(jar.get(&app, "/settings?saved=1").await, 200).await;
    assert!(settings.contains("設定を保存しました。"), "{settings}");
    assert!(
        settings.contains(r#"value="daily_digest" checked"#),
        "{settings}"
    );
    assert_eq!(
        app.get_json(pref, &cast.kokuhoren.token).await["mail"],
        "daily_digest"
    );
}

on_both_backends!(
    the_settings_page_changes_the_mail_preference_with_csrf,
    the_sign_in_page_is_japanese_by_default_with_a_strict_csp,
    signing_in_through_the_form_shows_the_inbox_with_organisation_and_role,
    the_inbox_lists_each_target_for_whoever_acts_at_its_step,
    a_form_post_without_the_right_csrf_token_is_refused,
    a_contractor_named_like_a_script_renders_as_text,
    another_organisations_application_answers_404_and_a_lapsed_session_asks_to_sign_in,
    a_refused_decision_lists_every_unmet_requirement_and_a_stale_page_is_a_conflict,
);

/// The inbox's obligations: the user's own, earliest due first, overdue ones marked in words.
mod obligations_inbox {
    use super::*;
    use crate::helpers::{day, spawn_app_with};
    use itaku::clock::Clock;

    async fn the_inbox_lists_open_obligations_by_due_date_and_marks_the_overdue_ones(
        backend: Backend,
    ) {
        // Monday 2027-04-05: the 2026 年度's obligations (due 3/31) are overdue.
        let at = chrono::DateTime::parse_from_rfc3339("2027-04-05T10:00:00+09:00")
            .unwrap()
            .to_utc();
        let app = spawn_app_with(backend, Clock::Fixed(at), |s| s.timer_interval_seconds = 0).await;
        let cast = Cast::create(&app).await;
        for on in [day(2026, 11, 25), day(2027, 4, 5)] {
            itaku::commands::remind(app.settings.clone(), Some(on))
                .await
                .unwrap();
        }
        let mut jar = Jar::with_session(&cast.kokuhoren.token);
        let inbox = page(jar.get(&app, "/inbox").await, 200).await;
        let table = &inbox[inbox
            .find(r#"<table class="list" id="obligations""#)
            .expect(&inbox)..];
        assert_eq!(
            table.matches("<tr class=\"overdue\">").count(),
            3,
            "{table}"
        );
        assert_eq!(table.matches("【期限超過】").count(), 3, "{table}");
        assert_eq!(table.matches("遵守状況報告の提出").count(), 2);
        assert_eq!(table.matches("研修の実施と受講記録の提出").count(), 2);
        assert!(
            !table.contains("公益社団法人国民健康保険中央会"),
            "only its own"
        );
        let overdue = table.find("2027-03-31").unwrap();
        let next = table.find("2028-03-31").unwrap();
        assert!(overdue < next, "earliest due first");
        assert!(!table[next..].contains("overdue"), "{table}");
    }

    on_both_backends!(the_inbox_lists_open_obligations_by_due_date_and_marks_the_overdue_ones);
}

/// The generated dataset of the page benchmark: what it reports is what the inboxes show, and
/// it reads back from the database unchanged.
mod scaled_demo {
    use super::*;
    use crate::helpers::spawn_app_with;
    use itaku::clock::Clock;

    async fn token(app: &TestApp, login: &str) -> String {
        let signed_in = app.sign_in(login, itaku::demo::DEMO_PASSWORD).await;
        let body: Value = signed_in.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn the_scaled_demo_leaves_its_applications_at_each_step_and_reads_back(backend: Backend) {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .to_utc();
        let app = spawn_app_with(backend, Clock::Fixed(at), |s| {
            s.timer_interval_seconds = 0;
            s.mail.dispatch_interval_seconds = 0;
        })
        .await;
        assert!(itaku::demo::scaled(&app.state).await.unwrap().is_none());
        itaku::demo::seed(&app.state).await.unwrap();
        let mut before = Vec::new();
        for login in ["meguro.officer", "meguro.chief", "meguro.manager"] {
            let mut jar = Jar::with_session(&token(&app, login).await);
            before.push(inbox_counts(
                &page(jar.get(&app, "/inbox").await, 200).await,
            ));
        }
        // Two items: the first with the 100 vendors, the second with 20 of them, seeded beside
        // other work.
        let report = itaku::demo::scale(&app.state, 120, 500).await.unwrap();
        assert_eq!(
            (report.items, report.vendors, report.applications),
            (2, 100, 120)
        );
        assert_eq!(report.evidence_records, 500, "400 current, 100 past");
        // One in 20 waits at each step of 目黒区's route: 6 each of the 120.
        for (ix, login) in ["meguro.officer", "meguro.chief", "meguro.manager"]
            .into_iter()
            .enumerate()
        {
            let mut jar = Jar::with_session(&token(&app, login).await);
            let html = page(jar.get(&app, "/inbox").await, 200).await;
            let after = inbox_counts(&html);
            assert_eq!(after[0], before[ix][0] + 6, "{login}: {html}");
            assert_eq!(after[3], before[ix][3] + 6, "{login}: {html}");
        }
        let officer = token(&app, "meguro.officer").await;
        let mut jar = Jar::with_session(&officer);
        let html = page(
            jar.get(
                &app,
                &format!("/applications/{}", report.sample_application),
            )
            .await,
            200,
        )
        .await;
        assert!(html.contains("規模試験システム株式会社 001"), "{html}");
        let again = itaku::demo::scaled(&app.state)
            .await
            .unwrap()
            .expect("the report");
        assert_eq!(
            (
                again.items,
                again.vendors,
                again.applications,
                again.evidence_records,
                again.sample_application.as_str(),
                again.sample_item.as_str(),
            ),
            (
                2,
                100,
                120,
                500,
                report.sample_application.as_str(),
                report.sample_item.as_str(),
            )
        );
    }

    on_both_backends!(the_scaled_demo_leaves_its_applications_at_each_step_and_reads_back);
}
