//! The evidence library, the application form and the contractor portal over HTTP.

use chrono::Days;
use entity::{evidence_record, subcontract_application};
use reqwest::header::LOCATION;
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::{
    application_fields, spawn_app, spawn_app_with, Backend, Cast, TestApp, CHUOKAI, KOKUHOREN,
    MEGURO, SHINJUKU,
};
use crate::on_both_backends;
use crate::ui::{csrf_of, page, Jar};

pub const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00rest-of-binary";

fn text_parts(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |form, (name, value)| {
        form.text((*name).to_owned(), (*value).to_owned())
    })
}

fn with_file(form: Form, name: &'static str, bytes: &[u8]) -> Form {
    form.part("file", Part::bytes(bytes.to_vec()).file_name(name))
}

/// The fields of a valid ISO/IEC 27001 record of 東京都国保連.
fn iso_fields(csrf: &str) -> Vec<(&str, &str)> {
    vec![
        ("csrf", csrf),
        ("kind", "iso27001"),
        ("certificate_number", "IS 654321"),
        ("organisation_name", "東京都国民健康保険団体連合会"),
        ("scope", "国保情報集約システムの運用"),
        ("covered_services", "国保情報集約システム\n審査支払システム"),
        ("edition", "2022"),
        ("certification_body", "BSIグループジャパン"),
        ("issue_date", "2025-04-01"),
        ("expiry_date", "2028-03-31"),
        ("node_id", ""),
    ]
}

async fn evidence_rows(app: &TestApp, org: &str) -> u64 {
    evidence_record::Entity::find()
        .filter(evidence_record::Column::OrganisationId.eq(org))
        .count(&app.db)
        .await
        .unwrap()
}

