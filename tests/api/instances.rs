//! Instances over HTTP on the chain 目黒区 → 東京都国保連 → 国保中央会: the approval route, what each
//! transition writes (audit chain, outbox, timers), refusals that write nothing, races,
//! visibility, 代決 and 後閲, 差戻し and corrections.

use std::collections::HashSet;
use std::future::Future;

use futures_util::future::join_all;
use itaku::services::audit::{self, GENESIS_HASH};
use itaku::services::users::{self, NewDeputy};
use serde_json::{json, Value};

use crate::helpers::{
    assert_api_error, day, id_of, instance_path, spawn_app, spawn_app_with, unmet_codes, Backend,
    Cast, TestApp, CHUOKAI, KOKUHOREN, MEGURO, WORKFLOW,
};
use itaku::clock::Clock;

/// Sends `request` expecting the error `code`, and checks that nothing of instance `id` changed.
async fn refused_without_trace(
    app: &TestApp,
    id: &str,
    request: impl Future<Output = reqwest::Response>,
    status: u16,
    code: &str,
) -> Value {
    let before = app.footprint(id).await;
    let error = assert_api_error(request.await, status, code).await;
    assert_eq!(app.footprint(id).await, before, "{code} changed something");
    error
}

/// `(status, code)` of every response, `code` being `ok` for a 200.
async fn outcomes(responses: Vec<reqwest::Response>) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        let code = if status == 200 {
            "ok".to_owned()
        } else {
            body["code"].as_str().unwrap().to_owned()
        };
        out.push((status, code));
    }
    out
}

async fn a_tier_two_application_is_permitted_through_the_municipal_approval_route(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let draft = cast.apply_tier2(&app).await;
    let id = id_of(&draft).to_owned();
    assert_eq!(draft["state"], "draft");
    assert_eq!(draft["version"], 1);
    assert_eq!(draft["organisation_id"], KOKUHOREN);
    assert_eq!(draft["submitter"], cast.kokuhoren.id.as_str());

    // Who acts, what they may do before and after, and where the instance goes.
    let route = [
        (
            &cast.kokuhoren,
            "submit",
            "decision",
            json!(["submit", "edit", "withdraw"]),
            json!(["withdraw"]),
        ),
        (
            &cast.officer,
            "approve",
            "decision",
            json!(["approve", "return", "reject"]),
            json!(["recall"]),
        ),
        (
            &cast.chief,
            "approve",
            "decision",
            json!(["approve", "return", "reject"]),
            json!(["recall"]),
        ),
        (
            &cast.manager,
            "approve",
            "permitted",
            json!(["approve", "return", "reject"]),
            json!(["suspend", "revoke"]),
        ),
    ];
    for (version, (who, event, state, before, after)) in (1..).zip(route) {
        let shown = app.get_json(&instance_path(&id), &who.token).await;
        assert_eq!(shown["version"], version);
        assert_eq!(shown["available_events"], before, "before {event}");
        let fired = app
            .fire_ok(
                &who.token,
                &id,
                json!({ "event": event, "version": version }),
            )
            .await;
        assert_eq!(fired["state"], state, "after {event}");
        assert_eq!(fired["version"], version + 1, "after {event}");
        assert_eq!(fired["available_events"], after, "after {event}");
        let response = app.get_with_token(&instance_path(&id), &who.token).await;
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", version + 1));
        let shown: Value = response.json().await.unwrap();
        assert_eq!(shown, fired, "GET shows what {event} answered");
    }

    let trail = app
        .get_json(
            &format!("{}/audit", instance_path(&id)),
            &cast.officer.token,
        )
        .await;
    let trail = trail.as_array().unwrap();
    let mut previous = GENESIS_HASH;
    let mut request_ids = HashSet::new();
    for (seq, record) in (1..).zip(trail) {
        assert_eq!(record["seq"], seq, "{record}");
        assert_eq!(record["prev_hash"], previous, "{record}");
        previous = record["hash"].as_str().unwrap();
        let request_id = record["request_id"].as_str().unwrap();
        assert!(
            request_ids.insert(request_id),
            "one request, one record: {record}"
        );
    }
    let summary: Vec<(&str, &str, &Value)> = trail
        .iter()
        .map(|r| {
            let actor = r["actor_id"].as_str().unwrap();
            (r["event"].as_str().unwrap(), actor, &r["step"])
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("create", cast.kokuhoren.id.as_str(), &Value::Null),
            ("submit", cast.kokuhoren.id.as_str(), &Value::Null),
            ("approve", cast.officer.id.as_str(), &json!("officer_check")),
            ("approve", cast.chief.id.as_str(), &json!("chief")),
            ("approve", cast.manager.id.as_str(), &json!("manager")),
        ]
    );

    // The submit (seq 2) and the permission (seq 5) wrote outbox rows; the steps did not.
    let records = app.audit_rows(&id).await;
    let (submitted_at, permitted_at) = (records[1].at, records[4].at);
    let outbox = app.outbox_rows(&id).await;
    let effects: Vec<(&str, &str, Option<&str>)> = outbox
        .iter()
        .map(|o| {
            (
                o.idempotency_key.as_str(),
                o.effect.as_str(),
                o.template.as_deref(),
            )
        })
        .collect();
    let key = |seq: i64, ix: usize| format!("{id}:{seq}:{ix}");
    assert_eq!(
        effects,
        [
            (key(2, 0).as_str(), "notify", Some("application_submitted")),
            (key(2, 1).as_str(), "notify", Some("step_waiting")),
            (key(5, 0).as_str(), "notify", Some("application_permitted")),
            (key(5, 1).as_str(), "write_document", None),
        ]
    );
    let document: Value = serde_json::from_str(&outbox[3].payload).unwrap();
    assert_eq!(document["params"]["document"], "permission_notice");
    assert!(outbox
        .iter()
        .all(|o| o.status == entity::outbox::OutboxStatus::Pending));

    // Entering `decision` started its timers; leaving it cancelled them.
    let timer_rows = app.timer_rows(&id).await;
    let timers: Vec<_> = timer_rows
        .iter()
        .map(|t| (t.timer.as_str(), t.started_at, t.cancelled_at))
        .collect();
    assert_eq!(
        timers,
        [
            ("decision_escalation", submitted_at, Some(permitted_at)),
            ("decision_reminder", submitted_at, Some(permitted_at)),
        ]
    );
}

