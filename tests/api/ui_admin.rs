//! The administration screens: users and their roles, organisations; admins only, audited.

use chrono::Duration;
use entity::outbox::{self, OutboxStatus};
use entity::{admin_event, membership, organisation, user};
use itaku::clock::Clock;
use reqwest::header::LOCATION;
use sea_orm::{ActiveModelTrait, Set};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{spawn_app, spawn_app_with, Backend, Cast, TestApp, MEGURO};
use crate::on_both_backends;
use crate::ui::{csrf_of, page, Jar};

async fn admin_jar(app: &TestApp) -> (Jar, String, String) {
    let admin = app.person("meguro_admin", &[(MEGURO, "admin")]).await;
    let mut jar = Jar::with_session(&admin.token);
    let html = page(jar.get(app, "/admin/users").await, 200).await;
    let csrf = csrf_of(&html);
    (jar, csrf, admin.id)
}

async fn user_by_login(app: &TestApp, login: &str) -> Option<user::Model> {
    user::Entity::find()
        .filter(user::Column::Login.eq(login))
        .one(&app.db)
        .await
        .unwrap()
}

async fn actions_on(app: &TestApp, subject: &str) -> Vec<String> {
    let mut rows = admin_event::Entity::find()
        .filter(admin_event::Column::SubjectId.eq(subject))
        .all(&app.db)
        .await
        .unwrap();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows.into_iter().map(|r| r.action).collect()
}

/// The text between `<code id="initial-password">` and `</code>`.
fn initial_password(html: &str) -> String {
    let marker = r#"<code id="initial-password">"#;
    let start = html.find(marker).expect("the initial password") + marker.len();
    let end = html[start..].find("</code>").unwrap() + start;
    html[start..end].to_owned()
}

