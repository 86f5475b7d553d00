//! The ISMAP cloud service list: imports with their differences, bad files, who may import
//! and see them, and the flags ISMAP evidence gets from the current list.

use entity::{document_event, ismap_import};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{
    application_fields, assert_api_error, day, detail_fields, spawn_app, Backend, Cast, TestApp,
    CHUOKAI, KOKUHOREN, MEGURO,
};

/// The first list, Japanese headers as the government site writes them (with a BOM).
const FIRST: &str = "\u{feff}登録番号,サービス名称,事業者名,登録日,有効期限,備考\r\n\
    C21-0001-1,Alpha Cloud,アルファ株式会社,2021/3/12,2026/7/31,\r\n\
    C21-0005-2,Example Cloud,クラウド事業者株式会社,2021/5/1,2027/8/31,\r\n\
    C22-0010-1,\"ガバメント基盤, IaaS\",基盤株式会社,令和4年5月1日,令和9年8月31日,\"複数行の\n備考\"\r\n";

/// The second list, the documented English headers in another order, in Shift_JIS: C21-0001-1
/// gone, C21-0005-2's expiry and remarks changed, C22-0010-1's service name changed,
/// C23-0020-1 added.
const SECOND: &str =
    "service_name,registration_number,provider,registration_date,expiry_date,remarks\r\n\
    Example Cloud,C21-0005-2,クラウド事業者株式会社,2021-05-01,2028-08-31,更新申請中\r\n\
    ガバメント基盤 IaaS,C22-0010-1,基盤株式会社,2022-05-01,2027-08-31,\"複数行の\n備考\"\r\n\
    新クラウド,C23-0020-1,新株式会社,2023-06-01,2028-06-30,\r\n";

