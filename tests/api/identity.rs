//! Effective-dated memberships and deputyships, judged by the day in Asia/Tokyo.

use chrono::DateTime;
use itaku::clock::Clock;
use itaku::error::{ApiError, ErrorCode};
use itaku::services::users::{self, ImportedUser, NewDeputy, NewMembership, NewUser};
use itaku::workflow::Vocabulary;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{day, spawn_app, spawn_app_with_clock, Backend, TestApp, PASSWORD};

/// 2026-11-22 15:30 UTC is already 2026-11-23 00:30 in Tokyo.
fn just_after_midnight_in_tokyo() -> Clock {
    Clock::Fixed(
        DateTime::parse_from_rfc3339("2026-11-22T15:30:00Z")
            .unwrap()
            .to_utc(),
    )
}

/// The fields a validation error names, in order.
fn fields_of(error: &ApiError) -> Vec<String> {
    error
        .details()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn me(app: &TestApp, login: &str) -> Value {
    let token = app.token_for(login).await;
    let response = app.get_with_token("/api/v1/me", &token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn memberships_grant_their_role_only_on_the_days_they_cover(backend: Backend) {
    let app = spawn_app_with_clock(backend, just_after_midnight_in_tokyo()).await;
    app.create_organisation("shibuya").await;
    let user = app.create_user("tanaka").await;
    let today = day(2026, 11, 23);
    app.add_membership(&user, "shibuya", "officer", today, None)
        .await;
    app.add_membership(&user, "shibuya", "chief", day(2026, 11, 24), None)
        .await;
    app.add_membership(
        &user,
        "shibuya",
        "manager",
        day(2026, 4, 1),
        Some(day(2026, 11, 22)),
    )
    .await;
    app.add_membership(&user, "shibuya", "auditor", day(2026, 4, 1), Some(today))
        .await;

    let me = me(&app, "tanaka").await;
    assert_eq!(
        me["grants"],
        json!([
            { "role": "auditor", "org": "shibuya" },
            { "role": "officer", "org": "shibuya" },
        ])
    );
}

async fn a_deputy_sees_the_principals_grants_for_the_registered_role_on_its_days(backend: Backend) {
    let app = spawn_app_with_clock(backend, just_after_midnight_in_tokyo()).await;
    app.create_organisation("shibuya").await;
    app.create_organisation("meguro").await;
    let manager = app.create_user("manager").await;
    let chief = app.create_user("chief").await;
    let other = app.create_user("other").await;
    let today = day(2026, 11, 23);
    app.add_membership(&manager, "shibuya", "manager", day(2026, 4, 1), None)
        .await;
    app.add_membership(&manager, "meguro", "manager", day(2026, 4, 1), None)
        .await;
    app.add_membership(&other, "shibuya", "manager", day(2026, 4, 1), None)
        .await;

    let register = |principal: &str, role: &str, org: &str, from, until| NewDeputy {
        principal_user_id: principal.to_owned(),
        deputy_user_id: chief.clone(),
        role: role.to_owned(),
        organisation_id: org.to_owned(),
        valid_from: from,
        valid_until: until,
    };
    let now = app.now();
    // In effect today, for shibuya only (not meguro, where the manager also holds the role).
    users::add_deputy(
        &app.db,
        register(&manager, "manager", "shibuya", today, Some(today)),
        now,
    )
    .await
    .unwrap();
    // Starts tomorrow: not yet.
    users::add_deputy(
        &app.db,
        register(&other, "manager", "shibuya", day(2026, 11, 24), None),
        now,
    )
    .await
    .unwrap();
    // A role the principal does not hold: nothing to decide.
    users::add_deputy(
        &app.db,
        register(&other, "chief", "shibuya", today, None),
        now,
    )
    .await
    .unwrap();

    let me = me(&app, "chief").await;
    assert_eq!(me["grants"], json!([]));
    assert_eq!(
        me["deputy_for"],
        json!([{ "principal": manager, "grants": [{ "role": "manager", "org": "shibuya" }] }])
    );
}

async fn unknown_roles_missing_parties_and_self_deputies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_organisation("shibuya").await;
    let user = app.create_user("tanaka").await;
    let now = app.now();

    let error = users::add_membership(
        &app.db,
        NewMembership {
            user_id: "no-such-user".to_owned(),
            organisation_id: "no-such-org".to_owned(),
            role: "superuser".to_owned(),
            valid_from: day(2026, 4, 1),
            valid_until: Some(day(2026, 3, 31)),
        },
        now,
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ValidationFailed);
    assert_eq!(
        fields_of(&error),
        ["role", "valid_until", "user_id", "organisation_id"]
    );

    let error = users::add_deputy(
        &app.db,
        NewDeputy {
            principal_user_id: user.clone(),
            deputy_user_id: user.clone(),
            role: "manager".to_owned(),
            organisation_id: "shibuya".to_owned(),
            valid_from: day(2026, 4, 1),
            valid_until: None,
        },
        now,
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ValidationFailed);
    assert_eq!(error.details().unwrap()[0]["field"], "deputy_user_id");
}

async fn a_taken_login_is_a_conflict_and_weak_passwords_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;
    let new_user = |login: &str, password: &str| NewUser {
        login: login.to_owned(),
        display_name: "田中".to_owned(),
        email: None,
        password: SecretString::from(password),
    };
    let taken = users::create_user(&app.db, new_user("tanaka", PASSWORD), app.now())
        .await
        .unwrap_err();
    assert_eq!(taken.code(), ErrorCode::Conflict);
    assert_eq!(taken.details().unwrap()["field"], "login");
    assert_eq!(
        taken.details().unwrap()["reason"]["en"],
        "This value is already taken; choose another."
    );

    let weak = users::create_user(&app.db, new_user("sato", "short"), app.now())
        .await
        .unwrap_err();
    assert_eq!(weak.code(), ErrorCode::ValidationFailed);
    assert_eq!(weak.details().unwrap()[0]["field"], "password");
}

async fn an_imported_user_keeps_its_id_and_signs_in_with_the_supplied_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let hash = itaku::auth::password::hash(&SecretString::from(PASSWORD)).unwrap();
    let imported = |id: &str, login: &str, password_hash: &str| ImportedUser {
        id: id.to_owned(),
        login: login.to_owned(),
        display_name: "田中".to_owned(),
        email: None,
        password_hash: password_hash.to_owned(),
    };
    let user = users::import_user(&app.db, imported("user-7", "tanaka", &hash), app.now())
        .await
        .unwrap();
    assert_eq!(user.id, "user-7");
    assert_eq!(me(&app, "tanaka").await["user"]["id"], "user-7");

    let taken = users::import_user(&app.db, imported("user-7", "sato", &hash), app.now())
        .await
        .unwrap_err();
    assert_eq!(taken.code(), ErrorCode::Conflict);
    assert_eq!(taken.details().unwrap()["field"], "id");
    let invalid = users::import_user(&app.db, imported("user 8", "sato", "plain"), app.now())
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), ErrorCode::ValidationFailed);
    assert_eq!(fields_of(&invalid), ["id", "password_hash"]);
}

async fn a_role_of_the_deployments_own_vocabulary_can_be_granted(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_organisation("shibuya").await;
    let user = app.create_user("tanaka").await;
    let membership = |role: &str| NewMembership {
        user_id: user.clone(),
        organisation_id: "shibuya".to_owned(),
        role: role.to_owned(),
        valid_from: day(2026, 4, 1),
        valid_until: None,
    };
    let product = users::add_membership(&app.db, membership("staff"), app.now())
        .await
        .unwrap_err();
    assert_eq!(product.code(), ErrorCode::ValidationFailed);
    let vocabulary = Vocabulary::product().with_roles(&["staff"]);
    users::add_membership_in(&app.db, &vocabulary, membership("staff"), app.now())
        .await
        .unwrap();
}

crate::on_both_backends!(
    memberships_grant_their_role_only_on_the_days_they_cover,
    a_deputy_sees_the_principals_grants_for_the_registered_role_on_its_days,
    unknown_roles_missing_parties_and_self_deputies_are_refused,
    a_taken_login_is_a_conflict_and_weak_passwords_are_refused,
    an_imported_user_keeps_its_id_and_signs_in_with_the_supplied_hash,
    a_role_of_the_deployments_own_vocabulary_can_be_granted,
);