async fn a_tier_three_application_waits_for_the_intermediate_tier_before_the_municipality_acts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let draft = cast.apply_tier3(&app).await;
    let id = id_of(&draft).to_owned();
    let submitted = app
        .fire_ok(&cast.chuokai.token, &id, json!({ "event": "submit" }))
        .await;
    assert_eq!(submitted["state"], "endorsement");

    let early = app.fire(&cast.officer.token, &id, json!({ "event": "approve" }));
    refused_without_trace(&app, &id, early, 409, "event_not_applicable").await;
    let by_applicant = app.fire(&cast.chuokai.token, &id, json!({ "event": "endorse" }));
    let error = refused_without_trace(&app, &id, by_applicant, 403, "transition_forbidden").await;
    assert!(
        unmet_codes(&error).contains(&"step_role_required"),
        "{error}"
    );

    let shown = app
        .get_json(&instance_path(&id), &cast.kokuhoren.token)
        .await;
    assert_eq!(shown["available_events"], json!(["endorse", "return"]));
    let endorsed = app
        .fire_ok(&cast.kokuhoren.token, &id, json!({ "event": "endorse" }))
        .await;
    assert_eq!(endorsed["state"], "decision");
    let trail = app.audit_rows(&id).await;
    let last = trail.last().unwrap();
    assert_eq!(
        (last.actor_id.as_str(), last.step.as_deref()),
        (cast.kokuhoren.id.as_str(), Some("endorse_1"))
    );
    let running: Vec<String> = app
        .timer_rows(&id)
        .await
        .into_iter()
        .filter(|t| t.cancelled_at.is_none())
        .map(|t| t.timer)
        .collect();
    assert_eq!(running, ["decision_escalation", "decision_reminder"]);

    let approved = app
        .fire_ok(&cast.officer.token, &id, json!({ "event": "approve" }))
        .await;
    assert_eq!(
        approved["progress"]["route"]["current"], 1,
        "at the chief's step"
    );
}

