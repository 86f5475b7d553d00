//! What a replica keeps between requests (`itaku::services::recent`): an event decided on a
//! kept session or row is written only while they hold, and is otherwise answered as if
//! nothing had been kept.

use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, day, id_of, Backend, TestApp, MEGURO};
use crate::instances::app_with_notice;

async fn epoch(app: &TestApp) -> i64 {
    itaku::services::recent::current_epoch(&app.db)
        .await
        .unwrap()
}

/// Runs `sql` with `id` bound as its one parameter.
async fn run(app: &TestApp, sql: &str, id: &str) {
    let backend = app.db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => sql.replace('?', "$1"),
        _ => sql.to_owned(),
    };
    app.db
        .execute(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await
        .unwrap();
}

fn office_notice() -> Value {
    json!({
        "workflow": "office_notice",
        "context": { "subject": "届出", "organisations": { "applicant": MEGURO } },
    })
}

/// A `draft` notice of 目黒区, created by `token` (which keeps its row and the session).
async fn notice(app: &TestApp, token: &str) -> Value {
    let created = app.create_instance(token, office_notice()).await;
    assert_eq!(created.status(), 201);
    created.json().await.unwrap()
}

async fn every_change_of_what_a_session_stands_for_moves_the_authorisation_epoch(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let mut last = epoch(&app).await;
    let mut moved = |now: i64, what: &str| {
        assert!(now > last, "{what} did not move the epoch ({last} → {now})");
        last = now;
    };
    app.create_organisation(MEGURO).await;
    let user = app.create_user("epoch").await;
    moved(epoch(&app).await, "a new user");
    let principal = app.create_user("epoch_principal").await;
    moved(epoch(&app).await, "a second user");
    run(
        &app,
        "UPDATE users SET display_name = 'x' WHERE id = ?",
        &user,
    )
    .await;
    moved(epoch(&app).await, "a user's update");
    app.add_membership(&user, MEGURO, "officer", day(2020, 4, 1), None)
        .await;
    moved(epoch(&app).await, "a new membership");
    run(
        &app,
        "UPDATE memberships SET valid_until = valid_from WHERE user_id = ?",
        &user,
    )
    .await;
    moved(epoch(&app).await, "a membership's end");
    run(&app, "DELETE FROM memberships WHERE user_id = ?", &user).await;
    moved(epoch(&app).await, "a membership's deletion");
    app.add_membership(&principal, MEGURO, "manager", day(2020, 4, 1), None)
        .await;
    moved(epoch(&app).await, "the principal's membership");
    itaku::services::users::add_deputy(
        &app.db,
        itaku::services::users::NewDeputy {
            principal_user_id: principal.clone(),
            deputy_user_id: user.clone(),
            organisation_id: MEGURO.to_owned(),
            role: "manager".to_owned(),
            valid_from: day(2020, 4, 1),
            valid_until: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    moved(epoch(&app).await, "a new deputyship");
    run(
        &app,
        "UPDATE deputies SET valid_until = valid_from WHERE deputy_user_id = ?",
        &user,
    )
    .await;
    moved(epoch(&app).await, "a deputyship's end");
    run(&app, "DELETE FROM deputies WHERE deputy_user_id = ?", &user).await;
    moved(epoch(&app).await, "a deputyship's deletion");
    let token = app.token_for("epoch").await;
    let signed_out = app
        .post_json_with_token("/api/v1/auth/sign-out", &token, &json!({}))
        .await;
    assert_eq!(signed_out.status(), 204);
    moved(epoch(&app).await, "a sign-out");
    run(&app, "DELETE FROM revoked_tokens WHERE jti <> ?", "none").await;
    moved(epoch(&app).await, "a revocation's purge");
    let gone = app.create_user("epoch_gone").await;
    moved(epoch(&app).await, "a third user");
    run(&app, "DELETE FROM users WHERE id = ?", &gone).await;
    moved(epoch(&app).await, "a user's deletion");
}

async fn a_creation_or_an_event_on_a_kept_session_is_refused_once_its_grant_has_ended(
    backend: Backend,
) {
    let (app, _dir) = app_with_notice(backend).await;
    app.create_organisation(MEGURO).await;
    let officer = app.person("kept_officer", &[(MEGURO, "officer")]).await;
    let created = notice(&app, &officer.token).await;
    let id = id_of(&created).to_owned();
    let accept = json!({ "event": "accept" });

    // Another replica (or an administrator's SQL) ends the officer's only membership.
    run(
        &app,
        "DELETE FROM memberships WHERE user_id = ?",
        &officer.id,
    )
    .await;
    // The kept session no longer holds for a new notice either; the refusal starts nothing.
    let refused = app.create_instance(&officer.token, office_notice()).await;
    assert_api_error(refused, 403, "transition_forbidden").await;
    assert_eq!(app.instance_count().await, 1, "a notice was started");
    let before = app.footprint(&id).await;
    // The submitter still sees the notice, but may no longer decide it.
    let refused = app.fire(&officer.token, &id, accept.clone()).await;
    assert_api_error(refused, 403, "transition_forbidden").await;
    assert_eq!(
        app.footprint(&id).await,
        before,
        "the refusal wrote something"
    );

    // Given the role again, the officer decides it.
    app.add_membership(&officer.id, MEGURO, "officer", day(2020, 4, 1), None)
        .await;
    let accepted = app.fire_ok(&officer.token, &id, accept).await;
    assert_eq!(accepted["state"], "accepted");
    let created = app.create_instance(&officer.token, office_notice()).await;
    assert_eq!(created.status(), 201);
    let report = itaku::services::audit::verify(&app.db).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

async fn an_event_on_a_kept_row_another_replica_moved_is_answered_on_the_row_as_it_is(
    backend: Backend,
) {
    let (app, _dir) = app_with_notice(backend).await;
    app.create_organisation(MEGURO).await;
    let officer = app.person("kept_row", &[(MEGURO, "officer")]).await;
    let created = notice(&app, &officer.token).await;
    let id = id_of(&created).to_owned();

    // Another replica moves the instance on (here by hand, as its write would).
    run(
        &app,
        "UPDATE workflow_instances SET state = 'accepted', version = version + 1 WHERE id = ?",
        &id,
    )
    .await;
    let before = app.footprint(&id).await;
    let first = app
        .fire(&officer.token, &id, json!({ "event": "accept" }))
        .await;
    let (status, body) = (first.status(), first.json::<Value>().await.unwrap());
    assert_eq!(
        app.footprint(&id).await,
        before,
        "the refusal wrote something"
    );
    // The same request again, with nothing kept of the row any more: the same answer.
    let again = app
        .fire(&officer.token, &id, json!({ "event": "accept" }))
        .await;
    assert_eq!(again.status(), status);
    assert_eq!(again.json::<Value>().await.unwrap()["code"], body["code"]);
    assert!(status.is_client_error(), "{status} {body}");
    assert_ne!(body["code"], "concurrent_update", "{body}");

    // With the version it now has, the kept (older) row is not used either.
    let current = app
        .fire(
            &officer.token,
            &id,
            json!({ "event": "accept", "version": 2 }),
        )
        .await;
    assert_eq!(current.status(), status);
    assert_eq!(app.footprint(&id).await, before);
}

crate::on_both_backends!(
    every_change_of_what_a_session_stands_for_moves_the_authorisation_epoch,
    a_creation_or_an_event_on_a_kept_session_is_refused_once_its_grant_has_ended,
    an_event_on_a_kept_row_another_replica_moved_is_answered_on_the_row_as_it_is,
);
