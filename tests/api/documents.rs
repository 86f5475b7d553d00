//! Documents the municipality files: the threshold test (しきい値判断) of a PIA file, the
//! re-assessment warning on the decision screen, and the significant-change gate (重要な変更).

use serde_json::{json, Value};

use crate::helpers::{
    application_fields, assert_api_error, spawn_app, Backend, Cast, Person, TestApp, KOKUHOREN,
    MEGURO,
};
use crate::ui::{page, Jar};

const PIA_FILE: &str = "国民健康保険関係情報ファイル";

fn threshold_path(format: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/api/v1/documents/threshold").unwrap();
    url.query_pairs_mut()
        .append_pair("municipality", MEGURO)
        .append_pair("pia_file", PIA_FILE);
    if !format.is_empty() {
        url.query_pairs_mut().append_pair("format", format);
    }
    format!("{}?{}", url.path(), url.query().unwrap())
}

fn inputs(own_staff: &str, version: Option<i64>) -> Value {
    json!({
        "municipality_id": MEGURO,
        "pia_file": PIA_FILE,
        "people_bracket": "from_100000_to_299999",
        "own_staff_bracket": own_staff,
        "counted_on": "2026-04-01",
        "version": version,
    })
}

async fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.put_json_with_token(path, token, body).await
}

pub(crate) async fn put_ok(app: &TestApp, path: &str, token: &str, body: &Value) -> Value {
    let response = put(app, path, token, body).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body} answered {answer}");
    answer
}

/// Files a tier-2 application under 東京都国保連 whose subcontractor has `bracket` handlers.
async fn apply_with_bracket(app: &TestApp, cast: &Cast, bracket: &str) -> Value {
    let vendor = app.new_vendor(KOKUHOREN).await;
    let mut fields = application_fields("株式会社テスト");
    fields["handler_bracket"] = json!(bracket);
    let body = json!({
        "contractor_id": vendor,
        "parent_node_ids": [cast.tier1],
        "fields": fields,
    });
    let response = app
        .post_json_with_token("/api/v1/applications", &cast.kokuhoren.token, &body)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "application filed: {answer}");
    answer
}

async fn checklist(app: &TestApp, application: &Value, token: &str) -> Value {
    let path = format!(
        "/api/v1/applications/{}/targets/{}/checklist",
        application["id"].as_str().unwrap(),
        application["targets"][0]["id"].as_str().unwrap()
    );
    app.get_json(&path, token).await
}