fn shift_jis(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

async fn upload(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    mapping: Option<&Value>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("ismap_list.csv"),
    );
    if let Some(m) = mapping {
        form = form.text("mapping", m.to_string());
    }
    app.client
        .post(app.url("/api/v1/ismap/imports"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn import_ok(app: &TestApp, token: &str, bytes: Vec<u8>) -> Value {
    let response = upload(app, token, bytes, None).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn imports(app: &TestApp) -> u64 {
    ismap_import::Entity::find().count(&app.db).await.unwrap()
}

async fn each_import_is_kept_with_its_exact_difference_from_the_previous_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;

    let first_bytes = FIRST.as_bytes().to_vec();
    let first = import_ok(&app, &admin.token, first_bytes.clone()).await;
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["row_count"], 3);
    assert_eq!(first["encoding"], "utf-8-bom");
    assert_eq!(first["imported_by"], admin.id.as_str());
    assert_eq!(first["filename"], "ismap_list.csv");
    assert_eq!(
        first["sha256"],
        hex::encode(Sha256::digest(&first_bytes)).as_str()
    );
    assert_eq!(first["mapping"]["expiry_date"], "有効期限");
    assert_eq!(first["counts"]["added"], 3);
    assert_eq!(first["previous_id"], Value::Null);

    let second = import_ok(&app, &admin.token, shift_jis(SECOND)).await;
    assert_eq!(second["sequence"], 2);
    assert_eq!(second["encoding"], "shift_jis");
    assert_eq!(second["previous_id"], first["id"]);
    assert_eq!(
        second["diff"],
        json!({
            "added": [{"registration_number": "C23-0020-1", "service_name": "新クラウド",
                       "provider": "新株式会社", "registration_date": "2023-06-01",
                       "expiry_date": "2028-06-30", "remarks": ""}],
            "removed": [{"registration_number": "C21-0001-1", "service_name": "Alpha Cloud",
                         "provider": "アルファ株式会社", "registration_date": "2021-03-12",
                         "expiry_date": "2026-07-31", "remarks": ""}],
            "service_name_changed": [{"registration_number": "C22-0010-1",
                                      "before": "ガバメント基盤, IaaS", "after": "ガバメント基盤 IaaS"}],
            "provider_changed": [],
            "registration_date_changed": [],
            "expiry_changed": [{"registration_number": "C21-0005-2",
                                "before": "2027-08-31", "after": "2028-08-31"}],
            "remarks_changed": [{"registration_number": "C21-0005-2",
                                 "before": "", "after": "更新申請中"}],
        })
    );

    // The history, newest first, the newest being the current list; readable by officers.
    let list = app
        .get_json("/api/v1/ismap/imports", &cast.officer.token)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], second["id"]);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["current"], false);
    let one = app
        .get_json(
            &format!("/api/v1/ismap/imports/{}", first["id"].as_str().unwrap()),
            &cast.officer.token,
        )
        .await;
    assert_eq!(one["counts"]["added"], 3);
    let entries = app
        .get_json(
            &format!(
                "/api/v1/ismap/imports/{}/entries",
                second["id"].as_str().unwrap()
            ),
            &cast.officer.token,
        )
        .await;
    let numbers: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["registration_number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["C21-0005-2", "C22-0010-1", "C23-0020-1"]);
    assert_eq!(entries[1]["remarks"], "複数行の\n備考");

    // Each import is in the trail, with who and the hash.
    let trail = document_event::Entity::find()
        .filter(document_event::Column::Event.eq("ismap_import"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(trail.len(), 2);
    assert!(trail.iter().all(|e| e.actor_id == admin.id));
    assert!(trail[0].details.contains(first["sha256"].as_str().unwrap()));
}

async fn a_bad_list_names_the_row_and_column_and_imports_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_organisation_of_kind(MEGURO, "municipality", "目黒区")
        .await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;

    let missing = "登録番号,サービス名称,事業者名,登録日\nC1,S,P,2024-01-01\n";
    let body = assert_api_error(
        upload(&app, &admin.token, missing.as_bytes().to_vec(), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["details"][0]["field"], "columns.expiry_date");
    assert!(body["details"][0]["reason"]["ja"]
        .as_str()
        .unwrap()
        .contains("有効期限"));
    assert!(body["details"][0]["reason"]["en"]
        .as_str()
        .unwrap()
        .contains("expiry_date"));

    let bad = "登録番号,サービス名称,事業者名,登録日,有効期限,備考\n\
        C1,S,P,2024-01-01,2026-01-01,\n\
        C2,S,P,2024-01-01,2026/02/30,\n\
        C1,T,P,2024-01-01,2026-01-01,\n";
    let body = assert_api_error(
        upload(&app, &admin.token, bad.as_bytes().to_vec(), None).await,
        422,
        "validation_failed",
    )
    .await;
    let fields = detail_fields(&body);
    assert_eq!(fields, ["rows[3].有効期限", "rows[4].登録番号"]);
    assert!(body["details"][0]["reason"]["ja"]
        .as_str()
        .unwrap()
        .starts_with("3行目の列「有効期限」の「2026/02/30」"));
    assert!(body["details"][1]["reason"]["en"]
        .as_str()
        .unwrap()
        .contains("repeats row 2"));

    // Another layout needs a mapping; a mapping naming a header the file lacks is refused.
    let other = "No.,Name,Vendor,From,Until\nC9,Nine,P,2024-01-01,2027-01-01\n";
    let mapping = json!({"registration_number": "No.", "service_name": "Name",
        "provider": "Vendor", "registration_date": "From", "expiry_date": "Ende"});
    let body = assert_api_error(
        upload(
            &app,
            &admin.token,
            other.as_bytes().to_vec(),
            Some(&mapping),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["details"][0]["field"], "mapping.expiry_date");
    assert_eq!(imports(&app).await, 0, "nothing was imported");

    let mut mapping = mapping;
    mapping["expiry_date"] = json!("Until");
    let response = upload(
        &app,
        &admin.token,
        other.as_bytes().to_vec(),
        Some(&mapping),
    )
    .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mapping"]["registration_number"], "No.");
    assert_eq!(body["diff"]["added"][0]["service_name"], "Nine");
}

async fn only_admins_import_and_contractors_see_no_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;
    let csv = || FIRST.as_bytes().to_vec();
    assert_api_error(
        upload(&app, &cast.officer.token, csv(), None).await,
        403,
        "forbidden",
    )
    .await;
    assert_api_error(
        upload(&app, &cast.kokuhoren.token, csv(), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(imports(&app).await, 0);
    let first = import_ok(&app, &admin.token, csv()).await;
    let id = first["id"].as_str().unwrap();
    for path in [
        "/api/v1/ismap/imports".to_owned(),
        format!("/api/v1/ismap/imports/{id}"),
        format!("/api/v1/ismap/imports/{id}/entries"),
    ] {
        assert_api_error(
            app.get_with_token(&path, &cast.kokuhoren.token).await,
            404,
            "not_found",
        )
        .await;
        let seen = app.get_with_token(&path, &cast.outsider.token).await;
        assert_eq!(seen.status(), 200, "{path}: municipal staff read the list");
    }
}

/// An ISMAP record of `org` as the fixture writes it.
async fn ismap_record(
    app: &TestApp,
    org: &str,
    number: &str,
    service: &str,
    until: &str,
) -> String {
    app.insert_evidence(
        org,
        "ismap",
        json!({"kind": "ismap", "registration_number": number, "service_name": service,
               "provider": "クラウド事業者株式会社", "registration_date": "2021-05-01",
               "expiry_date": until, "scope_statement": "IaaS"}),
        day(2099, 3, 31),
        true,
    )
    .await
}

fn flag_codes(evidence: &Value) -> Vec<&str> {
    evidence["ismap_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

async fn ismap_evidence_that_disagrees_with_the_current_list_is_flagged(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;
    let matching = ismap_record(&app, CHUOKAI, "C21-0005-2", "Example Cloud", "2027-08-31").await;
    let absent = ismap_record(&app, CHUOKAI, "C99-9999-9", "Example Cloud", "2027-08-31").await;
    let renamed = ismap_record(
        &app,
        CHUOKAI,
        "C21-0005-2",
        "Example Cloud Pro",
        "2027-08-31",
    )
    .await;
    let expiry = ismap_record(&app, CHUOKAI, "C21-0005-2", "Example Cloud", "2027-09-30").await;
    let read = |id: String| {
        let (app, token) = (&app, cast.officer.token.clone());
        async move {
            app.get_json(&format!("/api/v1/evidence/{id}"), &token)
                .await
        }
    };
    // No list imported yet: nothing to compare with.
    assert!(flag_codes(&read(absent.clone()).await).is_empty());

    import_ok(&app, &admin.token, FIRST.as_bytes().to_vec()).await;
    assert!(flag_codes(&read(matching.clone()).await).is_empty());
    let flagged = read(absent).await;
    assert_eq!(flag_codes(&flagged), ["ismap_not_listed"]);
    assert!(flagged["ismap_flags"][0]["message"]["ja"]
        .as_str()
        .unwrap()
        .contains("C99-9999-9"));
    assert!(flagged["ismap_flags"][0]["message"]["en"]
        .as_str()
        .unwrap()
        .contains("not in the current ISMAP"));
    // Flagged, not changed: the officer decides.
    assert_eq!(flagged["status"], "verified");
    let flagged = read(renamed).await;
    assert_eq!(flag_codes(&flagged), ["ismap_service_name_differs"]);
    assert_eq!(
        flagged["ismap_flags"][0]["listed"]["service_name"],
        "Example Cloud"
    );
    assert_eq!(
        flag_codes(&read(expiry.clone()).await),
        ["ismap_expiry_differs"]
    );

    // The next list moves the expiry: now the matching record is flagged and the other agrees.
    import_ok(&app, &admin.token, shift_jis(SECOND)).await;
    assert_eq!(flag_codes(&read(matching).await), ["ismap_expiry_differs"]);

    // The library shows the same flags.
    let library = app
        .get_json(
            &format!("/api/v1/evidence?organisation={CHUOKAI}&kind=ismap"),
            &cast.officer.token,
        )
        .await;
    let items = library
        .get("items")
        .cloned()
        .unwrap_or_else(|| library.clone());
    let flagged_records = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["ismap_flags"].as_array().unwrap().is_empty())
        .count();
    // After the second list all four disagree: the expiry moved for every C21-0005-2 record.
    assert_eq!(flagged_records, 4, "{items}");
}

async fn the_decision_screen_warns_of_a_cloud_services_ismap_disagreement(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let record = ismap_record(&app, &vendor, "C99-0000-1", "Example Cloud", "2027-08-31").await;
    let mut fields = application_fields("株式会社テスト");
    fields["hosts_environment"] = json!(true);
    fields["service_name"] = json!("Example Cloud");
    let response = app
        .post_json_with_token(
            "/api/v1/applications",
            &cast.kokuhoren.token,
            &json!({"contractor_id": vendor, "parent_node_ids": [cast.tier1], "fields": fields}),
        )
        .await;
    let status = response.status();
    let application: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{application}");
    // The municipality decides that the cloud provider handles the data: a tier with the full
    // cloud requirements, ISMAP among them.
    let classified = app
        .post_json_with_token(
            &format!(
                "/api/v1/nodes/{}/classification",
                application["targets"][0]["node_id"].as_str().unwrap()
            ),
            &cast.officer.token,
            &json!({"classification": "handles_data"}),
        )
        .await;
    assert_eq!(classified.status(), 200);
    let path = format!(
        "/api/v1/applications/{}/targets/{}/checklist",
        application["id"].as_str().unwrap(),
        application["targets"][0]["id"].as_str().unwrap()
    );
    let codes = |checklist: &Value| -> Vec<String> {
        checklist["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap().to_owned())
            .filter(|c| c.starts_with("ismap_"))
            .collect()
    };
    let before = app.get_json(&path, &cast.officer.token).await;
    assert!(
        before["checklist"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["evidence_id"] == record.as_str()),
        "the checklist relies on the record: {before}"
    );
    assert!(codes(&before).is_empty());
    import_ok(&app, &admin.token, FIRST.as_bytes().to_vec()).await;
    let after = app.get_json(&path, &cast.officer.token).await;
    assert_eq!(codes(&after), ["ismap_not_listed"]);
    let warning = after["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "ismap_not_listed")
        .unwrap();
    assert_eq!(warning["detail"]["evidence_id"], record.as_str());
    // The applicant's own view of the checklist carries no such warning.
    let theirs = app.get_json(&path, &cast.kokuhoren.token).await;
    assert!(codes(&theirs).is_empty());
}

crate::on_both_backends!(
    each_import_is_kept_with_its_exact_difference_from_the_previous_one,
    a_bad_list_names_the_row_and_column_and_imports_nothing,
    only_admins_import_and_contractors_see_no_list,
    ismap_evidence_that_disagrees_with_the_current_list_is_flagged,
    the_decision_screen_warns_of_a_cloud_services_ismap_disagreement,
);
