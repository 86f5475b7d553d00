//! The chains over HTTP: building and permitting a three-tier chain, refusals with the complete
//! list of unmet requirements, the cascade when evidence expires, joint applications decided
//! by each municipality alone, evidence files, and individual numbers kept out.

use itaku::services::evidence;
use itaku::workflow::Now;
use serde_json::{json, Value};

use crate::helpers::{
    application_fields, assert_api_error, day, item_body, spawn_app, unmet_codes, Backend, Cast,
    TestApp, CHUOKAI, KOKUHOREN, MEGURO, SHINJUKU,
};

/// Fires an application event expecting 200.
async fn act(app: &TestApp, token: &str, application: &str, body: Value) -> Value {
    let path = format!("/api/v1/applications/{application}/events");
    let response = app.post_json_with_token(&path, token, &body).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body} answered {answer}");
    answer
}

async fn act_raw(app: &TestApp, token: &str, application: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/applications/{application}/events");
    app.post_json_with_token(&path, token, &body).await
}

/// Runs 目黒区's approval route (officer, chief, manager) on the application.
async fn decide(app: &TestApp, cast: &Cast, application: &str) -> Value {
    let mut last = Value::Null;
    for who in [&cast.officer, &cast.chief, &cast.manager] {
        last = act(app, &who.token, application, json!({ "event": "approve" })).await;
    }
    last
}

/// Cloud evidence of a provider hosting `service`, verified and valid until `until`.
async fn cloud_evidence(app: &TestApp, org: &str, service: &str, until: chrono::NaiveDate) {
    app.insert_evidence(
        org,
        "ismap",
        json!({ "service_name": service }),
        until,
        true,
    )
    .await;
    app.insert_evidence(
        org,
        "iso27001",
        json!({ "covered_services": [service] }),
        until,
        true,
    )
    .await;
    app.insert_evidence(
        org,
        "iso27017",
        json!({ "covered_services": [service] }),
        until,
        true,
    )
    .await;
    app.insert_evidence(
        org,
        "iso27018",
        json!({ "covered_services": [service] }),
        until,
        true,
    )
    .await;
    app.insert_evidence(
        org,
        "domestic_storage",
        json!({ "service_name": service }),
        until,
        true,
    )
    .await;
}