fn warning_codes(checklist: &Value) -> Vec<&str> {
    checklist["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect()
}

async fn the_threshold_test_counts_every_contractor_at_its_brackets_lower_bound(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let officer = &cast.officer.token;

    // Before the municipality records its inputs: the handlers along the chain, no result.
    let test = app.get_json(&threshold_path(""), officer).await;
    assert_eq!(test["result"], Value::Null);
    assert_eq!(
        test["missing"],
        json!(["people_bracket", "own_staff_bracket"])
    );
    // 東京都国保連 (the item's 10人以上50人未満) + 国保中央会 (10人以上50人未満).
    assert_eq!(test["handlers"]["lower_bound"], 20);

    let recorded = put_ok(
        &app,
        "/api/v1/documents/pia-files",
        officer,
        &inputs("from_100_to_499", None),
    )
    .await;
    assert_eq!(recorded["version"], 1);
    let test = app.get_json(&threshold_path(""), officer).await;
    assert_eq!(test["handlers"]["lower_bound"], 120);
    assert_eq!(test["handlers"]["answer"], "500人未満");
    assert_eq!(test["handlers"]["contractors"].as_array().unwrap().len(), 2);
    assert!(test["handlers"]["basis"]["ja"]
        .as_str()
        .unwrap()
        .contains("下限値"));
    assert_eq!(test["serious_incident"]["answer"], "発生なし");
    assert_eq!(test["result"]["assessment"], "basic_and_key_items");
    assert_eq!(
        test["result"]["label"]["ja"],
        "基礎項目評価及び重点項目評価の実施が義務付けられる"
    );

    // A serious incident in the last year makes it 全項目 (recomputed on the next request).
    let yesterday = (app.state.clock.today_jst() - chrono::Days::new(1)).to_string();
    put_ok(
        &app,
        "/api/v1/documents/settings",
        officer,
        &json!({ "municipality_id": MEGURO, "last_serious_incident_on": yesterday }),
    )
    .await;
    let test = app.get_json(&threshold_path(""), officer).await;
    assert_eq!(test["serious_incident"]["within_last_year"], true);
    assert_eq!(test["result"]["assessment"], "basic_and_full");

    // The print view, beside the PIA section's.
    let html = app.get_with_token(&threshold_path("html"), officer).await;
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = html.text().await.unwrap();
    assert!(html.contains("[ 500人未満 ] (下限値 120人)"), "{html}");
    assert!(html.contains("基礎項目評価及び全項目評価の実施が義務付けられる"));
    assert!(html.contains("東京都国民健康保険団体連合会"));
}

async fn only_the_municipalitys_own_staff_read_and_record_the_threshold_inputs(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    let path = "/api/v1/documents/pia-files";
    put_ok(
        &app,
        path,
        &cast.officer.token,
        &inputs("from_10_to_49", None),
    )
    .await;

    // A contractor or another municipality: as if nothing existed.
    for token in [&cast.kokuhoren.token, &cast.outsider.token] {
        let hidden = app.get_with_token(&threshold_path(""), token).await;
        assert_api_error(hidden, 404, "not_found").await;
        let listed = app
            .get_with_token(&format!("{path}?municipality={MEGURO}"), token)
            .await;
        assert_api_error(listed, 404, "not_found").await;
        let write = put(&app, path, token, &inputs("from_1000", None)).await;
        assert_api_error(write, 404, "not_found").await;
    }
    // The auditor reads but does not change.
    let test = app.get_json(&threshold_path(""), &auditor.token).await;
    assert_eq!(test["handlers"]["lower_bound"], 30);
    let write = put(&app, path, &auditor.token, &inputs("from_1000", None)).await;
    assert_api_error(write, 403, "forbidden").await;

    // Bad input names the field and changes nothing; a stale version is refused.
    let mut future = inputs("from_1000", Some(1));
    future["counted_on"] = json!("2999-04-01");
    let refused = put(&app, path, &cast.officer.token, &future).await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "counted_on");
    let stale = put(
        &app,
        path,
        &cast.officer.token,
        &inputs("from_1000", Some(7)),
    )
    .await;
    assert_api_error(stale, 409, "stale_version").await;
    let listed = app
        .get_json(&format!("{path}?municipality={MEGURO}"), &auditor.token)
        .await;
    assert_eq!(listed[0]["own_staff_bracket"], "from_10_to_49");
    assert_eq!(listed[0]["version"], 1);
    let changed = put_ok(
        &app,
        path,
        &cast.officer.token,
        &inputs("from_1000", Some(1)),
    )
    .await;
    assert_eq!(changed["version"], 2);
}

async fn a_pending_subcontract_that_takes_the_handlers_to_500_warns_of_a_reassessment(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    // 100 own staff + 10 + 10 along the chain = 120.
    put_ok(
        &app,
        "/api/v1/documents/pia-files",
        &cast.officer.token,
        &inputs("from_100_to_499", None),
    )
    .await;

    let small = apply_with_bracket(&app, &cast, "from_100_to_499").await;
    let list = checklist(&app, &small, &cast.officer.token).await;
    assert!(
        !warning_codes(&list).contains(&"reassessment_required"),
        "120 + 100 stays under 500: {list}"
    );

    let big = apply_with_bracket(&app, &cast, "from_500_to_999").await;
    let list = checklist(&app, &big, &cast.officer.token).await;
    let warning = list["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "reassessment_required")
        .unwrap_or_else(|| panic!("a re-assessment warning: {list}"));
    assert_eq!(warning["detail"]["handlers_before"], 120);
    assert_eq!(warning["detail"]["handlers_after"], 620);
    assert_eq!(warning["detail"]["assessment_after"], "basic_and_full");
    assert!(warning["message"]["ja"]
        .as_str()
        .unwrap()
        .contains("しきい値判断の再実施"));
    // The applicant sees its checklist, not the municipality's handler count.
    let theirs = checklist(&app, &big, &cast.kokuhoren.token).await;
    assert!(!warning_codes(&theirs).contains(&"reassessment_required"));
    // The decision screen shows it.
    let mut jar = Jar::with_session(&cast.officer.token);
    let id = big["id"].as_str().unwrap();
    let html = page(jar.get(&app, &format!("/applications/{id}")).await, 200).await;
    assert!(html.contains("しきい値判断の再実施"), "{html}");

    // A pending application is not counted yet: the test still reads 120.
    let test = app.get_json(&threshold_path(""), &cast.officer.token).await;
    assert_eq!(test["handlers"]["lower_bound"], 120);
}

async fn act(app: &TestApp, token: &str, application: &str, event: &str) -> reqwest::Response {
    let path = format!("/api/v1/applications/{application}/events");
    app.post_json_with_token(&path, token, &json!({ "event": event }))
        .await
}

pub(crate) async fn act_ok(app: &TestApp, token: &str, application: &str, event: &str) -> Value {
    let response = act(app, token, application, event).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{event} answered {answer}");
    answer
}

/// With 目黒区's own 100–499 staff recorded, a tier-2 application for 500–999 handlers (120 +
/// 500: the handlers reach 500, a significant change) submitted and approved by the officer and
/// the chief: it waits for the manager.
pub(crate) async fn at_decision_reaching_500(app: &TestApp, cast: &Cast) -> Value {
    let big = apply_with_bracket(app, cast, "from_500_to_999").await;
    let id = big["id"].as_str().unwrap();
    act_ok(app, &cast.kokuhoren.token, id, "submit").await;
    for who in [&cast.officer, &cast.chief] {
        act_ok(app, &who.token, id, "approve").await;
    }
    big
}

/// The file's threshold inputs, recorded by the officer: 100–499 of its own staff.
pub(crate) async fn record_inputs(app: &TestApp, cast: &Cast) {
    put_ok(
        app,
        "/api/v1/documents/pia-files",
        &cast.officer.token,
        &inputs("from_100_to_499", None),
    )
    .await;
}

/// The app and its cast, 目黒区's auditor, and the file's threshold inputs recorded.
async fn with_inputs_and_auditor(backend: Backend) -> (TestApp, Cast, Person) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    record_inputs(&app, &cast).await;
    (app, cast, auditor)
}