async fn only_a_contractor_of_the_applicant_organisation_files_an_application(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    // Only 東京都国保連's contractors may file under its node.
    for outsider in [&cast.officer, &cast.chuokai] {
        let body = json!({
            "contractor_id": vendor,
            "parent_node_ids": [cast.tier1],
            "fields": crate::helpers::application_fields("株式会社テスト"),
        });
        let response = app
            .post_json_with_token("/api/v1/applications", &outsider.token, &body)
            .await;
        let error = assert_api_error(response, 422, "validation_failed").await;
        assert_eq!(error["details"][0]["field"], "parent_node_ids[0]");
    }
    // Nobody starts a subcontract instance directly, with organisations of their choosing.
    let tier2 = json!({ "applicant_org": KOKUHOREN, "root_consignor_org": MEGURO });
    let token = cast.kokuhoren.token.as_str();
    let body = json!({ "workflow": WORKFLOW, "context": tier2 });
    let response = app.create_instance(token, body).await;
    assert_api_error(response, 409, "managed_workflow").await;
    let unknown = json!({ "workflow": "bulk_permission", "context": tier2 });
    let response = app.create_instance(token, unknown).await;
    assert_api_error(response, 404, "unknown_workflow").await;
    assert_eq!(app.instance_count().await, 0);
}

async fn malformed_or_unknown_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let id = id_of(&submitted);
    let events = format!("{}/events", instance_path(id));
    let token = cast.officer.token.as_str();

    let malformed =
        app.post_raw_with_token(&events, token, "application/json", r#"{"event": "approve""#);
    refused_without_trace(&app, id, malformed, 400, "malformed_json").await;
    let unknown_field = app.fire(token, id, json!({ "event": "approve", "urgent": true }));
    let error = refused_without_trace(&app, id, unknown_field, 422, "validation_failed").await;
    assert_eq!(error["details"][0]["field"], "urgent", "{error}");
    let unknown_event = app.fire(token, id, json!({ "event": "rubber_stamp" }));
    let error = refused_without_trace(&app, id, unknown_event, 400, "unknown_event").await;
    assert_eq!(error["details"]["event"], "rubber_stamp", "{error}");
    let known = error["details"]["known"].as_array().expect("details.known");
    for event in [
        "submit",
        "endorse",
        "approve",
        "return",
        "proxy",
        "acknowledge",
    ] {
        assert!(known.contains(&json!(event)), "{event} in {error}");
    }
}

async fn refusals_by_the_workflow_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let id = id_of(&submitted);

    let wrong_role = app.fire(&cast.chief.token, id, json!({ "event": "approve" }));
    let error = refused_without_trace(&app, id, wrong_role, 403, "transition_forbidden").await;
    assert_eq!(unmet_codes(&error), ["step_role_required"]);

    let stale = app.fire(
        &cast.officer.token,
        id,
        json!({ "event": "approve", "version": 1 }),
    );
    let error = refused_without_trace(&app, id, stale, 409, "stale_version").await;
    assert_eq!(error["details"], json!({ "expected": 1, "current": 2 }));

    let silent_return = app.fire(&cast.officer.token, id, json!({ "event": "return" }));
    let error = refused_without_trace(&app, id, silent_return, 422, "transition_rejected").await;
    assert_eq!(unmet_codes(&error), ["comment_required"]);
}

async fn a_refusal_lists_every_unmet_requirement_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let draft = cast.apply_tier3(&app).await;
    let id = id_of(&draft);

    // 東京都国保連 is in the chain, but the application is 国保中央会's to submit.
    let by_other_tier = app.fire(&cast.kokuhoren.token, id, json!({ "event": "submit" }));
    let error = refused_without_trace(&app, id, by_other_tier, 403, "transition_forbidden").await;
    let codes = unmet_codes(&error);
    assert!(codes.contains(&"role_not_permitted"), "{error}");
    assert!(codes.contains(&"not_submitter"), "{error}");
}

