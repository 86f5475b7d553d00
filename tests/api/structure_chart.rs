//! The implementation structure chart (履行体制図): the node fields it draws, its versions,
//! the differences from the last submitted version, who may see and submit it, and the golden
//! print view of the demo's chain.

use chrono::TimeZone;
use entity::document_event;
use itaku::clock::Clock;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{
    assert_api_error, detail_fields, spawn_app, spawn_app_with_clock, Backend, Cast, TestApp,
    MEGURO,
};

fn structure(staff: i64) -> Value {
    json!({
        "responsible_person": "事業部長",
        "manager": "情報セキュリティ管理者",
        "staff_count": staff,
        "work_location": "東京都千代田区",
    })
}

async fn chart(app: &TestApp, cast: &Cast) -> Value {
    app.get_json(
        &format!("/api/v1/items/{}/structure-chart", cast.item),
        &cast.officer.token,
    )
    .await
}

async fn text_of(app: &TestApp, path: &str, token: &str) -> (u16, String) {
    let response = app.get_with_token(path, token).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post_ok(app: &TestApp, path: &str, token: &str, expected: u16) -> Value {
    let response = app.post_json_with_token(path, token, &json!({})).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, expected, "{path}: {body}");
    body
}

async fn a_node_records_its_chart_fields_validated_by_its_contractor(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let path = format!("/api/v1/nodes/{}/structure", cast.tier1);
    let mut bad = structure(0);
    bad["manager"] = json!("  ");
    let body = assert_api_error(
        app.put_json_with_token(&path, &cast.kokuhoren.token, &bad)
            .await,
        422,
        "validation_failed",
    )
    .await;
    let fields = detail_fields(&body);
    assert_eq!(fields, ["manager", "staff_count"]);
    assert!(body["details"][0]["reason"]["ja"].is_string());
    // An individual number is refused and never echoed.
    let mut number = structure(3);
    number["work_location"] = json!("123456789018");
    let refused = app
        .put_json_with_token(&path, &cast.kokuhoren.token, &number)
        .await;
    assert_eq!(refused.status(), 422);
    assert!(!refused.text().await.unwrap().contains("123456789018"));
    let unchanged = chart(&app, &cast).await;
    assert_eq!(unchanged["chart"]["nodes"][0]["staff_count"], Value::Null);

    // The parent's contractor (国保中央会 sees 国保連's node as its ancestor) may not; a stranger
    // is told nothing.
    assert_api_error(
        app.put_json_with_token(&path, &cast.chuokai.token, &structure(3))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_api_error(
        app.put_json_with_token(&path, &cast.outsider.token, &structure(3))
            .await,
        404,
        "not_found",
    )
    .await;
    let response = app
        .put_json_with_token(&path, &cast.kokuhoren.token, &structure(12))
        .await;
    assert_eq!(response.status(), 200);
    let recorded: Value = response.json().await.unwrap();
    let stale = {
        let mut body = structure(13);
        body["version"] = json!(recorded["version"].as_i64().unwrap() - 1);
        app.put_json_with_token(&path, &cast.officer.token, &body)
            .await
    };
    assert_api_error(stale, 409, "stale_version").await;
    let now = chart(&app, &cast).await;
    let tier1 = &now["chart"]["nodes"][0];
    assert_eq!(tier1["staff_count"], 12);
    assert_eq!(tier1["responsible_person"], "事業部長");
    assert_eq!(tier1["supervised_by"], "目黒区");
    assert_eq!(
        now["chart"]["nodes"][1]["supervised_by"],
        "東京都国民健康保険団体連合会"
    );
}

async fn a_changed_chart_differs_from_the_submitted_version_until_it_is_resubmitted(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let officer = &cast.officer.token;
    let node_path = format!("/api/v1/nodes/{}/structure", cast.tier1);
    let versions = format!("/api/v1/items/{}/structure-chart/versions", cast.item);
    app.put_json_with_token(&node_path, &cast.kokuhoren.token, &structure(12))
        .await;

    let first = chart(&app, &cast).await;
    assert_eq!(first["last_submitted"], Value::Null);
    assert_eq!(first["resubmission_required"], false);
    let v1 = post_ok(&app, &versions, officer, 201).await;
    assert_eq!(v1["number"], 1);
    // Nothing changed since: the same version again, nothing written.
    let again = post_ok(&app, &versions, officer, 200).await;
    assert_eq!(again["id"], v1["id"]);
    // Its SVG is exactly what was hashed.
    let (status, svg) = text_of(&app, &format!("{versions}/1?format=svg"), officer).await;
    assert_eq!(status, 200);
    assert_eq!(
        v1["svg_sha256"],
        hex::encode(Sha256::digest(svg.as_bytes())).as_str()
    );
    // An auditor reads but does not submit; the contractor sees nothing.
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    assert_api_error(
        app.post_json_with_token(&format!("{versions}/1/submit"), &auditor.token, &json!({}))
            .await,
        403,
        "forbidden",
    )
    .await;
    let submitted = post_ok(&app, &format!("{versions}/1/submit"), officer, 200).await;
    assert_eq!(submitted["submitted_by"], cast.officer.id.as_str());
    let events: Vec<&str> = submitted["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["chart_version_created", "chart_version_submitted"]);
    assert_api_error(
        app.post_json_with_token(&format!("{versions}/1/submit"), officer, &json!({}))
            .await,
        409,
        "conflict",
    )
    .await;
    let clean = chart(&app, &cast).await;
    assert_eq!(clean["last_submitted"]["number"], 1);
    assert_eq!(clean["changes"], json!([]));
    assert_eq!(clean["resubmission_required"], false);

    // The contractor changes its staff, and a new subcontract is applied for.
    app.put_json_with_token(&node_path, &cast.kokuhoren.token, &structure(20))
        .await;
    cast.apply_tier2(&app).await;
    let changed = chart(&app, &cast).await;
    assert_eq!(changed["resubmission_required"], true);
    let changes = changed["changes"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["organisation"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("東京都国民健康保険団体連合会", "changed"),
            ("株式会社テスト", "added")
        ]
    );
    assert_eq!(
        changes[0]["fields"],
        json!([{"field": "staff_count", "label_ja": "従事者数", "label_en": "Staff",
                "before": "12人", "after": "20人"}])
    );
    let path = format!("/api/v1/items/{}/structure-chart?format=svg", cast.item);
    let (_, svg) = text_of(&app, &path, officer).await;
    assert_eq!(svg.matches("chart-node chart-changed").count(), 1);
    assert_eq!(svg.matches("chart-node chart-added").count(), 1);
    assert!(svg.contains("＊従事者数: 20人"));
    let path = format!("/api/v1/items/{}/structure-chart?format=html", cast.item);
    let (_, html) = text_of(&app, &path, officer).await;
    assert!(html.contains("提出済みの第1版"));
    assert!(html.contains("2件の変更あり(再提出が必要です)"));

    // The new version is the one to submit next.
    let v2 = post_ok(&app, &versions, officer, 201).await;
    assert_eq!(v2["number"], 2);
    let list = app.get_json(&versions, officer).await;
    let numbers: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    post_ok(&app, &format!("{versions}/2/submit"), officer, 200).await;
    let resubmitted = chart(&app, &cast).await;
    assert_eq!(resubmitted["last_submitted"]["number"], 2);
    assert_eq!(resubmitted["resubmission_required"], false);
    let trail = document_event::Entity::find()
        .filter(document_event::Column::Event.eq("chart_version_submitted"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(trail.len(), 2);
    assert!(trail.iter().all(|e| e.actor_id == cast.officer.id));
}

async fn only_the_municipalitys_staff_see_the_chart(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let versions = format!("/api/v1/items/{}/structure-chart/versions", cast.item);
    for who in [&cast.kokuhoren, &cast.chuokai, &cast.outsider] {
        for path in [
            format!("/api/v1/items/{}/structure-chart", cast.item),
            format!("/api/v1/items/{}/structure-chart?format=html", cast.item),
            versions.clone(),
        ] {
            assert_api_error(
                app.get_with_token(&path, &who.token).await,
                404,
                "not_found",
            )
            .await;
        }
        assert_api_error(
            app.post_json_with_token(&versions, &who.token, &json!({}))
                .await,
            404,
            "not_found",
        )
        .await;
    }
}

/// 目黒区's NHI chain as the demo seeds it, drawn on a fixed day: the print view and the SVG
/// must match the golden files byte for byte, on both databases.
async fn the_demo_chart_matches_the_golden_files(backend: Backend) {
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 27, 1, 0, 0)
        .single()
        .unwrap();
    let app = spawn_app_with_clock(backend, Clock::Fixed(at)).await;
    itaku::demo::seed(&app.state).await.unwrap();
    let signed_in = app
        .sign_in("meguro.officer", itaku::demo::DEMO_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200);
    let token = signed_in.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let items = app.get_json("/api/v1/items?per_page=100", &token).await;
    let item = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap().starts_with("国民健康保険"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/api/v1/items/{item}/structure-chart");
    for (format, file) in [
        ("html", "structure_chart_meguro.html"),
        ("svg", "structure_chart_meguro.svg"),
    ] {
        let (status, body) = text_of(&app, &format!("{base}?format={format}"), &token).await;
        assert_eq!(status, 200, "{body}");
        let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &body).unwrap();
        }
        assert_eq!(
            body,
            std::fs::read_to_string(&path).unwrap(),
            "{file}: UPDATE_GOLDEN=1 rewrites it"
        );
    }
}

crate::on_both_backends!(
    a_node_records_its_chart_fields_validated_by_its_contractor,
    a_changed_chart_differs_from_the_submitted_version_until_it_is_resubmitted,
    only_the_municipalitys_staff_see_the_chart,
    the_demo_chart_matches_the_golden_files,
);