async fn a_significant_change_is_refused_until_its_assessment_is_recorded_in_advance(
    backend: Backend,
) {
    let (app, cast, auditor) = with_inputs_and_auditor(backend).await;
    let officer = &cast.officer.token;
    let settings = app
        .get_json(
            &format!("/api/v1/documents/settings?municipality={MEGURO}"),
            &auditor.token,
        )
        .await;
    assert_eq!(
        settings["significant_change_items"],
        json!(["cloud_provider_added", "handlers_reach_500"]),
        "the default set"
    );

    let big = at_decision_reaching_500(&app, &cast).await;
    let id = big["id"].as_str().unwrap();
    let node = big["targets"][0]["node_id"].as_str().unwrap();
    let instance = big["targets"][0]["instance_id"].as_str().unwrap();
    let before = app.footprint(instance).await;
    let refused = act(&app, &cast.manager.token, id, "approve").await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let unmet = error["details"]["unmet"].as_array().unwrap();
    assert_eq!(unmet.len(), 1, "only the assessment is missing: {error}");
    assert_eq!(unmet[0]["code"], "significant_change_not_assessed");
    assert_eq!(
        unmet[0]["guard"], "requirements_met",
        "in the requirements' shape"
    );
    assert_eq!(unmet[0]["detail"]["item"], "handlers_reach_500");
    assert!(unmet[0]["message"]["ja"].as_str().unwrap().contains("事前"));
    assert_eq!(
        app.footprint(instance).await,
        before,
        "a refusal writes nothing"
    );
    let list = checklist(&app, &big, officer).await;
    assert!(list["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["code"] == "significant_change_not_assessed"));

    // Only the municipality's writers record it; bad input changes nothing.
    let body = json!({
        "node_id": node,
        "assessed_on": app.state.clock.today_jst(),
        "summary": "取扱者数が500人以上となるため、全項目評価を実施し第三者点検を受けた。",
    });
    let path = "/api/v1/documents/assessments";
    let hidden = app
        .post_json_with_token(path, &cast.kokuhoren.token, &body)
        .await;
    assert_api_error(hidden, 404, "not_found").await;
    let hidden = app
        .post_json_with_token(path, &cast.outsider.token, &body)
        .await;
    assert_api_error(hidden, 404, "not_found").await;
    let read_only = app.post_json_with_token(path, &auditor.token, &body).await;
    assert_api_error(read_only, 403, "forbidden").await;
    let mut blank = body.clone();
    blank["summary"] = json!(" ");
    let invalid = app.post_json_with_token(path, officer, &blank).await;
    let invalid = assert_api_error(invalid, 422, "validation_failed").await;
    assert_eq!(invalid["details"][0]["field"], "summary");
    assert_eq!(app.footprint(instance).await, before);

    let recorded = app.post_json_with_token(path, officer, &body).await;
    assert_eq!(recorded.status(), 201);
    let recorded: Value = recorded.json().await.unwrap();
    assert_eq!(recorded["items"], json!(["handlers_reach_500"]));
    // Audited in the permission's own trail, in the same transaction as the record.
    let trail = app.audit_rows(instance).await;
    let last = trail.last().unwrap();
    assert_eq!(last.event, "record_assessment");
    assert_eq!(last.actor_id, cast.officer.id);
    assert_eq!(last.seq, recorded["audit_seq"].as_i64().unwrap());
    assert_eq!(last.from_state.as_deref(), Some("decision"));
    assert_eq!(last.to_state, "decision");
    let details: Value = serde_json::from_str(&last.details).unwrap();
    assert_eq!(details["timing"], "事前");
    assert_eq!(details["assessment_id"], recorded["id"]);
    assert!(itaku::services::audit::verify(&app.db)
        .await
        .unwrap()
        .is_clean());

    // A kind made significant after the assessment needs an assessment of its own.
    put_ok(
        &app,
        "/api/v1/documents/settings",
        officer,
        &json!({ "municipality_id": MEGURO, "last_serious_incident_on": null,
                 "significant_change_items": ["new_subcontractor", "handlers_reach_500"] }),
    )
    .await;
    let refused = act(&app, &cast.manager.token, id, "approve").await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let unmet = error["details"]["unmet"].as_array().unwrap();
    assert_eq!(unmet.len(), 1, "{error}");
    assert_eq!(unmet[0]["detail"]["item"], "new_subcontractor");
    let again = app.post_json_with_token(path, officer, &body).await;
    assert_eq!(again.status(), 201);

    let permitted = act_ok(&app, &cast.manager.token, id, "approve").await;
    assert_eq!(permitted["application"]["targets"][0]["state"], "permitted");
    let mut jar = Jar::with_session(officer);
    let html = page(jar.get(&app, &format!("/applications/{id}")).await, 200).await;
    assert!(
        html.contains("特定個人情報保護評価の実施を記録"),
        "the timeline names it"
    );
    let listed = app
        .get_json(&format!("{path}?municipality={MEGURO}"), &auditor.token)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(
        listed[0]["items"],
        json!(["new_subcontractor", "handlers_reach_500"]),
        "newest first"
    );
    let hidden = app
        .get_with_token(
            &format!("{path}?municipality={MEGURO}"),
            &cast.kokuhoren.token,
        )
        .await;
    assert_api_error(hidden, 404, "not_found").await;
}

async fn which_changes_are_significant_is_each_municipalitys_setting(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let officer = &cast.officer.token;
    let path = "/api/v1/documents/settings";
    // Every new subcontractor counts for this municipality.
    let set = put_ok(
        &app,
        path,
        officer,
        &json!({
            "municipality_id": MEGURO,
            "last_serious_incident_on": null,
            "significant_change_items": ["new_subcontractor"],
        }),
    )
    .await;
    assert_eq!(
        set["significant_change_items"],
        json!(["new_subcontractor"])
    );
    let small = apply_with_bracket(&app, &cast, "under_10").await;
    let list = checklist(&app, &small, officer).await;
    let codes: Vec<&str> = list["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["significant_change_not_assessed"]);
    // The applicant does not see the municipality's own reasons.
    let theirs = checklist(&app, &small, &cast.kokuhoren.token).await;
    assert!(theirs["unmet"].as_array().unwrap().is_empty(), "{theirs}");

    // An empty set switches the gate off; an unknown kind is refused and changes nothing.
    let unknown = put(
        &app,
        path,
        officer,
        &json!({ "municipality_id": MEGURO, "last_serious_incident_on": null,
                 "significant_change_items": ["anything"], "version": 1 }),
    )
    .await;
    assert_eq!(unknown.status().as_u16() / 100, 4);
    let off = put_ok(
        &app,
        path,
        officer,
        &json!({ "municipality_id": MEGURO, "last_serious_incident_on": null,
                 "significant_change_items": [], "version": 1 }),
    )
    .await;
    assert_eq!(off["version"], 2);
    let list = checklist(&app, &small, officer).await;
    assert!(list["unmet"].as_array().unwrap().is_empty(), "{list}");
    // Nothing to assess now: recording one is refused.
    let refused = app
        .post_json_with_token(
            "/api/v1/documents/assessments",
            officer,
            &json!({ "node_id": small["targets"][0]["node_id"], "assessed_on": "2026-01-01",
                     "summary": "評価済み" }),
        )
        .await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "node_id");
}

async fn an_assessment_recorded_by_mistake_is_withdrawn_and_the_permission_is_blocked_again(
    backend: Backend,
) {
    let (app, cast, auditor) = with_inputs_and_auditor(backend).await;
    let officer = &cast.officer.token;
    let big = at_decision_reaching_500(&app, &cast).await;
    let id = big["id"].as_str().unwrap();
    let instance = big["targets"][0]["instance_id"].as_str().unwrap();
    let body = json!({
        "node_id": big["targets"][0]["node_id"],
        "assessed_on": app.state.clock.today_jst(),
        "summary": "別の再委託の評価を誤って記録した。",
    });
    let recorded = app
        .post_json_with_token("/api/v1/documents/assessments", officer, &body)
        .await;
    assert_eq!(recorded.status(), 201);
    let recorded: Value = recorded.json().await.unwrap();
    let path = format!(
        "/api/v1/documents/assessments/{}/withdraw",
        recorded["id"].as_str().unwrap()
    );
    let reason = json!({ "reason": "別の申請の評価を誤って記録したため" });

    // Only the municipality's writers withdraw it; a blank reason changes nothing.
    let before = app.footprint(instance).await;
    for stranger in [&cast.kokuhoren.token, &cast.outsider.token] {
        let hidden = app.post_json_with_token(&path, stranger, &reason).await;
        assert_api_error(hidden, 404, "not_found").await;
    }
    let read_only = app
        .post_json_with_token(&path, &auditor.token, &reason)
        .await;
    assert_api_error(read_only, 403, "forbidden").await;
    let blank = app
        .post_json_with_token(&path, officer, &json!({ "reason": "  " }))
        .await;
    let blank = assert_api_error(blank, 422, "validation_failed").await;
    assert_eq!(blank["details"][0]["field"], "reason");
    assert_eq!(app.footprint(instance).await, before, "nothing written");

    let withdrawn = app.post_json_with_token(&path, officer, &reason).await;
    assert_eq!(withdrawn.status(), 200);
    let withdrawn: Value = withdrawn.json().await.unwrap();
    assert_eq!(withdrawn["withdrawal_reason"], reason["reason"]);
    assert_eq!(withdrawn["withdrawn_by"], cast.officer.id.as_str());
    assert!(withdrawn["withdrawn_at"].is_string());
    // Audited in the permission's own trail, in the same transaction as the row.
    let trail = app.audit_rows(instance).await;
    let last = trail.last().unwrap();
    assert_eq!(last.event, "withdraw_assessment");
    assert_eq!(
        last.seq,
        withdrawn["withdrawal_audit_seq"].as_i64().unwrap()
    );
    assert_eq!(last.comment.as_deref(), reason["reason"].as_str());
    assert!(itaku::services::audit::verify(&app.db)
        .await
        .unwrap()
        .is_clean());
    // Never deleted: the list keeps it, marked withdrawn.
    let listed = app
        .get_json(
            &format!("/api/v1/documents/assessments?municipality={MEGURO}"),
            &auditor.token,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["withdrawal_reason"], reason["reason"]);
    let again = app.post_json_with_token(&path, officer, &reason).await;
    assert_api_error(again, 409, "conflict").await;

    // The permission is blocked again, and the refusal says why.
    let refused = act(&app, &cast.manager.token, id, "approve").await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let unmet = error["details"]["unmet"].as_array().unwrap();
    assert_eq!(unmet.len(), 1, "{error}");
    assert_eq!(unmet[0]["code"], "significant_change_not_assessed");
    assert_eq!(
        unmet[0]["detail"]["withdrawn_assessment"]["id"],
        recorded["id"]
    );
    for lang in ["ja", "en"] {
        assert!(
            unmet[0]["message"][lang]
                .as_str()
                .unwrap()
                .contains("別の申請の評価を誤って記録したため"),
            "the withdrawal's reason in the refusal: {error}"
        );
    }

    // Recorded again, the permission goes through; after the decision nothing is withdrawn.
    let second = app
        .post_json_with_token("/api/v1/documents/assessments", officer, &body)
        .await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    act_ok(&app, &cast.manager.token, id, "approve").await;
    let late = app
        .post_json_with_token(
            &format!(
                "/api/v1/documents/assessments/{}/withdraw",
                second["id"].as_str().unwrap()
            ),
            officer,
            &reason,
        )
        .await;
    let late = assert_api_error(late, 409, "conflict").await;
    assert_eq!(late["details"][0]["field"], "id");
}

crate::on_both_backends!(
    an_assessment_recorded_by_mistake_is_withdrawn_and_the_permission_is_blocked_again,
    the_threshold_test_counts_every_contractor_at_its_brackets_lower_bound,
    only_the_municipalitys_own_staff_read_and_record_the_threshold_inputs,
    a_pending_subcontract_that_takes_the_handlers_to_500_warns_of_a_reassessment,
    a_significant_change_is_refused_until_its_assessment_is_recorded_in_advance,
    which_changes_are_significant_is_each_municipalitys_setting,
);