async fn a_three_tier_chain_is_built_and_permitted_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    // Tier 2 is in force (established); 国保中央会 applies for the cloud provider at tier 3.
    app.create_organisation_of_kind("cloud", "cloud_provider", "クラウド事業者株式会社")
        .await;
    app.give_evidence("cloud", CHUOKAI, None).await;
    let mut fields = application_fields("クラウド事業者株式会社");
    fields["hosts_environment"] = json!(true);
    fields["service_name"] = json!("Example Cloud");
    let body =
        json!({ "contractor_id": "cloud", "parent_node_ids": [cast.tier2], "fields": fields });
    let response = app
        .post_json_with_token("/api/v1/applications", &cast.chuokai.token, &body)
        .await;
    assert_eq!(response.status(), 201);
    let filed: Value = response.json().await.unwrap();
    let id = filed["id"].as_str().unwrap().to_owned();
    assert!(
        filed["number"]
            .as_str()
            .unwrap()
            .ends_with("年度-再委-0001"),
        "{}",
        filed["number"]
    );
    let node = filed["targets"][0]["node_id"].as_str().unwrap().to_owned();

    act(&app, &cast.chuokai.token, &id, json!({ "event": "submit" })).await;
    // The municipality cannot act before 東京都国保連 endorses it (進達).
    let early = act_raw(
        &app,
        &cast.officer.token,
        &id,
        json!({ "event": "approve" }),
    )
    .await;
    assert_eq!(
        early.status().as_u16() / 100,
        4,
        "approve before endorsement refused"
    );
    let endorsed = act(
        &app,
        &cast.kokuhoren.token,
        &id,
        json!({ "event": "endorse" }),
    )
    .await;
    assert_eq!(endorsed["application"]["targets"][0]["state"], "decision");

    // The cloud node is not classified and has no cloud evidence yet: the decision lists it all.
    for who in [&cast.officer, &cast.chief] {
        act(&app, &who.token, &id, json!({ "event": "approve" })).await;
    }
    let refused = act_raw(
        &app,
        &cast.manager.token,
        &id,
        json!({ "event": "approve" }),
    )
    .await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let unmet = error["details"]["unmet"].as_array().unwrap();
    assert!(
        unmet
            .iter()
            .any(|u| u["code"] == "cloud_classification_required"),
        "{error}"
    );

    // 目黒区 classifies it as handling data; the provider's evidence and the parent's shared
    // responsibility statement are recorded.
    let classified = app
        .post_json_with_token(
            &format!("/api/v1/nodes/{node}/classification"),
            &cast.officer.token,
            &json!({ "classification": "handles_data" }),
        )
        .await;
    assert_eq!(classified.status(), 200);
    let refused = act_raw(
        &app,
        &cast.manager.token,
        &id,
        json!({ "event": "approve" }),
    )
    .await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let requirements: Vec<&str> = error["details"]["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["detail"]["requirement"].as_str())
        .collect();
    for r in [
        "ismap",
        "cloud_security",
        "iso27018",
        "domestic_storage",
        "shared_responsibility",
    ] {
        assert!(
            requirements.contains(&r),
            "{r} missing from {requirements:?}"
        );
    }
    cloud_evidence(&app, "cloud", "Example Cloud", day(2099, 3, 31)).await;
    app.insert_evidence(
        CHUOKAI,
        "shared_responsibility",
        json!({ "service_name": "Example Cloud" }),
        day(2099, 3, 31),
        true,
    )
    .await;
    // A cloud provider handling the data is a significant change (重要な変更) by default: the
    // municipality records its assessment first (事前).
    let refused = act_raw(
        &app,
        &cast.manager.token,
        &id,
        json!({ "event": "approve" }),
    )
    .await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    assert_eq!(unmet_codes(&error), ["significant_change_not_assessed"]);
    let assessed = app
        .post_json_with_token(
            "/api/v1/documents/assessments",
            &cast.officer.token,
            &json!({ "node_id": node, "assessed_on": app.state.clock.today_jst(),
                     "summary": "クラウドサービスの利用開始に伴い、評価を実施した。" }),
        )
        .await;
    assert_eq!(assessed.status(), 201);
    let permitted = act(
        &app,
        &cast.manager.token,
        &id,
        json!({ "event": "approve" }),
    )
    .await;
    assert_eq!(permitted["application"]["targets"][0]["state"], "permitted");

    // Every organisation of the chain sees its node and that its ancestors are permitted.
    let cloud_user = app.person("cloud_staff", &[("cloud", "contractor")]).await;
    let tree = app
        .get_json(
            &format!("/api/v1/items/{}/tree", cast.item),
            &cloud_user.token,
        )
        .await;
    let t1 = &tree["nodes"][0];
    assert_eq!(t1["contractor_id"], KOKUHOREN);
    assert_eq!(t1["access"], "status");
    assert!(
        t1.get("detail").is_none(),
        "an ancestor shows its status only"
    );
    let t2 = &t1["children"][0];
    assert_eq!(
        (t2["permission_state"].as_str(), t2["access"].as_str()),
        (Some("permitted"), Some("status"))
    );
    let t3 = &t2["children"][0];
    assert_eq!(t3["permission_state"], "permitted");
    assert_eq!(t3["access"], "full");
}

async fn a_tier_three_application_is_refused_while_tier_two_is_not_permitted(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    // 国保連 applies for a new tier-2 node; its contractor cannot subcontract before permission.
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    let pending_node = filed["targets"][0]["node_id"].as_str().unwrap();
    let vendor_user = app
        .person("vendor_staff", &[(vendor.as_str(), "contractor")])
        .await;
    let sub = app.new_vendor(&vendor).await;
    let body = json!({
        "contractor_id": sub,
        "parent_node_ids": [pending_node],
        "fields": application_fields("再々委託先"),
    });
    let response = app
        .post_json_with_token("/api/v1/applications", &vendor_user.token, &body)
        .await;
    let error = assert_api_error(response, 422, "validation_failed").await;
    assert_eq!(error["details"][0]["field"], "parent_node_ids[0]");
    assert!(
        error["details"][0]["reason"]["en"]
            .as_str()
            .unwrap()
            .contains("not in force"),
        "{error}"
    );
}