async fn fifty_simultaneous_approvals_of_one_version_have_exactly_one_winner(backend: Backend) {
    fifty_simultaneous_approvals_of_one_version(backend, 1).await;
}

// Several HTTP workers share one group commit; one worker (on PostgreSQL) has its own.
async fn the_same_race_has_one_winner_with_two_http_workers(backend: Backend) {
    fifty_simultaneous_approvals_of_one_version(backend, 2).await;
}

async fn fifty_simultaneous_approvals_of_one_version(backend: Backend, http_workers: usize) {
    let app = spawn_app_with(backend, Clock::System, |settings| {
        settings.http_workers = Some(http_workers);
    })
    .await;
    assert_eq!(app.state.settings.effective_http_workers(), http_workers);
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let id = id_of(&submitted);
    let version = submitted["version"].as_i64().unwrap();
    let before = app.footprint(id).await;

    let body = json!({ "event": "approve", "version": version });
    let racers = (0..50).map(|_| app.fire(&cast.officer.token, id, body.clone()));
    let outcomes = outcomes(join_all(racers).await).await;

    let winners = outcomes.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    for (status, code) in &outcomes {
        assert!(
            *status == 200
                || (*status == 409
                    && ["stale_version", "concurrent_update"].contains(&code.as_str())),
            "{outcomes:?}"
        );
    }
    let after = app.footprint(id).await;
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.audit_records, before.audit_records + 1);
    let report = audit::verify(&app.db).await.unwrap();
    assert!(report.is_clean(), "{}", audit::render(&report));
}

async fn fifty_simultaneous_decisions_without_a_version_permit_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let waiting = cast.at_manager_step(&app).await;
    let id = id_of(&waiting);
    let before = app.footprint(id).await;

    let racers = (0..50).map(|_| app.fire(&cast.manager.token, id, json!({ "event": "approve" })));
    let outcomes = outcomes(join_all(racers).await).await;

    let winners = outcomes.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let losing_codes = ["event_not_applicable", "stale_version", "concurrent_update"];
    for (status, code) in &outcomes {
        assert!(
            *status == 200 || (*status == 409 && losing_codes.contains(&code.as_str())),
            "{outcomes:?}"
        );
    }
    let after = app.footprint(id).await;
    assert_eq!(after.state, "permitted");
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.audit_records, before.audit_records + 1);
    assert_eq!(
        after.outbox_rows,
        before.outbox_rows + 2,
        "one notice, one document"
    );
    let report = audit::verify(&app.db).await.unwrap();
    assert!(report.is_clean(), "{}", audit::render(&report));
}

async fn a_user_of_another_municipality_can_neither_see_nor_act_on_an_application(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let id = id_of(&submitted);
    let path = instance_path(id);
    let token = cast.outsider.token.as_str();

    for what in [
        path.clone(),
        format!("{path}/audit"),
        format!("{path}/diagram.svg"),
    ] {
        let response = app.get_with_token(&what, token).await;
        assert_api_error(response, 404, "not_found").await;
    }
    let fired = app.fire(token, id, json!({ "event": "approve" }));
    refused_without_trace(&app, id, fired, 404, "not_found").await;
}

async fn every_organisation_of_a_tier_three_chain_sees_the_application(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let colleague = app
        .person("chuokai_colleague", &[(CHUOKAI, "contractor")])
        .await;
    let draft = cast.apply_tier3(&app).await;
    let id = id_of(&draft);
    let path = instance_path(id);
    let chain = [&cast.chuokai, &colleague, &cast.kokuhoren, &cast.officer];

    for who in chain {
        app.get_json(&path, &who.token).await;
    }
    app.fire_ok(&cast.chuokai.token, id, json!({ "event": "submit" }))
        .await;
    app.fire_ok(&cast.kokuhoren.token, id, json!({ "event": "endorse" }))
        .await;
    for who in chain {
        let shown = app.get_json(&path, &who.token).await;
        assert_eq!(shown["state"], "decision");
        app.get_json(&format!("{path}/audit"), &who.token).await;
    }
    let response = app.get_with_token(&path, &cast.outsider.token).await;
    assert_api_error(response, 404, "not_found").await;
}

