//! The administration screens: users and their roles, organisations; admins only, audited.

use entity::{admin_event, membership, organisation, user};
use reqwest::header::LOCATION;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{spawn_app, Backend, Cast, TestApp, MEGURO};
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
    assert!(page(taken, 409).await.contains(r#"id="f-login-error""#));

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

on_both_backends!(
    an_admin_creates_a_user_grants_and_ends_a_role_and_deactivates_them,
    an_admin_registers_an_organisation_and_edits_its_contacts,
);