async fn a_refused_permission_lists_every_missing_and_expired_requirement(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    app.create_organisation_of_kind("thin", "vendor", "証跡不足株式会社")
        .await;
    // Only an NDA, expired; nothing else.
    app.insert_evidence(
        "thin",
        "nda",
        json!({ "counterparty_organisation_id": KOKUHOREN }),
        day(2021, 3, 31),
        true,
    )
    .await;
    let filed = app
        .file_application(&cast.kokuhoren.token, "thin", &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap();
    act(
        &app,
        &cast.kokuhoren.token,
        id,
        json!({ "event": "submit" }),
    )
    .await;
    for who in [&cast.officer, &cast.chief] {
        act(&app, &who.token, id, json!({ "event": "approve" })).await;
    }
    let refused = act_raw(&app, &cast.manager.token, id, json!({ "event": "approve" })).await;
    let error = assert_api_error(refused, 422, "transition_rejected").await;
    let mut found: Vec<(String, String)> = error["details"]["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["detail"]["requirement"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                u["detail"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("nda".to_owned(), "expired".to_owned()),
            ("safeguards".to_owned(), "missing".to_owned()),
            ("security_certification".to_owned(), "missing".to_owned()),
            ("structure_chart".to_owned(), "missing".to_owned()),
        ]
    );
    let nda = error["details"]["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["detail"]["requirement"] == "nda")
        .unwrap();
    assert_eq!(nda["detail"]["tier"], 2);
    assert!(
        nda["message"]["ja"]
            .as_str()
            .unwrap()
            .contains("2021-03-31"),
        "{nda}"
    );
    // The checklist shows the same, per requirement.
    let target = filed["targets"][0]["id"].as_str().unwrap();
    let list = app
        .get_json(
            &format!("/api/v1/applications/{id}/targets/{target}/checklist"),
            &cast.manager.token,
        )
        .await;
    assert_eq!(list["unmet"].as_array().unwrap().len(), 4, "{list}");
}

async fn evidence_expiry_suspends_the_node_and_every_descendant(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    // A tier-3 vendor under 国保中央会, permitted; 国保中央会's 27001 expires later.
    let vendor = app.new_vendor(CHUOKAI).await;
    let filed = app
        .file_application(&cast.chuokai.token, &vendor, &[&cast.tier2])
        .await;
    let id = filed["id"].as_str().unwrap();
    act(&app, &cast.chuokai.token, id, json!({ "event": "submit" })).await;
    act(
        &app,
        &cast.kokuhoren.token,
        id,
        json!({ "event": "endorse" }),
    )
    .await;
    decide(&app, &cast, id).await;
    let node = filed["targets"][0]["node_id"].as_str().unwrap().to_owned();
    // The vendor also holds a Pマーク that lapses on 2030-03-31.
    app.insert_evidence(&vendor, "privacy_mark", json!({}), day(2030, 3, 31), true)
        .await;
    // Its 27001 is replaced by a Pマーク only: remove the long-lived 27001 by revoking it.
    let certs = app
        .get_json(
            &format!("/api/v1/evidence?organisation={vendor}&kind=iso27001"),
            &cast.officer.token,
        )
        .await;
    let cert = certs["items"][0]["id"].as_str().unwrap().to_owned();
    let revoked = app
        .post_json_with_token(
            &format!("/api/v1/evidence/{cert}/revoke"),
            &cast.officer.token,
            &json!({ "reason": "認証取消" }),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let revoked: Value = revoked.json().await.unwrap();
    assert_eq!(
        revoked["suspended_nodes"],
        json!([]),
        "the Pマーク still covers it"
    );

    // Time moves past the Pマーク's expiry: the sweep suspends the vendor's node.
    let later = day(2030, 4, 2);
    let now = Now {
        at: later.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        today: later,
    };
    let suspended = evidence::sweep(&app.db, &app.state.workflows, now)
        .await
        .unwrap();
    assert_eq!(suspended, [node]);
    let again = evidence::sweep(&app.db, &app.state.workflows, now)
        .await
        .unwrap();
    assert!(again.is_empty(), "each lapse is handled once");

    // An ancestor's suspension cascades: suspend 国保連's permitted tier-2 child (a fresh one)
    // and its own permitted child follows.
    let t2vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &t2vendor, &[&cast.tier1])
        .await;
    let t2app = filed["id"].as_str().unwrap().to_owned();
    let t2node = filed["targets"][0]["node_id"].as_str().unwrap().to_owned();
    act(
        &app,
        &cast.kokuhoren.token,
        &t2app,
        json!({ "event": "submit" }),
    )
    .await;
    decide(&app, &cast, &t2app).await;
    let t2user = app
        .person("t2_staff", &[(t2vendor.as_str(), "contractor")])
        .await;
    let t3vendor = app.new_vendor(&t2vendor).await;
    let filed = app
        .file_application(&t2user.token, &t3vendor, &[&t2node])
        .await;
    let t3app = filed["id"].as_str().unwrap().to_owned();
    let t3node = filed["targets"][0]["node_id"].as_str().unwrap().to_owned();
    act(&app, &t2user.token, &t3app, json!({ "event": "submit" })).await;
    act(
        &app,
        &cast.kokuhoren.token,
        &t3app,
        json!({ "event": "endorse" }),
    )
    .await;
    decide(&app, &cast, &t3app).await;
    let out = act(
        &app,
        &cast.manager.token,
        &t2app,
        json!({ "event": "suspend", "comment": "監査で不備" }),
    )
    .await;
    assert_eq!(out["cascaded"], json!([t3node.clone()]));
    let node = app
        .get_json(&format!("/api/v1/nodes/{t3node}"), &cast.officer.token)
        .await;
    assert_eq!(node["permission_state"], "suspended");
    let t3inst = filed["targets"][0]["instance_id"].as_str().unwrap();
    let trail = app
        .get_json(
            &format!("/api/v1/instances/{t3inst}/audit"),
            &cast.officer.token,
        )
        .await;
    let last = trail.as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["actor_id"].as_str()),
        (Some("cascade_suspend"), Some("system"))
    );
    // Reinstatement is explicit, by the manager.
    act(
        &app,
        &cast.manager.token,
        &t2app,
        json!({ "event": "reinstate", "comment": "是正済み" }),
    )
    .await;
    let node = app
        .get_json(&format!("/api/v1/nodes/{t3node}"), &cast.officer.token)
        .await;
    assert_eq!(
        node["permission_state"], "suspended",
        "descendants are not reinstated implicitly"
    );
}