async fn requests_without_a_token_are_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let path = instance_path(id_of(&submitted));

    for what in [
        path.clone(),
        format!("{path}/audit"),
        format!("{path}/diagram.svg"),
    ] {
        assert_api_error(app.get(&what).await, 401, "unauthenticated").await;
    }
    let fired = app
        .post_json(&format!("{path}/events"), &json!({ "event": "approve" }))
        .await;
    assert_api_error(fired, 401, "unauthenticated").await;
    let created = app
        .post_json("/api/v1/instances", &json!({ "workflow": WORKFLOW }))
        .await;
    assert_api_error(created, 401, "unauthenticated").await;
}

async fn a_registered_deputy_decides_for_the_manager_who_reviews_it_afterwards(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let deputy = app.person("meguro_deputy", &[(MEGURO, "chief")]).await;
    users::add_deputy(
        &app.db,
        NewDeputy {
            principal_user_id: cast.manager.id.clone(),
            deputy_user_id: deputy.id.clone(),
            role: "manager".to_owned(),
            organisation_id: MEGURO.to_owned(),
            valid_from: day(2020, 4, 1),
            valid_until: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    let waiting = cast.at_manager_step(&app).await;
    let id = id_of(&waiting);

    let shown = app.get_json(&instance_path(id), &deputy.token).await;
    assert_eq!(shown["available_events"], json!(["proxy"]));
    let proxied = app
        .fire_ok(
            &deputy.token,
            id,
            json!({ "event": "proxy", "on_behalf_of": cast.manager.id }),
        )
        .await;
    assert_eq!(proxied["state"], "permitted");
    let trail = app.audit_rows(id).await;
    let decision = trail.last().unwrap();
    assert_eq!(decision.actor_id, deputy.id);
    assert_eq!(
        decision.on_behalf_of.as_deref(),
        Some(cast.manager.id.as_str())
    );
    assert_eq!(decision.step.as_deref(), Some("manager"));
    let templates: Vec<Option<String>> = app
        .outbox_rows(id)
        .await
        .into_iter()
        .filter(|o| {
            o.idempotency_key
                .starts_with(&format!("{id}:{}:", decision.seq))
        })
        .map(|o| o.template)
        .collect();
    assert_eq!(
        templates,
        [
            Some("application_permitted".to_owned()),
            None,
            Some("post_review_requested".to_owned()),
        ]
    );

    let shown = app.get_json(&instance_path(id), &cast.manager.token).await;
    assert!(
        shown["available_events"]
            .as_array()
            .unwrap()
            .contains(&json!("acknowledge")),
        "{shown}"
    );
    let acknowledged = app
        .fire_ok(&cast.manager.token, id, json!({ "event": "acknowledge" }))
        .await;
    assert_eq!(acknowledged["state"], "permitted");
    let review = &acknowledged["progress"]["post_reviews"][0];
    assert_eq!(review["principal"], cast.manager.id.as_str(), "{review}");
    assert_eq!(review["done_by"], cast.manager.id.as_str(), "{review}");
    let again = app.fire(&cast.manager.token, id, json!({ "event": "acknowledge" }));
    let error = refused_without_trace(&app, id, again, 409, "event_not_applicable").await;
    assert_eq!(unmet_codes(&error), ["no_post_review_pending"]);
}

async fn a_return_goes_to_an_earlier_step_or_back_to_the_applicant(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let waiting = cast.at_manager_step(&app).await;
    let id = id_of(&waiting);

    let back_to_officer = app
        .fire_ok(
            &cast.manager.token,
            id,
            json!({ "event": "return", "to_step": "officer_check", "comment": "体制図の監督体制を確認してください" }),
        )
        .await;
    assert_eq!(back_to_officer["state"], "decision");
    let route = &back_to_officer["progress"]["route"];
    assert_eq!(route["current"], 0, "{route}");
    assert_eq!(
        route["records"],
        json!([]),
        "earlier approvals are undone: {route}"
    );
    let record = app.audit_rows(id).await.pop().unwrap();
    assert_eq!(
        (
            record.event.as_str(),
            record.step.as_deref(),
            record.to_state.as_str()
        ),
        ("return", Some("officer_check"), "decision")
    );
    assert_eq!(app.footprint(id).await.running_timers, 2, "still deciding");
    let shown = app.get_json(&instance_path(id), &cast.officer.token).await;
    assert_eq!(
        shown["available_events"],
        json!(["approve", "return", "reject"])
    );

    let to_applicant = app
        .fire_ok(
            &cast.officer.token,
            id,
            json!({ "event": "return", "comment": "再委託先の安全管理措置を添付してください" }),
        )
        .await;
    assert_eq!(to_applicant["state"], "draft");
    assert_eq!(
        app.footprint(id).await.running_timers,
        0,
        "no longer deciding"
    );
    let returned = app.outbox_rows(id).await.pop().unwrap();
    assert_eq!(returned.template.as_deref(), Some("application_returned"));
    let shown = app
        .get_json(&instance_path(id), &cast.kokuhoren.token)
        .await;
    assert_eq!(
        shown["available_events"],
        json!(["submit", "edit", "withdraw"])
    );

    let resubmitted = app
        .fire_ok(&cast.kokuhoren.token, id, json!({ "event": "submit" }))
        .await;
    assert_eq!(resubmitted["state"], "decision");
    let footprint = app.footprint(id).await;
    assert_eq!(
        (footprint.timers, footprint.running_timers),
        (4, 2),
        "timers start afresh"
    );
}

/// A generic workflow beside the product's, for what the engine does for every kind.
/// A one-step workflow: an officer accepts a draft notice. With `org`, the notice belongs to
/// the organisation its context names under that scope, and only that organisation's officers
/// see and accept it; without, every officer does.
pub(crate) fn notice_definition(id: &str, org: Option<&str>) -> String {
    let (create_org, org) = org.map_or_else(Default::default, |scope| {
        (
            format!("create_org = \"{scope}\"\n"),
            format!("org = \"{scope}\"\n"),
        )
    });
    format!(
        r#"
id = "{id}"
version = 1
context = "generic"
title = {{ ja = "届出", en = "Notice" }}
create_roles = ["officer"]
{create_org}
[[states]]
id = "draft"
initial = true
label = {{ ja = "下書き", en = "Draft" }}

[[states]]
id = "accepted"
terminal = true
label = {{ ja = "受理", en = "Accepted" }}

[[transitions]]
event = "accept"
from = ["draft"]
to = "accepted"
roles = ["officer"]
{org}label = {{ ja = "受理", en = "Accept" }}
"#
    )
}

pub(crate) async fn app_with_notice(backend: Backend) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("subcontract_permission.toml"),
        include_str!("../../workflows/subcontract_permission.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("notice.toml"),
        notice_definition("notice", None),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("office_notice.toml"),
        notice_definition("office_notice", Some("applicant")),
    )
    .unwrap();
    let path = dir.path().to_owned();
    let app = spawn_app_with(backend, Clock::System, |s| {
        s.workflows_dir = path;
    })
    .await;
    (app, dir)
}

async fn a_decided_instance_is_corrected_by_a_new_linked_instance(backend: Backend) {
    let (app, _dir) = app_with_notice(backend).await;
    let cast = Cast::create(&app).await;
    let token = cast.officer.token.as_str();
    let created = app
        .create_instance(
            token,
            json!({ "workflow": "notice", "context": { "subject": "届出" } }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = id_of(&created).to_owned();
    app.fire_ok(token, &id, json!({ "event": "accept" })).await;

    let body =
        json!({ "workflow": "notice", "context": { "subject": "届出(訂正)" }, "corrects": id });
    let response = app.create_instance(token, body).await;
    assert_eq!(response.status(), 201);
    let correction: Value = response.json().await.unwrap();
    assert_eq!(correction["corrects_instance_id"], id.as_str());
    assert_eq!(correction["state"], "draft");
    let created = app.audit_rows(id_of(&correction)).await.remove(0);
    let details: Value = serde_json::from_str(&created.details).unwrap();
    assert_eq!(details["corrects"], id.as_str());
}

/// The API reads the instance beside the session check; what it read serves only a session
/// that holds and a user who may see the instance.
async fn an_event_is_refused_without_trace_for_a_signed_out_token_or_an_outsider(backend: Backend) {
    let (app, _dir) = app_with_notice(backend).await;
    let cast = Cast::create(&app).await;
    let officer = app.person("notice_officer", &[(MEGURO, "officer")]).await;
    let created = app
        .create_instance(
            &officer.token,
            json!({
                "workflow": "office_notice",
                "context": { "subject": "届出", "organisations": { "applicant": MEGURO } },
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = id_of(&created).to_owned();
    let accept = json!({ "event": "accept", "version": created["version"] });

    let outsider = app.fire(&cast.outsider.token, &id, accept.clone());
    refused_without_trace(&app, &id, outsider, 404, "not_found").await;

    let signed_out = app
        .post_json_with_token("/api/v1/auth/sign-out", &officer.token, &json!({}))
        .await;
    assert_eq!(signed_out.status(), 204);
    let fired = app.fire(&officer.token, &id, accept.clone());
    refused_without_trace(&app, &id, fired, 401, "unauthenticated").await;
    let fired = app.fire(&officer.token, "no-such-instance", accept.clone());
    assert_api_error(fired.await, 401, "unauthenticated").await;

    // The officer's colleague, signed in, may still decide it.
    app.fire_ok(&cast.officer.token, &id, accept).await;
}

async fn an_instance_not_yet_decided_cannot_be_corrected(backend: Backend) {
    let (app, _dir) = app_with_notice(backend).await;
    let cast = Cast::create(&app).await;
    let token = cast.officer.token.as_str();
    let created = app
        .create_instance(token, json!({ "workflow": "notice", "context": {} }))
        .await;
    let created: Value = created.json().await.unwrap();
    let id = id_of(&created).to_owned();
    let body = json!({ "workflow": "notice", "context": {}, "corrects": id });
    let correction = app.create_instance(token, body);
    refused_without_trace(&app, &id, correction, 409, "not_correctable").await;
    assert_eq!(app.instance_count().await, 1, "no correction was started");
    // A subcontract permission is never corrected by hand: a new application is filed.
    let permitted = cast.permitted_tier2(&app).await;
    let body = json!({ "workflow": WORKFLOW, "context": permitted["context"], "corrects": id_of(&permitted) });
    let response = app.create_instance(&cast.kokuhoren.token, body).await;
    assert_api_error(response, 409, "managed_workflow").await;
}

crate::on_both_backends!(
    a_tier_two_application_is_permitted_through_the_municipal_approval_route,
    a_tier_three_application_waits_for_the_intermediate_tier_before_the_municipality_acts,
    only_a_contractor_of_the_applicant_organisation_files_an_application,
    malformed_or_unknown_input_is_refused_and_changes_nothing,
    refusals_by_the_workflow_change_nothing,
    a_refusal_lists_every_unmet_requirement_at_once,
    a_user_of_another_municipality_can_neither_see_nor_act_on_an_application,
    every_organisation_of_a_tier_three_chain_sees_the_application,
    requests_without_a_token_are_unauthenticated,
    a_registered_deputy_decides_for_the_manager_who_reviews_it_afterwards,
    a_return_goes_to_an_earlier_step_or_back_to_the_applicant,
    a_decided_instance_is_corrected_by_a_new_linked_instance,
    an_instance_not_yet_decided_cannot_be_corrected,
    an_event_is_refused_without_trace_for_a_signed_out_token_or_an_outsider,
);

mod races {
    use super::*;

    crate::on_both_backends!(
        multi_thread:
        fifty_simultaneous_approvals_of_one_version_have_exactly_one_winner,
        the_same_race_has_one_winner_with_two_http_workers,
        fifty_simultaneous_decisions_without_a_version_permit_once,
    );
}
