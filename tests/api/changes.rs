//! The change history (変更箇所) and the committee submission (付議): golden files rendered
//! from the demo data, the CSV read as Excel reads it, the timing (事前 / 事後) of a significant
//! change, the marking of what changed since the last submission, authorisation and bad input.

use chrono::{DateTime, Utc};
use entity::{chain_node, committee_submission, consignment_item};
use itaku::clock::Clock;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::documents::{act_ok, put_ok};
use crate::helpers::{
    application_fields, assert_api_error, spawn_app, spawn_app_with_clock, Backend, Cast, TestApp,
    KOKUHOREN, MEGURO,
};
use crate::ui::{page, Jar};

const PIA_FILE: &str = "国民健康保険関係情報ファイル";

fn changes_path(municipality: &str, extra: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/api/v1/documents/changes").unwrap();
    url.query_pairs_mut()
        .append_pair("municipality", municipality)
        .append_pair("pia_file", PIA_FILE);
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    format!("{}?{}", url.path(), url.query().unwrap())
}

fn committee_path(node: &str, format: &str) -> String {
    format!("/api/v1/documents/committee?node={node}&format={format}")
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it):\n{actual}"
    );
}

async fn text(app: &TestApp, path: &str, token: &str) -> String {
    let response = app.get_with_token(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// The CSV as Excel reads it: a UTF-8 BOM, CRLF records, quoted cells.
fn excel_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with(b"\xef\xbb\xbf"), "a UTF-8 BOM");
    let body = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "every line end and every newline inside a cell is CRLF"
    );
    assert!(body.ends_with("\r\n"));
    // RFC 4180 as Excel applies it: a quoted cell runs to the next lone quote, `""` is a quote,
    // and commas and line ends inside the quotes belong to the cell.
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let mut chars = body.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CR only before LF"),
            (false, '\n') => panic!("a bare LF ends no record"),
            (false, '\u{feff}') => panic!("a second BOM"),
            (false, c) => cell.push(c),
        }
        if !quoted && c == '\r' {
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(
        !quoted && row.is_empty() && cell.is_empty(),
        "the last record ends"
    );
    rows
}

async fn node_of(app: &TestApp, municipality: &str, title: &str, contractor: &str) -> String {
    let item = consignment_item::Entity::find()
        .filter(consignment_item::Column::MunicipalityId.eq(municipality))
        .filter(consignment_item::Column::Title.eq(title))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the item");
    chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.eq(item.id))
        .filter(chain_node::Column::ContractorId.eq(contractor))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the node")
        .id
}

async fn the_documents_of_the_demo_match_their_golden_files(backend: Backend) {
    let at = DateTime::parse_from_rfc3339("2026-11-22T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let app = spawn_app_with_clock(backend, Clock::Fixed(at)).await;
    itaku::demo::seed(&app.state).await.unwrap();
    let signed_in = app.sign_in("meguro.officer", "itaku-demo-2026").await;
    let body: Value = signed_in.json().await.unwrap();
    let officer = body["token"].as_str().unwrap().to_owned();

    golden(
        "changes_meguro.html",
        &text(&app, &changes_path(MEGURO, &[("format", "html")]), &officer).await,
    );
    let json = app.get_json(&changes_path(MEGURO, &[]), &officer).await;
    let csv = app
        .get_with_token(&changes_path(MEGURO, &[("format", "csv")]), &officer)
        .await;
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let rows = excel_rows(&csv.bytes().await.unwrap());
    assert_eq!(
        rows[0][..6],
        [
            "変更日",
            "項目",
            "変更前の記載",
            "変更後の記載",
            "提出時期",
            "提出時期に係る説明"
        ]
    );
    let listed = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), listed.len() + 1);
    for (csv_row, row) in rows[1..].iter().zip(listed) {
        let cells = [
            &row["changed_on_ja"],
            &row["item"],
            &row["before"],
            &row["after"],
            &row["timing_ja"],
            &row["explanation"],
        ];
        for (cell, value) in csv_row.iter().zip(cells) {
            assert_eq!(cell.replace("\r\n", "\n"), value.as_str().unwrap());
        }
    }
    // The joint permission added 国保中央会 under 東京都国保連 (the cloud is still pending).
    let sixth = listed
        .iter()
        .find(|r| r["item"].as_str().unwrap().ends_with("⑥再委託事項"))
        .unwrap();
    assert_eq!(sixth["after"], "国保情報集約システムの運用・保守");
    assert_eq!(sixth["timing_ja"], "事後");

    let meguro_title = "国民健康保険の資格管理等に関する事務(国保情報集約システム)";
    let tier1 = node_of(&app, MEGURO, meguro_title, KOKUHOREN).await;
    let tier2 = node_of(&app, MEGURO, meguro_title, "kokuho_chuokai").await;
    golden(
        "committee_meguro_consignment.html",
        &text(&app, &committee_path(&tier1, "html"), &officer).await,
    );
    golden(
        "committee_meguro_subcontract.html",
        &text(&app, &committee_path(&tier2, "html"), &officer).await,
    );
    let sub = app
        .get_json(&committee_path(&tier2, "json"), &officer)
        .await;
    assert_eq!(sub["kind"], "subcontract");
    assert_eq!(sub["missing"], json!([]), "the demo records every field");
    assert_eq!(sub["fields"]["recording_medium"], "クラウド上のサーバ");
    assert_eq!(
        sub["fields"]["period"],
        "令和8年4月1日から令和9年3月31日まで"
    );
}