async fn a_joint_application_is_decided_by_each_municipality_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let item = app
        .post_json_with_token(
            "/api/v1/items",
            &cast.outsider.token,
            &item_body(SHINJUKU, KOKUHOREN),
        )
        .await;
    assert_eq!(item.status(), 201);
    let item: Value = item.json().await.unwrap();
    let tree = app
        .get_json(
            &format!("/api/v1/items/{}/tree", item["id"].as_str().unwrap()),
            &cast.outsider.token,
        )
        .await;
    let shinjuku_tier1 = tree["nodes"][0]["id"].as_str().unwrap().to_owned();
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(
            &cast.kokuhoren.token,
            &vendor,
            &[&cast.tier1, &shinjuku_tier1],
        )
        .await;
    let id = filed["id"].as_str().unwrap().to_owned();
    assert_eq!(filed["progress"]["total"], 2);
    act(
        &app,
        &cast.kokuhoren.token,
        &id,
        json!({ "event": "submit" }),
    )
    .await;

    decide(&app, &cast, &id).await;
    act(
        &app,
        &cast.outsider.token,
        &id,
        json!({ "event": "reject", "comment": "体制が不十分" }),
    )
    .await;

    let seen = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.kokuhoren.token)
        .await;
    assert_eq!(seen["progress"]["permitted"], 1);
    assert_eq!(seen["progress"]["rejected"], 1);
    let meguro_view = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.officer.token)
        .await;
    let targets = meguro_view["targets"].as_array().unwrap();
    assert_eq!(
        targets.len(),
        1,
        "a municipality sees only its own decision"
    );
    assert_eq!(targets[0]["municipality_id"], MEGURO);
    assert_eq!(targets[0]["state"], "permitted");
    let shinjuku_view = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.outsider.token)
        .await;
    assert_eq!(shinjuku_view["targets"][0]["state"], "rejected");
    assert_eq!(shinjuku_view["targets"].as_array().unwrap().len(), 1);
}

async fn uploads_are_judged_by_content_and_size(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, itaku::clock::Clock::System, |s| {
        s.max_upload_mb = 1;
    })
    .await;
    let cast = Cast::create(&app).await;
    let created = app
        .post_json_with_token(
            "/api/v1/evidence",
            &cast.kokuhoren.token,
            &json!({
                "organisation_id": KOKUHOREN,
                "fields": {
                    "kind": "safeguards",
                    "organisational": "責任者を置く",
                    "personnel": "研修を行う",
                    "physical": "入退室管理",
                    "technical": "暗号化",
                }
            }),
        )
        .await;
    let status = created.status();
    let created: Value = created.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        app.client
            .post(app.url(&format!("/api/v1/evidence/{id}/files")))
            .bearer_auth(&cast.kokuhoren.token)
            .multipart(form)
            .send()
    };
    // A renamed executable.
    let elf = b"\x7fELF\x02\x01\x01\x00rest-of-binary".to_vec();
    assert_api_error(
        upload("certificate.pdf", elf).await.unwrap(),
        415,
        "unsupported_file_type",
    )
    .await;
    // Too large.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(1024 * 1024 + 10, b'a');
    assert_api_error(
        upload("big.pdf", big).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    // A path in the name is only a display name.
    let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n".to_vec();
    let ok = upload("../../etc/passwd.pdf", pdf.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let shown: Value = ok.json().await.unwrap();
    let file = &shown["files"][0];
    let name = file["filename"].as_str().unwrap();
    assert!(!name.contains('/') && !name.contains(".."), "{name}");
    assert_eq!(file["media_type"], "application/pdf");
    let sha = file["sha256"].as_str().unwrap();
    let download = app
        .get_with_token(
            &format!("/api/v1/evidence/{id}/files/{sha}"),
            &cast.kokuhoren.token,
        )
        .await;
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    assert_eq!(download.bytes().await.unwrap().to_vec(), pdf);
    // Another municipality's officer cannot see it.
    let hidden = app
        .get_with_token(
            &format!("/api/v1/evidence/{id}/files/{sha}"),
            &cast.outsider.token,
        )
        .await;
    assert_eq!(hidden.status(), 404);
}

/// An individual number: eleven digits and their check digit (the official formula:
/// 11 − Σ Pn×Qn mod 11, Qn = n+1 for n ≤ 6 and n−5 above, counting from the right; 0 when the
/// remainder is 0 or 1).
fn individual_number(base: &str) -> String {
    let digits: Vec<u32> = base.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, p)| {
            let n = i as u32 + 1;
            p * if n <= 6 { n + 1 } else { n - 5 }
        })
        .sum();
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    format!("{base}{check}")
}