async fn an_admin_creates_a_user_grants_and_ends_a_role_and_deactivates_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let (mut jar, csrf, admin) = admin_jar(&app).await;

    // Every field's error at once, in Japanese, and nothing stored.
    let refused = jar
        .post(
            &app,
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "has space"),
                ("display_name", " "),
                ("email", "not-an-address"),
            ],
        )
        .await;
    let html = page(refused, 422).await;
    for (field, reason) in [
        ("f-login-error", "ログインIDは空白を含まない"),
        ("f-display_name-error", "必須"),
        ("f-email-error", "メールアドレスの形式"),
    ] {
        let at = html
            .find(&format!(r#"id="{field}""#))
            .unwrap_or_else(|| panic!("{field}: {html}"));
        assert!(html[at..at + 300].contains(reason), "{field}");
    }
    assert!(user_by_login(&app, "has space").await.is_none());
    // A taken login is named too.
    let taken = jar
        .post(
            &app,
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "meguro_officer"),
                ("display_name", "二人目"),
            ],
        )
        .await;
    let taken = page(taken, 409).await;
    assert!(taken.contains(r#"id="f-login-error""#));
    assert!(
        taken.contains("このログインIDは既に使われています"),
        "{taken}"
    );

    let created = jar
        .post(
            &app,
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("login", "meguro_new"),
                ("display_name", "新任 職員"),
                ("email", "new@example.lg.jp"),
            ],
        )
        .await;
    let html = page(created, 200).await;
    let password = initial_password(&html);
    assert_eq!(password.len(), 20);
    let stored = user_by_login(&app, "meguro_new").await.unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains(&password));
    // Shown once: the list does not show it again.
    let list = page(jar.get(&app, "/admin/users").await, 200).await;
    assert!(!list.contains(&password) && list.contains("新任 職員"));
    let signed_in = app.sign_in("meguro_new", &password).await;
    assert_eq!(signed_in.status(), 200, "the initial password signs in");
    let body: serde_json::Value = signed_in.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();

    // A role: a bad day and an unknown role are named; then granted.
    let roles = format!("/admin/users/{}/roles", stored.id);
    let bad = jar
        .post(
            &app,
            &roles,
            &[
                ("csrf", &csrf),
                ("organisation_id", MEGURO),
                ("role", "officer"),
                ("valid_from", "2026/04/01"),
            ],
        )
        .await;
    let html = page(bad, 422).await;
    assert!(
        html.contains("開始日: 開始日をYYYY-MM-DDの形式で入力してください。"),
        "{html}"
    );
    let unknown = jar
        .post(
            &app,
            &roles,
            &[
                ("csrf", &csrf),
                ("organisation_id", MEGURO),
                ("role", "emperor"),
                ("valid_from", "2026-04-01"),
            ],
        )
        .await;
    assert!(page(unknown, 422).await.contains("役割: "));
    let granted = jar
        .post(
            &app,
            &roles,
            &[
                ("csrf", &csrf),
                ("organisation_id", MEGURO),
                ("role", "officer"),
                ("valid_from", "2020-04-01"),
                ("valid_until", ""),
            ],
        )
        .await;
    assert_eq!(granted.headers()[LOCATION], "/admin/users?done=1");
    let me = app.get_json("/api/v1/me", &token).await;
    assert!(me["grants"].to_string().contains("officer"), "{me}");

    // Ending the role: from yesterday on it is no longer held.
    let held = membership::Entity::find()
        .filter(membership::Column::UserId.eq(&stored.id))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let ended = jar
        .post(
            &app,
            &format!("/admin/memberships/{}/end", held.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(ended.status(), 303);
    let me = app.get_json("/api/v1/me", &token).await;
    assert!(!me["grants"].to_string().contains("officer"), "{me}");

    // Deactivated: the session ends and signing in fails; one cannot deactivate oneself.
    let deactivated = jar
        .post(
            &app,
            &format!("/admin/users/{}/deactivate", stored.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deactivated.status(), 303);
    assert_eq!(app.get_with_token("/api/v1/me", &token).await.status(), 401);
    assert_eq!(app.sign_in("meguro_new", &password).await.status(), 401);
    let myself = jar
        .post(
            &app,
            &format!("/admin/users/{admin}/deactivate"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(page(myself, 422)
        .await
        .contains("自分自身を無効にすることはできません。"));
    assert!(user_by_login(&app, "meguro_admin")
        .await
        .unwrap()
        .deactivated_at
        .is_none());

    assert_eq!(
        actions_on(&app, &stored.id).await,
        [
            "user_created",
            "role_granted",
            "role_ended",
            "user_deactivated"
        ]
    );
    let events = admin_event::Entity::find().all(&app.db).await.unwrap();
    assert!(events.iter().all(|e| e.actor_id == admin));
    assert!(
        events.iter().all(|e| !e.detail.contains(&password)),
        "never the password"
    );

    // Anyone else: 404 for every page and every post, and nothing changes.
    let mut officer = Jar::with_session(&cast.officer.token);
    let html = page(officer.get(&app, "/inbox").await, 200).await;
    let csrf = csrf_of(&html);
    for path in [
        "/admin/users",
        "/admin/organisations",
        &format!("/admin/organisations/{MEGURO}"),
    ] {
        page(officer.get(&app, path).await, 404).await;
    }
    let before = admin_event::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .len();
    for path in [
        "/admin/users".to_owned(),
        format!("/admin/users/{}/roles", cast.officer.id),
        format!("/admin/users/{}/deactivate", cast.chief.id),
        format!("/admin/memberships/{}/end", held.id),
        "/admin/organisations".to_owned(),
        format!("/admin/organisations/{MEGURO}"),
    ] {
        let refused = officer
            .post(
                &app,
                &path,
                &[
                    ("csrf", &csrf),
                    ("login", "sneaky"),
                    ("display_name", "x"),
                    ("organisation_id", MEGURO),
                    ("role", "admin"),
                    ("valid_from", "2020-04-01"),
                    ("name_ja", "x"),
                    ("kind", "vendor"),
                ],
            )
            .await;
        page(refused, 404).await;
    }
    assert_eq!(
        admin_event::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .len(),
        before
    );
    assert!(user_by_login(&app, "sneaky").await.is_none());
}

async fn an_admin_registers_an_organisation_and_edits_its_contacts(backend: Backend) {
    let app = spawn_app(backend).await;
    Cast::create(&app).await;
    let (mut jar, _, _) = admin_jar(&app).await;
    let html = page(jar.get(&app, "/admin/organisations").await, 200).await;
    assert!(html.contains("目黒区"));
    let csrf = csrf_of(&html);

    let refused = jar
        .post(
            &app,
            "/admin/organisations",
            &[
                ("csrf", &csrf),
                ("id", "bad id!"),
                ("kind", "vendor"),
                ("name_ja", ""),
                ("corporate_number", "1234567890123"),
                ("contacts", "ok@example.jp\nnot an address"),
            ],
        )
        .await;
    let html = page(refused, 422).await;
    for field in ["id", "name_ja", "corporate_number", "contacts"] {
        assert!(
            html.contains(&format!(r#"id="f-{field}-error""#)),
            "{field}: {html}"
        );
    }
    assert!(organisation::Entity::find_by_id("bad id!")
        .one(&app.db)
        .await
        .unwrap()
        .is_none());

    let created = jar
        .post(
            &app,
            "/admin/organisations",
            &[
                ("csrf", &csrf),
                ("id", "newco"),
                ("kind", "vendor"),
                ("name_ja", "株式会社新規"),
                ("contacts", "info@newco.example.jp"),
            ],
        )
        .await;
    assert_eq!(created.headers()[LOCATION], "/admin/organisations?done=1");

    let edit = page(jar.get(&app, "/admin/organisations/newco").await, 200).await;
    assert!(edit.contains("info@newco.example.jp"));
    let saved = jar
        .post(
            &app,
            "/admin/organisations/newco",
            &[
                ("csrf", &csrf),
                ("name_ja", "株式会社新規"),
                ("address", "東京都港区"),
                ("contacts", "a@newco.example.jp\n\nb@newco.example.jp\n"),
            ],
        )
        .await;
    assert_eq!(
        saved.headers()[LOCATION],
        "/admin/organisations/newco?done=1"
    );
    let stored = organisation::Entity::find_by_id("newco")
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&stored.contacts).unwrap(),
        ["a@newco.example.jp", "b@newco.example.jp"]
    );
    assert_eq!(stored.address.as_deref(), Some("東京都港区"));
    let bad = jar
        .post(
            &app,
            "/admin/organisations/newco",
            &[
                ("csrf", &csrf),
                ("name_ja", "株式会社新規"),
                ("contacts", "nope"),
            ],
        )
        .await;
    page(bad, 422).await;
    let html = page(jar.get(&app, "/admin/organisations/newco").await, 200).await;
    assert!(
        html.contains("組織の登録") && html.contains("組織の変更"),
        "{html}"
    );
    assert_eq!(
        actions_on(&app, "newco").await,
        ["organisation_created", "organisation_updated"]
    );
    page(jar.get(&app, "/admin/organisations/nowhere").await, 404).await;
}

/// Writes a mail message in `status` directly, created `age_minutes` ago.
async fn message(
    app: &TestApp,
    id: &str,
    status: OutboxStatus,
    error: Option<&str>,
    age_minutes: i64,
) {
    let at = app.state.clock.now() - Duration::minutes(age_minutes);
    outbox::ActiveModel {
        id: Set(id.to_owned()),
        idempotency_key: Set(format!("test:{id}")),
        instance_id: Set(None),
        effect: Set("notify".to_owned()),
        template: Set(Some("application_returned".to_owned())),
        recipients: Set(r#"["submitter"]"#.to_owned()),
        payload: Set("{}".to_owned()),
        status: Set(status),
        attempts: Set(if status == OutboxStatus::Failed { 5 } else { 1 }),
        next_attempt_at: Set(at),
        last_error: Set(error.map(str::to_owned)),
        created_at: Set(at),
        sent_at: Set((status == OutboxStatus::Sent).then_some(at)),
        delivered_to: Set((status == OutboxStatus::Sent).then(|| r#"["a@example.jp"]"#.to_owned())),
    }
    .insert(&app.db)
    .await
    .unwrap();
}

async fn stored(app: &TestApp, id: &str) -> outbox::Model {
    outbox::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

async fn non_admins_get_404_from_the_mail_page_and_its_retry(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    message(&app, "m-failed", OutboxStatus::Failed, Some("550 no"), 1).await;
    let mut jar = Jar::with_session(&cast.officer.token);
    page(jar.get(&app, "/admin/mail").await, 404).await;
    page(jar.get(&app, "/admin/mail/m-failed/eml").await, 404).await;
    let html = page(jar.get(&app, "/inbox").await, 200).await;
    assert!(!html.contains("/admin/mail"), "no nav link for non-admins");
    let csrf = csrf_of(&html);
    let post = jar
        .post(&app, "/admin/mail/m-failed/retry", &[("csrf", &csrf)])
        .await;
    page(post, 404).await;
    let row = stored(&app, "m-failed").await;
    assert_eq!(row.status, OutboxStatus::Failed);
    assert!(actions_on(&app, "m-failed").await.is_empty());
}

async fn an_admin_sees_a_failed_message_escaped_and_retries_it(backend: Backend) {
    let app = spawn_app(backend).await;
    Cast::create(&app).await;
    let (mut jar, _, admin) = admin_jar(&app).await;
    let injected = r#"550 <script>alert("x")</script> refused"#;
    message(&app, "m-failed", OutboxStatus::Failed, Some(injected), 1).await;
    message(&app, "m-sent", OutboxStatus::Sent, None, 2).await;
    message(&app, "m-pending", OutboxStatus::Pending, None, 3).await;

    let html = page(jar.get(&app, "/admin/mail").await, 200).await;
    assert!(
        html.contains(r#"href="/admin/mail""#),
        "the nav links the page"
    );
    assert!(
        !html.contains("<script>alert"),
        "the error is escaped: {html}"
    );
    assert!(html.contains("550 &lt;script&gt;alert("), "{html}");
    for (state, n) in [("pending", 1), ("sent", 1), ("failed", 1)] {
        assert!(
            html.contains(&format!(r#"<strong id="count-{state}">{n}</strong>"#)),
            "{state}: {html}"
        );
    }
    // Newest first; only the failed one has a retry button.
    let (failed, sent, pending) = (
        html.find(r#"id="mail-m-failed""#).unwrap(),
        html.find(r#"id="mail-m-sent""#).unwrap(),
        html.find(r#"id="mail-m-pending""#).unwrap(),
    );
    assert!(failed < sent && sent < pending);
    assert!(html.contains(r#"id="retry-m-failed""#));
    assert!(!html.contains(r#"id="retry-m-sent""#) && !html.contains(r#"id="retry-m-pending""#));
    // The filter shows one state only.
    let only = page(jar.get(&app, "/admin/mail?status=sent").await, 200).await;
    assert!(only.contains(r#"id="mail-m-sent""#) && !only.contains(r#"id="mail-m-failed""#));

    // Without the CSRF token: refused, nothing changed.
    let forged = jar.post(&app, "/admin/mail/m-failed/retry", &[]).await;
    assert_eq!(forged.status(), 403);
    assert_eq!(stored(&app, "m-failed").await.status, OutboxStatus::Failed);
    assert!(actions_on(&app, "m-failed").await.is_empty());

    let csrf = csrf_of(&html);
    let retried = jar
        .post(&app, "/admin/mail/m-failed/retry", &[("csrf", &csrf)])
        .await;
    assert_eq!(retried.status(), 303);
    assert_eq!(retried.headers()[LOCATION], "/admin/mail?done=retried");
    let row = stored(&app, "m-failed").await;
    assert_eq!(row.status, OutboxStatus::Pending);
    assert_eq!(row.attempts, 0);
    assert_eq!(actions_on(&app, "m-failed").await, ["mail_retried"]);
    let event = admin_event::Entity::find()
        .filter(admin_event::Column::SubjectId.eq("m-failed"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.actor_id, admin);
    let html = page(jar.get(&app, "/admin/mail?done=retried").await, 200).await;
    assert!(html.contains("再送を予約しました"), "{html}");

    // Stale: the same retry again, and a sent message, change nothing and say so.
    for id in ["m-failed", "m-sent"] {
        let again = jar
            .post(&app, &format!("/admin/mail/{id}/retry"), &[("csrf", &csrf)])
            .await;
        let html = page(again, 409).await;
        assert!(html.contains("何も変更していません"), "{html}");
    }
    assert_eq!(actions_on(&app, "m-failed").await, ["mail_retried"]);
    assert_eq!(stored(&app, "m-sent").await.status, OutboxStatus::Sent);
    let unknown = jar
        .post(&app, "/admin/mail/nothing/retry", &[("csrf", &csrf)])
        .await;
    page(unknown, 404).await;
}

async fn the_api_retry_is_audited_too(backend: Backend) {
    let app = spawn_app(backend).await;
    Cast::create(&app).await;
    let admin = app.person("meguro_admin", &[(MEGURO, "admin")]).await;
    message(&app, "m-failed", OutboxStatus::Failed, Some("550 no"), 1).await;
    let response = app
        .client
        .post(app.url("/api/v1/admin/outbox/m-failed/retry"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&app, "m-failed").await.status, OutboxStatus::Pending);
    assert_eq!(actions_on(&app, "m-failed").await, ["mail_retried"]);
    let again = app
        .client
        .post(app.url("/api/v1/admin/outbox/m-failed/retry"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(actions_on(&app, "m-failed").await, ["mail_retried"]);
}

async fn an_admin_reads_the_eml_file_of_a_sent_message(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();
    let in_settings = mail_dir.clone();
    let app = spawn_app_with(backend, Clock::System, move |s| s.mail_dir = in_settings).await;
    Cast::create(&app).await;
    let (mut jar, _, _) = admin_jar(&app).await;
    message(&app, "m-sent", OutboxStatus::Sent, None, 1).await;
    message(&app, "m-failed", OutboxStatus::Failed, Some("550"), 2).await;
    std::fs::write(mail_dir.join("m-sent.eml"), "Subject: <b>x</b>\r\n\r\n本文").unwrap();
    std::fs::write(mail_dir.join("m-failed.eml"), "never shown").unwrap();
    std::fs::write(dir.path().join("secret.eml"), "secret").unwrap();

    let html = page(jar.get(&app, "/admin/mail").await, 200).await;
    assert!(html.contains(r#"href="/admin/mail/m-sent/eml""#), "{html}");
    assert!(!html.contains("/admin/mail/m-failed/eml"));
    let eml = jar.get(&app, "/admin/mail/m-sent/eml").await;
    assert_eq!(eml.status(), 200);
    assert!(eml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(eml.text().await.unwrap(), "Subject: <b>x</b>\r\n\r\n本文");
    // Only a sent message known to the database, never a path of the request.
    for path in [
        "/admin/mail/m-failed/eml",
        "/admin/mail/..%2Fsecret/eml",
        "/admin/mail/..%2F..%2Fmail%2Fm-sent/eml",
        "/admin/mail/nothing/eml",
    ] {
        assert_eq!(jar.get(&app, path).await.status(), 404, "{path}");
    }
}

async fn the_mail_page_shows_50_messages_a_page_with_links(backend: Backend) {
    let app = spawn_app(backend).await;
    Cast::create(&app).await;
    let (mut jar, _, _) = admin_jar(&app).await;
    for n in 0..51 {
        message(&app, &format!("m-{n:02}"), OutboxStatus::Sent, None, n).await;
    }
    message(&app, "m-failed", OutboxStatus::Failed, Some("550"), 100).await;
    // Attribute values are escaped (`=` and `&` too).
    let unescape = |html: String| html.replace("&#x3D;", "=").replace("&amp;", "&");
    let first = unescape(page(jar.get(&app, "/admin/mail?status=sent").await, 200).await);
    assert_eq!(first.matches(r#"class="mail-sent""#).count(), 50);
    assert!(first.contains(r#"id="mail-m-00""#) && !first.contains(r#"id="mail-m-50""#));
    assert!(
        first.contains(r#"href="/admin/mail?status=sent&page=2" rel="next""#),
        "{first}"
    );
    assert!(!first.contains(r#"id="mail-previous""#));
    let second = unescape(page(jar.get(&app, "/admin/mail?status=sent&page=2").await, 200).await);
    assert_eq!(second.matches(r#"class="mail-sent""#).count(), 1);
    assert!(second.contains(r#"id="mail-m-50""#) && !second.contains(r#"id="mail-next""#));
    assert!(second.contains(r#"href="/admin/mail?status=sent&page=1" rel="prev""#));
    assert!(second.contains(r#"<strong id="count-sent">51</strong>"#));
    assert!(second.contains(r#"<strong id="count-failed">1</strong>"#));
}

on_both_backends!(
    an_admin_creates_a_user_grants_and_ends_a_role_and_deactivates_them,
    an_admin_registers_an_organisation_and_edits_its_contacts,
    non_admins_get_404_from_the_mail_page_and_its_retry,
    an_admin_sees_a_failed_message_escaped_and_retries_it,
    the_api_retry_is_audited_too,
    an_admin_reads_the_eml_file_of_a_sent_message,
    the_mail_page_shows_50_messages_a_page_with_links,
);