/// Files an application of 東京都国保連 for a new vendor with `fields`.
async fn apply(app: &TestApp, cast: &Cast, fields: Value) -> Value {
    let vendor = app.new_vendor(KOKUHOREN).await;
    let body =
        json!({ "contractor_id": vendor, "parent_node_ids": [cast.tier1], "fields": fields });
    let response = app
        .post_json_with_token("/api/v1/applications", &cast.kokuhoren.token, &body)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "application filed: {answer}");
    answer
}

async fn a_permitted_subcontract_is_in_the_change_history_with_its_timing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let officer = &cast.officer.token;
    // This municipality counts every new subcontractor as significant.
    put_ok(
        &app,
        "/api/v1/documents/settings",
        officer,
        &json!({ "municipality_id": MEGURO, "last_serious_incident_on": null,
                 "significant_change_items": ["new_subcontractor"] }),
    )
    .await;
    let before = app.get_json(&changes_path(MEGURO, &[]), officer).await;
    let earlier = before["total"].as_u64().unwrap();

    let mut fields = application_fields("株式会社テスト");
    fields["scope_of_work"] = json!("システムの運用, \"一部\"\n保守");
    let application = apply(&app, &cast, fields).await;
    let id = application["id"].as_str().unwrap();
    let node = application["targets"][0]["node_id"].as_str().unwrap();
    act_ok(&app, &cast.kokuhoren.token, id, "submit").await;
    for who in [&cast.officer, &cast.chief] {
        act_ok(&app, &who.token, id, "approve").await;
    }
    let summary = "新たな再委託先の追加に伴い、特定個人情報保護評価を事前に実施した。";
    let recorded = app
        .post_json_with_token(
            "/api/v1/documents/assessments",
            officer,
            &json!({ "node_id": node, "assessed_on": app.state.clock.today_jst(), "summary": summary }),
        )
        .await;
    assert_eq!(recorded.status(), 201);
    act_ok(&app, &cast.manager.token, id, "approve").await;

    let today = app.state.clock.today_jst().to_string();
    let h = app
        .get_json(&changes_path(MEGURO, &[("from", &today)]), officer)
        .await;
    let rows = h["rows"].as_array().unwrap();
    // The last rows: the fixture's tier 2 was registered today too.
    let of = |suffix: &str| {
        rows.iter()
            .rev()
            .find(|r| r["item"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("a row for {suffix}: {h}"))
    };
    let sixth = of("⑥再委託事項");
    assert_eq!(sixth["timing"], "before", "{h}");
    assert_eq!(sixth["timing_ja"], "事前");
    assert_eq!(sixth["explanation"], summary);
    assert_eq!(sixth["significant"], true);
    assert!(sixth["after"]
        .as_str()
        .unwrap()
        .contains("システムの運用, \"一部\"\n保守"));
    let third = of("③委託先名");
    assert_eq!(
        (third["significant"].clone(), third["timing_ja"].clone()),
        (json!(true), json!("事前"))
    );
    assert!(third["before"]
        .as_str()
        .unwrap()
        .contains("国民健康保険中央会"));
    assert!(third["after"].as_str().unwrap().contains("株式会社テスト"));
    assert_eq!(
        rows.iter()
            .filter(|r| r["changed_on"] == json!(today))
            .count(),
        rows.len()
    );
    let all = app.get_json(&changes_path(MEGURO, &[]), officer).await;
    assert_eq!(
        all["total"].as_u64().unwrap(),
        earlier + 2,
        "③ and ⑥ changed"
    );

    // The CSV keeps the comma, the quotes and the newline inside their cell.
    let csv = app
        .get_with_token(&changes_path(MEGURO, &[("format", "csv")]), officer)
        .await
        .bytes()
        .await
        .unwrap();
    let raw = String::from_utf8(csv.to_vec()).unwrap();
    assert!(
        raw.contains("システムの運用, \"\"一部\"\"\r\n保守"),
        "{raw}"
    );
    let cells = excel_rows(&csv);
    assert!(cells
        .iter()
        .any(|r| r[3].contains("システムの運用, \"一部\"\r\n保守")
            && r[4] == "事前"
            && r[6] == "○"));

    // Pages of JSON; the print view.
    let page = app
        .get_json(
            &changes_path(MEGURO, &[("per_page", "1"), ("page", "2")]),
            officer,
        )
        .await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    assert_eq!(page["rows"][0], all["rows"][1]);
    assert_eq!(page["total"], all["total"]);
    let html = text(&app, &changes_path(MEGURO, &[("format", "html")]), officer).await;
    assert!(html.contains("システムの運用, &quot;一部&quot;<br>保守"));

    // A period with nothing; a period the wrong way round names its field in both languages.
    let none = app
        .get_json(&changes_path(MEGURO, &[("to", "2000-01-01")]), officer)
        .await;
    assert_eq!(none["total"], 0);
    let refused = app
        .get_with_token(
            &changes_path(MEGURO, &[("from", &today), ("to", "2000-01-01")]),
            officer,
        )
        .await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "from");
    assert!(!body["details"][0]["reason"]["ja"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(!body["details"][0]["reason"]["en"]
        .as_str()
        .unwrap()
        .is_empty());
    let unknown_item = app
        .get_with_token(&changes_path(MEGURO, &[("item", "no-such-item")]), officer)
        .await;
    assert_api_error(unknown_item, 404, "not_found").await;
    let by_item = app
        .get_json(&changes_path(MEGURO, &[("item", &cast.item)]), officer)
        .await;
    assert_eq!(by_item["total"], all["total"], "the file has this one item");

    // A contractor or another municipality: as if nothing existed; an auditor reads.
    for token in [&cast.kokuhoren.token, &cast.outsider.token] {
        let hidden = app.get_with_token(&changes_path(MEGURO, &[]), token).await;
        assert_api_error(hidden, 404, "not_found").await;
    }
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    let read = app
        .get_json(&changes_path(MEGURO, &[]), &auditor.token)
        .await;
    assert_eq!(read["total"], all["total"]);
}

/// Corrects the fields of a draft application under its current version.
async fn correct(app: &TestApp, token: &str, id: &str, fields: &Value) -> reqwest::Response {
    let path = format!("/api/v1/applications/{id}");
    let version = app.get_json(&path, token).await["version"].clone();
    app.client
        .patch(app.url(&path))
        .bearer_auth(token)
        .json(&json!({ "version": version, "fields": fields }))
        .send()
        .await
        .unwrap()
}

async fn submissions(app: &TestApp, node: &str) -> u64 {
    committee_submission::Entity::find()
        .filter(committee_submission::Column::NodeId.eq(node))
        .count(&app.db)
        .await
        .unwrap()
}

async fn the_committee_submission_marks_exactly_what_changed_since_it_was_submitted(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let officer = &cast.officer.token;
    let mut fields = application_fields("株式会社テスト");
    fields["recording_medium"] = json!("AWSクラウド上のサーバ");
    let application = apply(&app, &cast, fields.clone()).await;
    let id = application["id"].as_str().unwrap();
    let node = application["targets"][0]["node_id"].as_str().unwrap();
    let instance = application["targets"][0]["instance_id"].as_str().unwrap();

    // The consignment: the item of the fixture has no 登録業務の名称 and no 委託理由 yet.
    let consignment = app
        .get_json(&committee_path(&cast.tier1, "json"), officer)
        .await;
    assert_eq!(consignment["kind"], "consignment");
    assert_eq!(consignment["missing"], json!(["registered_work", "reason"]));
    assert_eq!(
        consignment["fields"]["recording_medium"],
        "クラウドサーバー"
    );
    let sub = app.get_json(&committee_path(node, "json"), officer).await;
    assert_eq!(sub["kind"], "subcontract");
    assert_eq!(sub["fields"]["recording_medium"], "AWSクラウド上のサーバ");
    assert!(sub["fields"]["contractor"]
        .as_str()
        .unwrap()
        .starts_with("【委託先】 東京都国民健康保険団体連合会 【再委託先】 "));
    assert!(sub["fields"]["safeguards"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l.as_str().unwrap().contains(": ")));
    assert_eq!(sub["last_submission"], Value::Null);
    assert_eq!(sub["changed"], json!([]));
    // The item page links them for the municipality's staff, not for a contractor.
    let item_page = format!("/items/{}", cast.item);
    let mut jar = Jar::with_session(officer);
    let html = page(jar.get(&app, &item_page).await, 200).await;
    assert!(html.contains("class=\"committee-link\""), "{html}");
    assert!(
        html.contains(&format!(
            "/api/v1/documents/committee?node&#x3D;{node}&amp;format&#x3D;html"
        )),
        "{html}"
    );
    assert!(html.contains("id=\"changes-link\""), "{html}");
    let mut jar = Jar::with_session(&cast.kokuhoren.token);
    let html = page(jar.get(&app, &item_page).await, 200).await;
    assert!(!html.contains("committee-link") && !html.contains("changes-link"));

    // Only an officer of the root municipality records a submission; bad input changes nothing.
    let path = "/api/v1/documents/committee/submissions";
    let today = app.state.clock.today_jst();
    let body = json!({ "node_id": node, "submitted_on": today });
    let footprint = app.footprint(instance).await;
    for token in [&cast.kokuhoren.token, &cast.outsider.token] {
        let hidden = app.post_json_with_token(path, token, &body).await;
        assert_api_error(hidden, 404, "not_found").await;
        let hidden = app
            .get_with_token(&committee_path(node, "html"), token)
            .await;
        assert_api_error(hidden, 404, "not_found").await;
    }
    let chief = app
        .post_json_with_token(path, &cast.chief.token, &body)
        .await;
    assert_api_error(chief, 403, "forbidden").await;
    let future = json!({ "node_id": node, "submitted_on": today + chrono::Days::new(1) });
    let refused = app.post_json_with_token(path, officer, &future).await;
    let error = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(error["details"][0]["field"], "submitted_on");
    assert!(!error["details"][0]["reason"]["en"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(submissions(&app, node).await, 0);
    assert_eq!(app.footprint(instance).await, footprint, "nothing written");

    let recorded = app.post_json_with_token(path, officer, &body).await;
    assert_eq!(recorded.status(), 201);
    let recorded: Value = recorded.json().await.unwrap();
    assert_eq!(
        recorded["fields"], sub["fields"],
        "the snapshot as generated"
    );
    // Audited in the permission's own trail, in the same transaction.
    let trail = app.audit_rows(instance).await;
    let last = trail.last().unwrap();
    assert_eq!(last.event, "committee_submitted");
    assert_eq!(last.actor_id, cast.officer.id);
    assert_eq!(last.seq, recorded["audit_seq"].as_i64().unwrap());
    assert!(itaku::services::audit::verify(&app.db)
        .await
        .unwrap()
        .is_clean());
    let unchanged = app.get_json(&committee_path(node, "json"), officer).await;
    assert_eq!(unchanged["changed"], json!([]));
    assert_eq!(unchanged["last_submission"]["id"], recorded["id"]);

    // Change one field of the application (a draft can be corrected): exactly it is marked.
    fields["recording_medium"] = json!("ガバメントクラウド上のサーバ");
    let patched = correct(&app, &cast.kokuhoren.token, id, &fields).await;
    assert_eq!(patched.status(), 200);
    let marked = app.get_json(&committee_path(node, "json"), officer).await;
    assert_eq!(marked["changed"], json!(["recording_medium"]));
    let html = text(&app, &committee_path(node, "html"), officer).await;
    assert!(html.contains("<strong class=\"changed\"><u>ガバメントクラウド上のサーバ</u></strong>"));
    assert_eq!(
        html.matches("<u>").count(),
        2,
        "the change and the note: {html}"
    );
    assert!(html.contains("に付議した内容からの変更箇所"));

    // Submitted again, nothing is marked; both records are listed, newest first.
    let again = app.post_json_with_token(path, officer, &body).await;
    assert_eq!(again.status(), 201);
    let clean = app.get_json(&committee_path(node, "json"), officer).await;
    assert_eq!(clean["changed"], json!([]));
    let listed = app
        .get_json(&format!("{path}?node={node}"), &cast.manager.token)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(
        listed[0]["fields"]["recording_medium"],
        "ガバメントクラウド上のサーバ"
    );
    let hidden = app
        .get_with_token(&format!("{path}?node={node}"), &cast.kokuhoren.token)
        .await;
    assert_api_error(hidden, 404, "not_found").await;
    // A blank 記録媒体 is refused with its field named, in both languages.
    fields["recording_medium"] = json!(" ");
    let blank = correct(&app, &cast.kokuhoren.token, id, &fields).await;
    let error = assert_api_error(blank, 422, "validation_failed").await;
    assert_eq!(error["details"][0]["field"], "fields.recording_medium");
}

crate::on_both_backends!(
    the_documents_of_the_demo_match_their_golden_files,
    a_permitted_subcontract_is_in_the_change_history_with_its_timing,
    the_committee_submission_marks_exactly_what_changed_since_it_was_submitted,
);