async fn an_individual_number_is_refused_in_any_text_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let mut fields = application_fields("株式会社テスト");
    // A valid individual number (check digit per the official formula) inside free text.
    let number = individual_number("12345678901");
    fields["reason"] = json!(format!("対象者 {number} の処理のため"));
    let body =
        json!({ "contractor_id": vendor, "parent_node_ids": [cast.tier1], "fields": fields });
    let response = app
        .post_json_with_token("/api/v1/applications", &cast.kokuhoren.token, &body)
        .await;
    let error = assert_api_error(response, 422, "validation_failed").await;
    assert_eq!(error["details"][0]["field"], "fields.reason");
    assert!(
        !error.to_string().contains(&number),
        "the number is never echoed"
    );
    let list = app
        .get_json("/api/v1/applications", &cast.kokuhoren.token)
        .await;
    assert_eq!(list["total"], 0, "nothing was stored");
    // Nor in a comment on an event, through either API.
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    let comment = json!({ "event": "withdraw", "comment": format!("{number} の件") });
    let id = filed["id"].as_str().unwrap();
    let response = act_raw(&app, &cast.kokuhoren.token, id, comment.clone()).await;
    assert_api_error(response, 422, "validation_failed").await;
    let instance = filed["targets"][0]["instance_id"].as_str().unwrap();
    let response = app.fire(&cast.kokuhoren.token, instance, comment).await;
    assert_api_error(response, 422, "validation_failed").await;
    assert_eq!(
        app.footprint(instance).await.audit_records,
        1,
        "only its creation"
    );
}

/// A subcontract instance fired through the generic instance API takes the domain path: its
/// guards get the chain's facts (without them `submit` would be refused), and the application
/// and its node follow.
async fn a_subcontract_instance_fired_through_the_instance_api_takes_the_domain_path(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    let instance = filed["targets"][0]["instance_id"].as_str().unwrap();
    let fired = app
        .fire_ok(
            &cast.kokuhoren.token,
            instance,
            json!({ "event": "submit", "version": 1 }),
        )
        .await;
    assert_ne!(fired["state"], "draft", "{fired}");
    assert!(
        fired["context"].get("facts").is_none(),
        "the facts are never shown"
    );
    let id = filed["id"].as_str().unwrap();
    let read = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.kokuhoren.token)
        .await;
    assert_eq!(read["targets"][0]["state"], fired["state"], "{read}");
    assert_eq!(app.footprint(instance).await.audit_records, 2);
}