/// How many evidence records the database holds.
pub async fn evidence_count(app: &TestApp) -> u64 {
    evidence_record::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

/// How many stored files the database holds.
pub async fn file_count(app: &TestApp) -> u64 {
    entity::file::Entity::find().count(&app.db).await.unwrap()
}

/// A signed-in browser's jar and the CSRF token of `path`.
async fn open(app: &TestApp, token: &str, path: &str) -> (Jar, String) {
    let mut jar = Jar::with_session(token);
    let html = page(jar.get(app, path).await, 200).await;
    let csrf = csrf_of(&html);
    (jar, csrf)
}

/// The `<article>` of one evidence record on a library page.
fn record_of<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!(r#"id="evidence-{id}""#))
        .unwrap_or_else(|| panic!("record {id} on the page"));
    let end = html[start..].find("</article>").unwrap() + start;
    &html[start..end]
}

async fn a_contractor_records_evidence_with_files_and_the_officer_verifies_then_revokes_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let library = format!("/organisations/{KOKUHOREN}/evidence");
    let (mut jar, csrf) = open(
        &app,
        &cast.kokuhoren.token,
        &format!("{library}/new?kind=iso27001"),
    )
    .await;
    let before = evidence_rows(&app, KOKUHOREN).await;
    let form = with_file(
        with_file(text_parts(&iso_fields(&csrf)), "certificate.pdf", PDF),
        "scope.png",
        PNG,
    );
    let created = jar.post_multipart(&app, &library, form).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let location = created.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{library}?done=created#evidence-")));
    let id = location.rsplit("#evidence-").next().unwrap().to_owned();
    assert_eq!(evidence_rows(&app, KOKUHOREN).await, before + 1);

    let html = page(jar.get(&app, &library).await, 200).await;
    let record = record_of(&html, &id);
    assert!(record.contains("IS 654321") && record.contains("審査支払システム"));
    assert!(record.contains("certificate.pdf") && record.contains("scope.png"));
    assert!(record.contains(r#"data-status="unverified""#));
    assert!(!record.contains("/verify"), "a contractor does not verify");

    // The root municipality's officer verifies it from the screen.
    let (mut officer, csrf) = open(&app, &cast.officer.token, &library).await;
    let html = page(officer.get(&app, &library).await, 200).await;
    assert!(record_of(&html, &id).contains(&format!(r#"action="/evidence/{id}/verify""#)));
    let verified = officer
        .post(
            &app,
            &format!("/evidence/{id}/verify"),
            &[("csrf", &csrf), ("version", "1")],
        )
        .await;
    assert_eq!(verified.status(), 303);
    let html = page(officer.get(&app, &library).await, 200).await;
    let record = record_of(&html, &id);
    assert!(record.contains(r#"data-status="verified""#), "{record}");
    assert!(
        record.contains("meguro_officer"),
        "who verified it is shown"
    );
    // Verifying again from a stale page says someone acted first.
    let stale = officer
        .post(
            &app,
            &format!("/evidence/{id}/verify"),
            &[("csrf", &csrf), ("version", "1")],
        )
        .await;
    assert!(page(stale, 409).await.contains("既に確認済み"));

    // Revoking needs a reason, shown next to the reason field; then it is revoked.
    let refused = officer
        .post(
            &app,
            &format!("/evidence/{id}/revoke"),
            &[("csrf", &csrf), ("version", "2"), ("reason", " ")],
        )
        .await;
    let html = page(refused, 422).await;
    assert!(record_of(&html, &id).contains(&format!(r#"id="reason-{id}-error""#)));
    assert!(html.contains("取消しの理由を入力してください"));
    let revoked = officer
        .post(
            &app,
            &format!("/evidence/{id}/revoke"),
            &[
                ("csrf", &csrf),
                ("version", "2"),
                ("reason", "認証が取り消された"),
            ],
        )
        .await;
    assert_eq!(revoked.status(), 303);
    let html = page(officer.get(&app, &library).await, 200).await;
    let record = record_of(&html, &id);
    assert!(record.contains(r#"data-status="revoked""#) && record.contains("認証が取り消された"));

    // Without the CSRF token nothing happens.
    let refused = jar
        .post_multipart(
            &app,
            &library,
            with_file(text_parts(&iso_fields("")), "c.pdf", PDF),
        )
        .await;
    page(refused, 403).await;
    assert_eq!(evidence_rows(&app, KOKUHOREN).await, before + 1);
}

async fn the_evidence_form_shows_every_error_next_to_its_field_and_stores_nothing(
    backend: Backend,
) {
    let app = spawn_app_with(backend, itaku::clock::Clock::System, |s| {
        s.max_upload_mb = 1
    })
    .await;
    let cast = Cast::create(&app).await;
    let library = format!("/organisations/{KOKUHOREN}/evidence");
    let (mut jar, csrf) = open(
        &app,
        &cast.kokuhoren.token,
        &format!("{library}/new?kind=iso27001"),
    )
    .await;
    let before = evidence_rows(&app, KOKUHOREN).await;
    let mut fields = iso_fields(&csrf);
    fields.retain(|(n, _)| !["certificate_number", "issue_date", "covered_services"].contains(n));
    fields.extend([
        ("certificate_number", " "),
        ("issue_date", "2026/13/01"),
        ("covered_services", ""),
    ]);
    fields.push(("next_surveillance_date", "2030-01-01"));
    let form = with_file(text_parts(&fields), "certificate.pdf", ELF);
    let html = page(jar.post_multipart(&app, &library, form).await, 422).await;
    for (id, text) in [
        ("f-certificate_number-error", "入力してください"),
        ("f-issue_date-error", "2026-04-01"),
        ("f-covered_services-error", "1件以上"),
        ("f-file-error", "PDF・PNG・JPEG"),
    ] {
        let at = html
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("{id}: {html}"));
        assert!(
            html[at..]
                .chars()
                .take(200)
                .collect::<String>()
                .contains(text),
            "{id} says {text}"
        );
    }
    assert!(html.contains(r#"id="error-summary""#));
    assert!(html.contains(r#"aria-invalid="true""#));
    // What was typed stays in the form.
    assert!(html.contains("BSIグループジャパン"));
    assert_eq!(evidence_rows(&app, KOKUHOREN).await, before);

    // In English, the same errors in English.
    jar.set("itaku_lang", "en");
    let form = with_file(text_parts(&fields), "certificate.pdf", ELF);
    let html = page(jar.post_multipart(&app, &library, form).await, 422).await;
    assert!(html.contains("Enter the date as 2026-04-01."), "{html}");
    assert!(html.contains("Only PDF, PNG and JPEG files are accepted"));
    assert!(html.contains("This field is required"));

    // A file over the limit is refused at the file field; the rest of the form is kept.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(1024 * 1024 + 10, b'a');
    let form = with_file(text_parts(&iso_fields(&csrf)), "big.pdf", &big);
    let html = page(jar.post_multipart(&app, &library, form).await, 422).await;
    let at = html.find(r#"id="f-file-error""#).expect("the file's error");
    assert!(
        html[at..]
            .chars()
            .take(200)
            .collect::<String>()
            .contains("1 MB"),
        "{html}"
    );
    assert!(html.contains("IS 654321"));
    // An individual number is refused too, and never echoed back.
    jar.set("itaku_lang", "ja");
    let mut fields = iso_fields(&csrf);
    fields.retain(|(n, _)| *n != "scope");
    fields.push(("scope", "担当者 123456789018"));
    let form = with_file(text_parts(&fields), "c.pdf", PDF);
    let html = page(jar.post_multipart(&app, &library, form).await, 422).await;
    assert!(html.contains(r#"id="f-scope-error""#), "{html}");
    assert!(
        !html.contains("123456789018"),
        "the number is never shown back"
    );
    assert_eq!(evidence_rows(&app, KOKUHOREN).await, before);
}

async fn the_expiry_calendar_lists_what_expires_within_90_days_nearest_first_with_markers_in_words(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let today = app.state.clock.today_jst();
    let mut ids = Vec::new();
    for (kind, days) in [
        ("privacy_mark", 60),
        ("nda", 3),
        ("iso27017", 20),
        ("iso27018", 120),
    ] {
        let until = today.checked_add_days(Days::new(days)).unwrap();
        let id = app
            .insert_evidence(
                KOKUHOREN,
                kind,
                json!({ "covered_services": [] }),
                until,
                true,
            )
            .await;
        ids.push((kind, id));
    }
    let expired = today.checked_sub_days(Days::new(1)).unwrap();
    let old = app
        .insert_evidence(KOKUHOREN, "cs_gold", json!({}), expired, true)
        .await;
    let mut jar = Jar::with_session(&cast.officer.token);
    let html = page(
        jar.get(&app, &format!("/organisations/{KOKUHOREN}/evidence"))
            .await,
        200,
    )
    .await;
    let calendar_start = html.find(r#"id="calendar""#).unwrap();
    let calendar =
        &html[calendar_start..html[calendar_start..].find("</section>").unwrap() + calendar_start];
    let at = |id: &str| calendar.find(&format!(r#"data-evidence="{id}""#));
    let (nda, iso17, pmark, iso18) = (&ids[1].1, &ids[2].1, &ids[0].1, &ids[3].1);
    let order: Vec<usize> = [nda, iso17, pmark]
        .iter()
        .map(|id| at(id).expect("listed"))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "nearest first: {order:?}"
    );
    assert!(at(iso18).is_none(), "beyond 90 days");
    assert!(at(&old).is_none(), "already expired");
    for (id, marker) in [(nda, "7日以内"), (iso17, "30日以内"), (pmark, "90日以内")] {
        let row = &calendar[at(id).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains(marker), "{marker} in words: {row}");
    }
    assert!(calendar.contains("あと3日"));
    // The overview has the same calendar across organisations.
    let html = page(jar.get(&app, "/evidence").await, 200).await;
    assert!(html.contains(&format!(r#"data-evidence="{nda}""#)));
    assert!(html.contains(&format!("/organisations/{CHUOKAI}/evidence")));
}

async fn a_contractor_gets_404_for_another_organisations_evidence_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let record = app
        .insert_evidence(
            KOKUHOREN,
            "safeguards",
            json!({}),
            crate::helpers::day(2099, 1, 1),
            false,
        )
        .await;
    let mut chuokai = Jar::with_session(&cast.chuokai.token);
    for path in [
        format!("/organisations/{KOKUHOREN}/evidence"),
        format!("/organisations/{KOKUHOREN}/evidence/new?kind=nda"),
        format!("/organisations/{MEGURO}/evidence"),
        "/organisations/no-such-org/evidence".to_owned(),
    ] {
        let html = page(chuokai.get(&app, &path).await, 404).await;
        assert!(html.contains("見つかりません"), "{path}");
    }
    // Nor may it act on another organisation's record.
    let csrf = csrf_of(&page(chuokai.get(&app, "/portal").await, 200).await);
    let refused = chuokai
        .post(
            &app,
            &format!("/evidence/{record}/verify"),
            &[("csrf", &csrf)],
        )
        .await;
    page(refused, 404).await;
    // Its own library it sees; the tier above sees it too; an outside municipality does not.
    page(
        chuokai
            .get(&app, &format!("/organisations/{CHUOKAI}/evidence"))
            .await,
        200,
    )
    .await;
    let mut kokuhoren = Jar::with_session(&cast.kokuhoren.token);
    page(
        kokuhoren
            .get(&app, &format!("/organisations/{CHUOKAI}/evidence"))
            .await,
        200,
    )
    .await;
    let mut outsider = Jar::with_session(&cast.outsider.token);
    page(
        outsider
            .get(&app, &format!("/organisations/{CHUOKAI}/evidence"))
            .await,
        404,
    )
    .await;
    let html = page(outsider.get(&app, "/evidence").await, 200).await;
    assert!(!html.contains(CHUOKAI) && !html.contains(KOKUHOREN));
    // A contractor verifying its own record is refused.
    let own = app
        .insert_evidence(
            CHUOKAI,
            "safeguards",
            json!({}),
            crate::helpers::day(2099, 1, 1),
            false,
        )
        .await;
    let refused = chuokai
        .post(&app, &format!("/evidence/{own}/verify"), &[("csrf", &csrf)])
        .await;
    page(refused, 403).await;
}

async fn names_like_markup_render_as_text_on_the_evidence_pages_and_the_portal(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let evil = "<script>alert(1)</script>";
    app.create_organisation_of_kind("evil", "vendor", evil)
        .await;
    app.give_evidence("evil", KOKUHOREN, None).await;
    app.file_application(&cast.kokuhoren.token, "evil", &[&cast.tier1])
        .await;
    let evil_record = app
        .insert_evidence(
            "evil",
            "shared_responsibility",
            json!({ "service_name": "<img src=x onerror=alert(2)>" }),
            crate::helpers::day(2099, 1, 1),
            false,
        )
        .await;
    for (token, path) in [
        (
            &cast.officer.token,
            "/organisations/evil/evidence".to_owned(),
        ),
        (&cast.officer.token, "/evidence".to_owned()),
        (&cast.kokuhoren.token, "/portal".to_owned()),
        (
            &cast.kokuhoren.token,
            "/organisations/evil/evidence/new?kind=nda".to_owned(),
        ),
        (&cast.kokuhoren.token, "/applications/new".to_owned()),
    ] {
        let mut jar = Jar::with_session(token);
        let html = page(jar.get(&app, &path).await, 200).await;
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{path}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)"),
            "{path}: the name is shown as text"
        );
    }
    let mut jar = Jar::with_session(&cast.officer.token);
    let html = page(jar.get(&app, "/organisations/evil/evidence").await, 200).await;
    assert!(record_of(&html, &evil_record).contains("&lt;img src"));
}

/// The form of a complete application for `contractor` under `parents`.
fn application_form<'a>(
    csrf: &'a str,
    contractor: &'a str,
    parents: &[&'a str],
    action: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf", csrf),
        ("contractor_id", contractor),
        ("reason", "専門的な技術を有する事業者に委託するため"),
        ("scope_of_work", "システムの運用・保守"),
        ("data_scope", "被保険者の資格情報"),
        ("capability", "同種業務の受託実績あり"),
        (
            "inspection_requirements",
            "区の求めに応じ立入調査を受け入れる",
        ),
        ("planned_amount", "12,000,000"),
        ("period_start", "2020-04-01"),
        ("period_end", "2099-03-31"),
        (
            "structure_chart.tiers[0].organisation_name",
            "株式会社テスト",
        ),
        ("structure_chart.tiers[0].responsible_person", "運用責任者"),
        ("structure_chart.tiers[0].manager", "運用管理者"),
        ("structure_chart.tiers[0].staff_count", "12"),
        ("structure_chart.tiers[0].work_location", "東京都千代田区"),
        ("supervision", "月次で作業報告を受ける"),
        ("safeguards", "組織的・人的・物理的・技術的安全管理措置"),
        ("nda_confirmed", "on"),
        ("action", action),
    ];
    form.extend(parents.iter().map(|p| ("parent_node_ids", *p)));
    form
}

async fn applications(app: &TestApp) -> u64 {
    subcontract_application::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

async fn a_contractor_files_an_application_through_the_form_and_submits_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let (mut jar, csrf) = open(&app, &cast.kokuhoren.token, "/applications/new").await;
    let html = page(jar.get(&app, "/applications/new").await, 200).await;
    assert!(
        html.contains(&format!(r#"value="{}""#, cast.tier1)),
        "its permitted node is offered"
    );
    assert!(html.contains(&format!(r#"value="{vendor}""#)));
    assert!(
        !html.contains(&format!(r#"value="{MEGURO}""#)),
        "no municipality as subcontractor"
    );
    for label in [
        "再委託する理由",
        "立入調査に係る要件",
        "監督体制",
        "事前許諾を求める",
        "従事者数",
    ] {
        assert!(html.contains(label), "{label}");
    }

    // Every invalid field is named next to it, and nothing is filed.
    let mut bad = application_form(&csrf, &vendor, &[], "submit");
    bad.retain(|(n, _)| !["reason", "period_end", "nda_confirmed"].contains(n));
    bad.extend([
        ("reason", "  "),
        ("period_end", "2099-02-30"),
        ("hosts_environment", "on"),
    ]);
    let html = page(jar.post(&app, "/applications", &bad).await, 422).await;
    for id in [
        "f-reason-error",
        "f-period_end-error",
        "f-nda_confirmed-error",
        "f-service_name-error",
        "f-parent_node_ids-error",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "{id}: {html}");
    }
    assert!(html.contains("確認が必要です"));
    assert_eq!(applications(&app).await, 0);
    // Wrong parents are the services' call: another organisation's node is refused at the field.
    let html = page(
        jar.post(
            &app,
            "/applications",
            &application_form(&csrf, &vendor, &[&cast.tier2], "draft"),
        )
        .await,
        422,
    )
    .await;
    assert!(html.contains(r#"id="f-parent_node_ids-error""#));
    assert_eq!(applications(&app).await, 0);

    let filed = jar
        .post(
            &app,
            "/applications",
            &application_form(&csrf, &vendor, &[&cast.tier1], "submit"),
        )
        .await;
    assert_eq!(filed.status(), 303, "{}", filed.text().await.unwrap());
    let location = filed.headers()[LOCATION].to_str().unwrap().to_owned();
    let id = location
        .trim_start_matches("/applications/")
        .trim_end_matches("?done=1");
    let view = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.kokuhoren.token)
        .await;
    assert_eq!(
        view["targets"][0]["state"], "decision",
        "submitted to 目黒区"
    );
    assert_eq!(view["fields"]["planned_amount"], 12_000_000);
    assert_eq!(
        view["fields"]["structure_chart"]["tiers"][0]["staff_count"],
        12
    );
}

async fn a_returned_application_is_corrected_in_the_form_and_submitted_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    let id = filed["id"].as_str().unwrap();
    let events = format!("/api/v1/applications/{id}/events");
    for (who, body) in [
        (&cast.kokuhoren.token, json!({ "event": "submit" })),
        (
            &cast.officer.token,
            json!({ "event": "return", "comment": "理由を具体的に" }),
        ),
    ] {
        assert_eq!(
            app.post_json_with_token(&events, who, &body).await.status(),
            200
        );
    }
    let (mut jar, _) = open(&app, &cast.kokuhoren.token, &format!("/applications/{id}")).await;
    let detail = page(jar.get(&app, &format!("/applications/{id}")).await, 200).await;
    assert!(detail.contains(&format!(r#"href="/applications/{id}/edit""#)));
    let html = page(
        jar.get(&app, &format!("/applications/{id}/edit")).await,
        200,
    )
    .await;
    let csrf = csrf_of(&html);
    let fields = application_fields("株式会社テスト");
    assert!(
        html.contains(fields["reason"].as_str().unwrap()),
        "the form shows what was filed"
    );
    assert!(html.contains(r#"name="version" value="1""#));
    // The officer may not open it.
    let mut officer = Jar::with_session(&cast.officer.token);
    page(
        officer.get(&app, &format!("/applications/{id}/edit")).await,
        409,
    )
    .await;

    let mut form = application_form(&csrf, "", &[], "submit");
    form.retain(|(n, _)| *n != "reason" && *n != "contractor_id");
    form.push(("reason", "運用の専門性と24時間監視体制が必要なため"));
    let stale: Vec<(&str, &str)> = form.iter().copied().chain([("version", "0")]).collect();
    let html = page(
        jar.post(&app, &format!("/applications/{id}/edit"), &stale)
            .await,
        409,
    )
    .await;
    assert!(html.contains("他の人によって更新されました"));
    let form: Vec<(&str, &str)> = form.into_iter().chain([("version", "1")]).collect();
    let saved = jar
        .post(&app, &format!("/applications/{id}/edit"), &form)
        .await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let view: Value = app
        .get_json(&format!("/api/v1/applications/{id}"), &cast.kokuhoren.token)
        .await;
    assert_eq!(
        view["fields"]["reason"],
        "運用の専門性と24時間監視体制が必要なため"
    );
    assert_eq!(view["targets"][0]["state"], "decision", "submitted again");
    page(
        jar.get(&app, &format!("/applications/{id}/edit")).await,
        409,
    )
    .await;
}

async fn a_contractors_home_is_its_portal_with_its_nodes_applications_and_missing_evidence(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let vendor = app.new_vendor(KOKUHOREN).await;
    let filed = app
        .file_application(&cast.kokuhoren.token, &vendor, &[&cast.tier1])
        .await;
    // 東京都国保連's structure chart goes missing; its NDA runs out in 10 days.
    evidence_record::Entity::delete_many()
        .filter(evidence_record::Column::OrganisationId.eq(KOKUHOREN))
        .filter(evidence_record::Column::Kind.is_in(["structure_chart", "nda"]))
        .exec(&app.db)
        .await
        .unwrap();
    let soon = app
        .state
        .clock
        .today_jst()
        .checked_add_days(Days::new(10))
        .unwrap();
    app.insert_evidence(
        KOKUHOREN,
        "nda",
        json!({ "counterparty_organisation_id": MEGURO }),
        soon,
        true,
    )
    .await;

    let mut jar = Jar::with_session(&cast.kokuhoren.token);
    let home = jar.get(&app, "/").await;
    assert_eq!(home.headers()[LOCATION], "/portal");
    let html = page(jar.get(&app, "/portal").await, 200).await;
    let requests_at = html.find("求められている証跡").unwrap();
    let requests =
        &html[requests_at..html[requests_at..].find("</section>").unwrap() + requests_at];
    assert!(
        requests.contains("履行体制図") && requests.contains("未提出"),
        "{requests}"
    );
    assert!(
        requests.contains("秘密保持契約") && requests.contains("期限が近い"),
        "{requests}"
    );
    assert!(
        !requests.contains("安全管理措置"),
        "met and not expiring: not asked"
    );
    assert!(html.contains(filed["number"].as_str().unwrap()));
    assert!(html.contains(&format!("/items/{}", cast.item)));
    assert!(html.contains("7日以内") || html.contains("30日以内"));
    // Nothing of another organisation: 国保中央会's node and evidence are not on this page.
    assert!(!html.contains(&format!("/organisations/{CHUOKAI}/evidence")));
    assert!(!html.contains(&format!("org-{CHUOKAI}")));
    // 国保中央会's portal has its own node and nothing of 東京都国保連's requests.
    let mut chuokai = Jar::with_session(&cast.chuokai.token);
    let html = page(chuokai.get(&app, "/portal").await, 200).await;
    assert!(
        html.contains(&format!("org-{CHUOKAI}")) && !html.contains(&format!("org-{KOKUHOREN}"))
    );
    assert!(!html.contains("履行体制図"), "its own evidence is complete");
    assert!(!html.contains(filed["number"].as_str().unwrap()));
    // A municipal user's home is the inbox, and its portal is empty.
    let mut outsider = Jar::with_session(&cast.outsider.token);
    assert_eq!(outsider.get(&app, "/").await.headers()[LOCATION], "/inbox");
    assert!(page(outsider.get(&app, "/portal").await, 200)
        .await
        .contains(r#"id="portal-empty""#));
    let _ = SHINJUKU;
}

async fn an_admin_reads_the_workflow_definitions_with_their_versions_and_diagrams(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("meguro_admin", &[(MEGURO, "admin")]).await;
    let mut jar = Jar::with_session(&admin.token);
    let html = page(jar.get(&app, "/admin/workflows").await, 200).await;
    assert!(
        html.contains(r#"id="wf-subcontract_permission-1""#),
        "{html}"
    );
    assert!(html.contains("最新版"));
    let diagram = "/api/v1/workflows/subcontract_permission/1/diagram.svg?lang=ja";
    // Templates escape `=` too; the browser reads the entity back.
    let escaped = diagram.replace('=', "&#x3D;");
    assert!(html.contains(&format!(r#"src="{escaped}""#)), "{html}");
    let svg = jar.get(&app, diagram).await;
    assert_eq!(svg.status(), 200);
    assert!(svg.text().await.unwrap().contains("<svg"));
    // Every transition with its roles and guards.
    for text in ["requirements_met", "chain_in_force", "課長"] {
        assert!(html.contains(text), "{text}");
    }
    // Anyone else: as if it did not exist.
    let mut officer = Jar::with_session(&cast.officer.token);
    page(officer.get(&app, "/admin/workflows").await, 404).await;
    let inbox = page(officer.get(&app, "/inbox").await, 200).await;
    assert!(
        !inbox.contains("/admin/workflows"),
        "no link for a non-admin"
    );
}

/// Signs in through the form in a fresh browser.
async fn signed_in(app: &TestApp, login: &str) -> Jar {
    let mut jar = Jar::default();
    let csrf = csrf_of(&page(jar.get(app, "/sign-in").await, 200).await);
    let response = jar
        .post(
            app,
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("login", login),
                ("password", crate::helpers::PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    jar
}

async fn the_language_a_user_chooses_is_stored_on_the_user_and_follows_them(backend: Backend) {
    let app = spawn_app(backend).await;
    Cast::create(&app).await;
    let mut first = signed_in(&app, "meguro_officer").await;
    assert!(
        first.get_value("itaku_lang").is_none(),
        "Japanese until chosen"
    );
    let csrf = csrf_of(&page(first.get(&app, "/inbox").await, 200).await);
    let chosen = first
        .post(
            &app,
            "/language",
            &[("csrf", &csrf), ("lang", "en"), ("back", "/evidence")],
        )
        .await;
    assert_eq!(chosen.headers()[LOCATION], "/evidence");
    let stored = entity::user::Entity::find()
        .filter(entity::user::Column::Login.eq("meguro_officer"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.language.as_deref(), Some("en"));
    // Another browser: English from the sign-in on.
    let mut second = signed_in(&app, "meguro_officer").await;
    assert_eq!(second.get_value("itaku_lang"), Some("en"));
    let html = page(second.get(&app, "/evidence").await, 200).await;
    assert!(
        html.contains(r#"<html lang="en">"#) && html.contains("Evidence expiring within 90 days")
    );
    // Someone else keeps Japanese.
    let mut other = signed_in(&app, "meguro_chief").await;
    assert!(other.get_value("itaku_lang").is_none());
    assert!(page(other.get(&app, "/inbox").await, 200)
        .await
        .contains(r#"<html lang="ja">"#));
}

on_both_backends!(
    the_language_a_user_chooses_is_stored_on_the_user_and_follows_them,
    an_admin_reads_the_workflow_definitions_with_their_versions_and_diagrams,
    a_contractor_records_evidence_with_files_and_the_officer_verifies_then_revokes_it,
    the_evidence_form_shows_every_error_next_to_its_field_and_stores_nothing,
    the_expiry_calendar_lists_what_expires_within_90_days_nearest_first_with_markers_in_words,
    a_contractor_gets_404_for_another_organisations_evidence_page,
    names_like_markup_render_as_text_on_the_evidence_pages_and_the_portal,
    a_contractor_files_an_application_through_the_form_and_submits_it,
    a_returned_application_is_corrected_in_the_form_and_submitted_again,
    a_contractors_home_is_its_portal_with_its_nodes_applications_and_missing_evidence,
);