async fn each_role_reaches_only_what_it_may(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let filed = {
        let vendor = app.new_vendor(KOKUHOREN).await;
        app.file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
            .await
    };
    let app_id = filed["id"].as_str().unwrap();
    let target = filed["targets"][0]["id"].as_str().unwrap();
    let vendor = filed["contractor_id"].as_str().unwrap().to_owned();
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    let evidence_of = |org: String| {
        let app = &app;
        let token = cast.officer.token.clone();
        async move {
            let list = app
                .get_json(&format!("/api/v1/evidence?organisation={org}"), &token)
                .await;
            list["items"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let (e1, e2, e3) = (
        evidence_of(KOKUHOREN.to_owned()).await,
        evidence_of(CHUOKAI.to_owned()).await,
        evidence_of(vendor).await,
    );
    let paths = [
        format!("/api/v1/items/{}", cast.item),
        format!("/api/v1/items/{}/tree", cast.item),
        format!("/api/v1/nodes/{}", cast.tier1),
        format!("/api/v1/applications/{app_id}"),
        format!("/api/v1/applications/{app_id}/targets/{target}/checklist"),
        format!("/api/v1/evidence/{e1}"),
        format!("/api/v1/evidence/{e2}"),
        format!("/api/v1/evidence/{e3}"),
    ];
    // (who, expected status per path): a contractor sees its own organisation's evidence and
    // that of the nodes directly below it, never its parent's.
    let matrix = [
        ("officer", &cast.officer.token, [200; 8]),
        ("manager", &cast.manager.token, [200; 8]),
        ("auditor", &auditor.token, [200; 8]),
        ("tier-1 applicant", &cast.kokuhoren.token, [200; 8]),
        (
            "tier-2 contractor",
            &cast.chuokai.token,
            [200, 200, 200, 404, 404, 404, 200, 404],
        ),
        ("other municipality", &cast.outsider.token, [404; 8]),
    ];
    for (who, token, expected) in matrix {
        for (path, want) in paths.iter().zip(expected) {
            let got = app.get_with_token(path, token).await.status().as_u16();
            assert_eq!(got, want, "{who} GET {path}");
        }
    }
    // Verification is a municipal writer's: an auditor and a contractor are refused, an
    // outsider does not even find it.
    let verify = format!("/api/v1/evidence/{e3}/verify");
    for (token, status, code) in [
        (&auditor.token, 403, "forbidden"),
        (&cast.kokuhoren.token, 403, "forbidden"),
        (&cast.outsider.token, 404, "not_found"),
    ] {
        let response = app.post_json_with_token(&verify, token, &json!({})).await;
        assert_api_error(response, status, code).await;
    }
    // An auditor reads but never decides.
    let response = app
        .post_json_with_token(
            &format!("/api/v1/applications/{app_id}/events"),
            &auditor.token,
            &json!({ "event": "reject", "comment": "x" }),
        )
        .await;
    assert_eq!(response.status().as_u16() / 100, 4);
    // Writes: only a municipal writer registers items; an auditor cannot.
    let forbidden = app
        .post_json_with_token(
            "/api/v1/items",
            &auditor.token,
            &item_body(MEGURO, KOKUHOREN),
        )
        .await;
    assert_api_error(forbidden, 403, "forbidden").await;
    let forbidden = app
        .post_json_with_token(
            "/api/v1/items",
            &cast.kokuhoren.token,
            &item_body(MEGURO, KOKUHOREN),
        )
        .await;
    assert_api_error(forbidden, 403, "forbidden").await;
    // Subcontract instances are started only through /applications.
    let direct = app
        .post_json_with_token(
            "/api/v1/instances",
            &cast.kokuhoren.token,
            &json!({ "workflow": "subcontract_permission", "context": {
                "applicant_org": KOKUHOREN, "root_consignor_org": MEGURO } }),
        )
        .await;
    assert_api_error(direct, 409, "managed_workflow").await;
}

/// The list is selected, filtered, counted and paged by the database: newest first, a page
/// at a time with the total of all, each filter applied to the targets the viewer may see, and
/// an intermediate tier sees what passes through its node.
async fn the_application_list_is_paged_filtered_and_scoped(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let list = |token: String, query: &'static str| {
        let app = &app;
        async move {
            app.get_json(&format!("/api/v1/applications{query}"), &token)
                .await
        }
    };
    let before = list(cast.officer.token.clone(), "").await["total"]
        .as_u64()
        .unwrap();
    let mut filed = Vec::new();
    for _ in 0..3 {
        let vendor = app.new_vendor(KOKUHOREN).await;
        let a = app
            .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
            .await;
        filed.push(a["id"].as_str().unwrap().to_owned());
    }
    act(
        &app,
        &cast.kokuhoren.token,
        &filed[2],
        json!({ "event": "submit" }),
    )
    .await;
    // A tier-3 application under 国保中央会's node, which 東京都国保連 endorses.
    let below = app.new_vendor(CHUOKAI).await;
    let tier3 = app
        .file_application(&cast.chuokai.token, &below, &[&cast.tier2])
        .await;
    let tier3 = tier3["id"].as_str().unwrap().to_owned();

    let first = list(cast.officer.token.clone(), "?per_page=2").await;
    assert_eq!(first["total"], before + 4);
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&first),
        [tier3.clone(), filed[2].clone()],
        "newest first"
    );
    let second = list(cast.officer.token.clone(), "?per_page=2&page=2").await;
    assert_eq!(ids(&second), [filed[1].clone(), filed[0].clone()]);

    let drafts = list(cast.officer.token.clone(), "?state=draft&per_page=200").await;
    let draft_ids = ids(&drafts);
    assert!(draft_ids.contains(&filed[0]) && draft_ids.contains(&tier3));
    assert!(!draft_ids.contains(&filed[2]), "submitted is not a draft");
    let tier3_only = list(cast.officer.token.clone(), "?tier=3").await;
    assert_eq!(ids(&tier3_only), std::slice::from_ref(&tier3));
    let of_chuokai = list(cast.officer.token.clone(), "?organisation=kokuho_chuokai").await;
    assert!(ids(&of_chuokai).contains(&tier3));
    assert!(!ids(&of_chuokai).contains(&filed[0]));

    // 国保中央会 sees its own application, not 東京都国保連's other subcontracts; 東京都国保連
    // sees the tier-3 one through its node; another municipality sees none of them.
    let chuokai = ids(&list(cast.chuokai.token.clone(), "?per_page=200").await);
    assert!(chuokai.contains(&tier3));
    assert!(filed.iter().all(|f| !chuokai.contains(f)), "{chuokai:?}");
    let kokuhoren = ids(&list(cast.kokuhoren.token.clone(), "?per_page=200").await);
    assert!(kokuhoren.contains(&tier3) && filed.iter().all(|f| kokuhoren.contains(f)));
    let outsider = list(cast.outsider.token.clone(), "").await;
    let outsider_ids = ids(&outsider);
    assert!(filed
        .iter()
        .chain([&tier3])
        .all(|f| !outsider_ids.contains(f)));
}

async fn the_openapi_document_describes_the_domain_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/organisations",
        "/api/v1/items/{id}/tree",
        "/api/v1/applications",
        "/api/v1/applications/{id}/events",
        "/api/v1/evidence/{id}/files",
        "/api/v1/documents/threshold",
        "/api/v1/documents/pia-files",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

async fn a_returned_application_is_corrected_and_resubmitted(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap();
    act(
        &app,
        &cast.kokuhoren.token,
        id,
        json!({ "event": "submit" }),
    )
    .await;
    let path = format!("/api/v1/applications/{id}");
    let mut fields = application_fields("株式会社テスト");
    fields["planned_amount"] = json!(9_000_000);
    // Not while it is under review.
    let early = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&cast.kokuhoren.token)
        .json(&json!({ "version": 1, "fields": fields }))
        .send()
        .await
        .unwrap();
    assert_api_error(early, 409, "event_not_applicable").await;
    act(
        &app,
        &cast.officer.token,
        id,
        json!({ "event": "return", "comment": "予定金額の根拠を示してください" }),
    )
    .await;
    let edited = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&cast.kokuhoren.token)
        .json(&json!({ "version": 1, "fields": fields }))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["fields"]["planned_amount"], 9_000_000);
    assert_eq!(edited["version"], 2);
    // A second edit from the stale version is refused.
    let stale = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&cast.kokuhoren.token)
        .json(&json!({ "version": 1, "fields": fields }))
        .send()
        .await
        .unwrap();
    assert_api_error(stale, 409, "stale_version").await;
    let instance = filed["targets"][0]["instance_id"].as_str().unwrap();
    let trail = app
        .get_json(
            &format!("/api/v1/instances/{instance}/audit"),
            &cast.kokuhoren.token,
        )
        .await;
    let last = trail.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "edit");
    assert_eq!(
        last["details"]["data"]["changed_fields"],
        json!(["planned_amount"])
    );
    let node = app
        .get_json(
            &format!(
                "/api/v1/nodes/{}",
                filed["targets"][0]["node_id"].as_str().unwrap()
            ),
            &cast.officer.token,
        )
        .await;
    assert_eq!(node["detail"]["planned_amount"], 9_000_000);
    act(
        &app,
        &cast.kokuhoren.token,
        id,
        json!({ "event": "submit" }),
    )
    .await;
}

async fn evidence_expiring_within_the_period_warns_and_is_left_to_the_staged_reminders(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    app.create_organisation_of_kind("short", "vendor", "短期証跡株式会社")
        .await;
    // Everything valid today, but the 27001 ends long before the node's period (2099).
    for kind in ["nda", "structure_chart", "safeguards"] {
        let fields = json!({ "counterparty_organisation_id": KOKUHOREN });
        app.insert_evidence("short", kind, fields, day(2099, 3, 31), true)
            .await;
    }
    let cert = app
        .insert_evidence("short", "iso27001", json!({}), day(2090, 3, 31), true)
        .await;
    let filed = app
        .file_application(&cast.kokuhoren.token, "short", &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap();
    let target = filed["targets"][0]["id"].as_str().unwrap();
    act(
        &app,
        &cast.kokuhoren.token,
        id,
        json!({ "event": "submit" }),
    )
    .await;
    let list = app
        .get_json(
            &format!("/api/v1/applications/{id}/targets/{target}/checklist"),
            &cast.officer.token,
        )
        .await;
    let warnings = list["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{list}");
    assert_eq!(warnings[0]["detail"]["evidence_id"], cert.as_str());
    decide(&app, &cast, id).await;
    let instance = filed["targets"][0]["instance_id"].as_str().unwrap();
    let reminders: Vec<_> = app
        .outbox_rows(instance)
        .await
        .into_iter()
        .filter(|r| r.template.as_deref() == Some("evidence_expiring"))
        .collect();
    // Not at the decision: the owner and the municipality are reminded 90, 30 and 7 days
    // before it expires (tests/api/obligations.rs).
    assert!(reminders.is_empty(), "{reminders:?}");
}

/// Races need a multi-threaded runtime.
mod races {
    use super::*;

    async fn application_numbers_stay_unique_under_concurrency(backend: Backend) {
        let app = spawn_app(backend).await;
        let cast = Cast::create(&app).await;
        let mut vendors = Vec::new();
        for _ in 0..8 {
            vendors.push(app.new_vendor(KOKUHOREN).await);
        }
        let filings = vendors.iter().map(|v| {
            let body = json!({
                "contractor_id": v,
                "parent_node_ids": [cast.tier1],
                "fields": application_fields("株式会社テスト"),
            });
            let app = &app;
            let token = cast.kokuhoren.token.clone();
            async move {
                let r = app
                    .post_json_with_token("/api/v1/applications", &token, &body)
                    .await;
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                v["number"].as_str().unwrap().to_owned()
            }
        });
        let mut numbers = futures_util::future::join_all(filings).await;
        numbers.sort();
        let suffixes: Vec<&str> = numbers.iter().map(|n| &n[n.len() - 4..]).collect();
        assert_eq!(
            suffixes,
            ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008"]
        );
    }

    crate::on_both_backends!(multi_thread: application_numbers_stay_unique_under_concurrency);
}

crate::on_both_backends!(
    a_subcontract_instance_fired_through_the_instance_api_takes_the_domain_path,
    a_three_tier_chain_is_built_and_permitted_in_order,
    a_tier_three_application_is_refused_while_tier_two_is_not_permitted,
    a_refused_permission_lists_every_missing_and_expired_requirement,
    evidence_expiry_suspends_the_node_and_every_descendant,
    a_joint_application_is_decided_by_each_municipality_alone,
    uploads_are_judged_by_content_and_size,
    an_individual_number_is_refused_in_any_text_field,
    each_role_reaches_only_what_it_may,
    the_application_list_is_paged_filtered_and_scoped,
    the_openapi_document_describes_the_domain_api,
    evidence_expiring_within_the_period_warns_and_is_left_to_the_staged_reminders,
    a_returned_application_is_corrected_and_resubmitted,
);

mod documents {
    use super::*;

    async fn the_pia_section_lists_each_item_with_its_permitted_subcontracts(backend: Backend) {
        let app = spawn_app(backend).await;
        let cast = Cast::create(&app).await;
        let path = "/api/v1/documents/pia?municipality=meguro&pia_file=%E5%9B%BD%E6%B0%91%E5%81%A5%E5%BA%B7%E4%BF%9D%E9%99%BA%E9%96%A2%E4%BF%82%E6%83%85%E5%A0%B1%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB";
        let section = app.get_json(path, &cast.officer.token).await;
        let item = &section["items"][0];
        assert_eq!(item["handlers"], "10人以上50人未満");
        assert_eq!(
            item["subcontracts"], true,
            "国保中央会 is permitted at tier 2"
        );
        assert!(item["contractor"]
            .as_str()
            .unwrap()
            .contains("に再委託する"));
        // Excel-ready CSV and XLSX, for the municipality's staff only.
        let csv = app
            .get_with_token(&format!("{path}&format=csv"), &cast.officer.token)
            .await;
        assert_eq!(csv.status(), 200);
        assert!(csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
        let bytes = csv.bytes().await.unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()));
        let xlsx = app
            .get_with_token(&format!("{path}&format=xlsx"), &cast.officer.token)
            .await;
        assert_eq!(xlsx.status(), 200);
        assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"));
        // The print view, streamed like the others, standalone and without script.
        let html = app
            .get_with_token(&format!("{path}&format=html"), &cast.officer.token)
            .await;
        assert_eq!(html.status(), 200);
        assert_eq!(
            html.headers()["content-security-policy"],
            "default-src 'none'; style-src 'unsafe-inline'"
        );
        let html = html.text().await.unwrap();
        assert!(html.contains("<th>④再委託の有無</th><td>[再委託する]</td>"));
        assert!(html.ends_with("</table></body></html>\n"));
        for token in [&cast.outsider.token, &cast.kokuhoren.token] {
            let hidden = app.get_with_token(path, token).await;
            assert_eq!(hidden.status(), 404);
        }
    }

    crate::on_both_backends!(the_pia_section_lists_each_item_with_its_permitted_subcontracts);
}
