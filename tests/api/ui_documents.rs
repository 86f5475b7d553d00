//! The documents screen (`/documents`: the links to every generated document, recording and
//! withdrawing assessments), the structure chart screen with its versions, and the ISMAP list
//! imported through its form with the flag it puts on the evidence library.

use entity::{chart_version, ismap_import, pia_assessment};
use reqwest::header::LOCATION;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

use crate::documents::{act_ok, at_decision_reaching_500, record_inputs};
use crate::helpers::{assert_api_error, day, spawn_app, Backend, Cast, TestApp, CHUOKAI, MEGURO};
use crate::on_both_backends;
use crate::ui::{csrf_of, page, Jar};

async fn assessments(app: &TestApp) -> u64 {
    pia_assessment::Entity::find().count(&app.db).await.unwrap()
}

/// The documents page as the jar's user sees it, and its CSRF token.
async fn documents_page(app: &TestApp, jar: &mut Jar) -> (String, String) {
    let html = page(jar.get(app, "/documents").await, 200).await;
    let csrf = csrf_of(&html);
    (html, csrf)
}

/// A `303` to the documents page with `done`.
fn assert_done(response: &reqwest::Response, done: &str) {
    assert_eq!(response.status(), 303);
    let location = response.headers()[LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("/documents?municipality=") && location.contains(done),
        "{location}"
    );
}

/// The text of the element with `id`, up to the first closing tag.
fn element<'a>(html: &'a str, id: &str) -> &'a str {
    up_to(html, id, "</")
}

/// The text from the element with `id` up to `end`.
fn up_to<'a>(html: &'a str, id: &str, end: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("{id} in {html}"));
    let stop = html[start..].find(end).unwrap() + start;
    &html[start..stop]
}

async fn an_officer_records_an_assessment_and_withdraws_it_on_the_documents_screen(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    record_inputs(&app, &cast).await;
    let big = at_decision_reaching_500(&app, &cast).await;
    let node = big["targets"][0]["node_id"].as_str().unwrap();
    let mut jar = Jar::with_session(&cast.officer.token);
    let (html, csrf) = documents_page(&app, &mut jar).await;

    // The PIA file with its documents, the item with its committee submissions and chart.
    assert!(html.contains("国民健康保険関係情報ファイル"));
    // Handlebars escapes `=` and `&` in attributes; the browser reads them back.
    let html = html.replace("&#x3D;", "=").replace("&amp;", "&");
    let pia = element(&html, "pia-html-0");
    assert!(
        pia.contains("/api/v1/documents/pia?municipality=meguro&pia_file=%E5%9B%BD")
            && pia.contains("format=html"),
        "{pia}"
    );
    for id in [
        "pia-xlsx-0",
        "pia-csv-0",
        "threshold-html-0",
        "changes-html-0",
        "changes-csv-0",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains(&format!(
        "/api/v1/documents/committee?node={}&format=html",
        cast.tier1
    )));
    assert!(html.contains(&format!("/items/{}/structure-chart", cast.item)));
    assert!(html.contains("id=\"nav-documents\""), "in the header");
    // The links work for the same session.
    let link = pia.split("href=\"").nth(1).unwrap();
    let link = &link[..link.find('"').unwrap()];
    let print = jar.get(&app, link).await;
    assert_eq!(print.status(), 200);
    assert!(print
        .text()
        .await
        .unwrap()
        .contains("特定個人情報ファイルの取扱いの委託"));
    // The pending subcontract is blocked, with the reason the permission would be refused for.
    assert!(element(&html, "awaiting").len() > 10);
    assert!(html.contains("事前"));

    // Without the CSRF token: refused, nothing written.
    let form = [
        ("municipality", MEGURO),
        ("node_id", node),
        ("assessed_on", "2026-01-15"),
        ("summary", "全項目評価を実施した。"),
    ];
    page(jar.post(&app, "/documents/assessments", &form).await, 403).await;
    assert_eq!(assessments(&app).await, 0);

    // A bad date and a blank summary: each error beside its field, nothing written.
    let bad = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("node_id", node),
        ("assessed_on", "15/01/2026"),
        ("summary", "  "),
    ];
    let html = page(jar.post(&app, "/documents/assessments", &bad).await, 422).await;
    assert!(html.contains("id=\"f-assessed_on-error\""), "{html}");
    assert!(html.contains("id=\"f-summary-error\""), "{html}");
    assert!(html.contains("id=\"error-summary\""));
    assert_eq!(assessments(&app).await, 0);
    // A date in the future: the service's own reason, beside the field.
    let future = (app.state.clock.today_jst() + chrono::Duration::days(3)).to_string();
    let late = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("node_id", node),
        ("assessed_on", future.as_str()),
        ("summary", "全項目評価を実施した。"),
    ];
    let html = page(jar.post(&app, "/documents/assessments", &late).await, 422).await;
    assert!(element(&html, "f-assessed_on-error").contains("未来の日付"));
    assert_eq!(assessments(&app).await, 0);

    let mut good = form.to_vec();
    good.push(("csrf", csrf.as_str()));
    let recorded = jar.post(&app, "/documents/assessments", &good).await;
    assert_done(&recorded, "done=recorded");
    assert_eq!(assessments(&app).await, 1);
    let (html, _) = documents_page(&app, &mut jar).await;
    assert!(html.contains("id=\"awaiting-none\""), "no longer blocked");
    assert!(html.contains("全項目評価を実施した。"));
    let id = pia_assessment::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    let withdraw = format!("/documents/assessments/{id}/withdraw");

    // Withdrawing: without the token refused; without a reason the error is beside it.
    let reason = "別の申請の評価を誤って記録したため";
    let no_token = [("municipality", MEGURO), ("reason", reason)];
    page(jar.post(&app, &withdraw, &no_token).await, 403).await;
    let blank = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("reason", " "),
    ];
    let html = page(jar.post(&app, &withdraw, &blank).await, 422).await;
    assert!(
        html.contains(&format!("id=\"withdraw-reason-{id}-error\"")),
        "{html}"
    );
    let row = pia_assessment::Entity::find_by_id(&id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.withdrawn_at.is_none(), "nothing changed");

    let done = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("reason", reason),
    ];
    assert_done(&jar.post(&app, &withdraw, &done).await, "done=withdrawn");
    let (html, _) = documents_page(&app, &mut jar).await;
    let row = up_to(&html, &format!("assessment-{id}"), "</tr>");
    assert!(row.contains("取下げ済み") && !row.contains("withdraw-button"));
    assert!(html.contains(reason), "the reason is kept and shown");
    assert!(
        element(&html, "awaiting").len() > 10 && html.contains("取り下げられています"),
        "blocked again, and the refusal names the withdrawal"
    );
    assert_eq!(assessments(&app).await, 1, "kept, never deleted");
    // A second withdrawal of the same record (a stale page): the conflict shown in its row.
    let html = page(jar.post(&app, &withdraw, &done).await, 409).await;
    let row = up_to(&html, &format!("assessment-{id}"), "</tr>");
    assert!(row.contains("既に取り下げられています"), "{row}");
}

async fn only_the_municipalitys_staff_see_its_documents_and_auditors_only_read_them(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    record_inputs(&app, &cast).await;
    let big = at_decision_reaching_500(&app, &cast).await;
    let node = big["targets"][0]["node_id"].as_str().unwrap();

    // A contractor has no documents screen; another municipality cannot ask for this one.
    let mut contractor = Jar::with_session(&cast.kokuhoren.token);
    page(contractor.get(&app, "/documents").await, 404).await;
    page(
        contractor
            .get(&app, &format!("/documents?municipality={MEGURO}"))
            .await,
        404,
    )
    .await;
    let mut outsider = Jar::with_session(&cast.outsider.token);
    page(
        outsider
            .get(&app, &format!("/documents?municipality={MEGURO}"))
            .await,
        404,
    )
    .await;
    let (own, csrf) = documents_page(&app, &mut outsider).await;
    assert!(own.contains("新宿区") && !own.contains("国民健康保険関係情報ファイル"));
    let form = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("node_id", node),
        ("assessed_on", "2026-01-15"),
        ("summary", "評価した。"),
    ];
    page(
        outsider.post(&app, "/documents/assessments", &form).await,
        404,
    )
    .await;
    let mut own_form = form.to_vec();
    own_form[1] = ("municipality", "shinjuku");
    page(
        outsider
            .post(&app, "/documents/assessments", &own_form)
            .await,
        404,
    )
    .await;
    assert_eq!(assessments(&app).await, 0);

    // The auditor reads everything and is offered no form; a post is refused.
    let mut jar = Jar::with_session(&auditor.token);
    let (html, csrf) = documents_page(&app, &mut jar).await;
    assert!(html.contains("id=\"pia-html-0\"") && html.contains("id=\"awaiting\""));
    assert!(!html.contains("id=\"record-assessment\""));
    let mut form = form.to_vec();
    form[0] = ("csrf", csrf.as_str());
    page(jar.post(&app, "/documents/assessments", &form).await, 403).await;
    assert_eq!(assessments(&app).await, 0);

    // Recorded through the API; the auditor sees it without a withdraw button.
    let recorded = app
        .post_json_with_token(
            "/api/v1/documents/assessments",
            &cast.officer.token,
            &json!({ "node_id": node, "assessed_on": "2026-01-15", "summary": "評価した。" }),
        )
        .await;
    assert_eq!(recorded.status(), 201);
    let recorded: Value = recorded.json().await.unwrap();
    let id = recorded["id"].as_str().unwrap();
    let (html, _) = documents_page(&app, &mut jar).await;
    assert!(html.contains(&format!("id=\"assessment-{id}\"")));
    assert!(!html.contains("withdraw-button"));
    let path = format!("/documents/assessments/{id}/withdraw");
    let reason = [
        ("csrf", csrf.as_str()),
        ("municipality", MEGURO),
        ("reason", "誤り"),
    ];
    page(jar.post(&app, &path, &reason).await, 403).await;
    let row = pia_assessment::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.withdrawn_at.is_none());
}

async fn versions(app: &TestApp) -> u64 {
    chart_version::Entity::find().count(&app.db).await.unwrap()
}

async fn an_officer_creates_a_structure_chart_version_and_marks_it_submitted_on_its_screen(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    let chart = format!("/items/{}/structure-chart", cast.item);
    let mut jar = Jar::with_session(&cast.officer.token);
    let html = page(jar.get(&app, &chart).await, 200).await;
    assert!(html.contains("id=\"no-versions\"") && html.contains("<svg"));
    let csrf = csrf_of(&html);
    let item_page = page(jar.get(&app, &format!("/items/{}", cast.item)).await, 200).await;
    assert!(
        item_page.contains(&format!("href=\"{chart}\"")),
        "linked from the item"
    );

    // Without the token: refused, nothing stored.
    let create = format!("{chart}/versions");
    page(jar.post(&app, &create, &[]).await, 403).await;
    assert_eq!(versions(&app).await, 0);

    let created = jar.post(&app, &create, &[("csrf", csrf.as_str())]).await;
    assert_eq!(created.status(), 303);
    assert_eq!(
        created.headers()[LOCATION].to_str().unwrap(),
        format!("{chart}?done=created")
    );
    let again = jar.post(&app, &create, &[("csrf", csrf.as_str())]).await;
    assert!(again.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("done=unchanged"));
    assert_eq!(
        versions(&app).await,
        1,
        "nothing changed: no second version"
    );
    let html = page(jar.get(&app, &format!("{chart}?done=created")).await, 200).await;
    assert!(html.contains("id=\"submit-version-1\"") && html.contains("id=\"done\""));

    let submit = format!("{chart}/versions/1/submit");
    page(jar.post(&app, &submit, &[("version", "1")]).await, 403).await;
    let submitted = jar
        .post(&app, &submit, &[("csrf", csrf.as_str()), ("version", "1")])
        .await;
    assert_eq!(submitted.status(), 303);
    let row = chart_version::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.submitted_at.is_some());
    // The same (stale) form again: the refusal is shown, nothing changes.
    let html = page(
        jar.post(&app, &submit, &[("csrf", csrf.as_str()), ("version", "1")])
            .await,
        409,
    )
    .await;
    assert!(element(&html, "chart-error").contains("提出済み"));

    // The version's own view: its SVG, submitted, its trail.
    let html = page(jar.get(&app, &format!("{chart}/versions/1")).await, 200).await;
    assert!(html.contains("<svg"));
    assert!(!element(&html, "version-submitted").contains("未提出"));
    assert!(element(&html, "version-trail").contains("版を作成"));
    assert!(!html.contains("id=\"submit-version\""));

    // A contractor of the chain and another municipality do not see the chart; the auditor
    // reads it without buttons and cannot post.
    for token in [&cast.kokuhoren.token, &cast.outsider.token] {
        let mut other = Jar::with_session(token);
        page(other.get(&app, &chart).await, 404).await;
        page(other.get(&app, &format!("{chart}/versions/1")).await, 404).await;
    }
    let mut reader = Jar::with_session(&auditor.token);
    let html = page(reader.get(&app, &chart).await, 200).await;
    assert!(!html.contains("id=\"create-version\""));
    let csrf = csrf_of(&html);
    page(
        reader.post(&app, &create, &[("csrf", csrf.as_str())]).await,
        403,
    )
    .await;
    assert_eq!(versions(&app).await, 1);
}

/// The evidence library of `org` flags its ISMAP record (expiry 2027-03-31) for the current
/// list's expiry, 2028-03-31.
async fn assert_expiry_flag_in_library(app: &TestApp, jar: &mut Jar, org: &str) {
    let library = page(
        jar.get(app, &format!("/organisations/{org}/evidence"))
            .await,
        200,
    )
    .await;
    let flags = &library[library.find("ismap-flags").expect("the flag")..];
    let flags = &flags[..flags.find("</div>").unwrap()];
    assert!(
        flags.contains("有効期限") && flags.contains("証跡: 2027-03-31、リスト: 2028-03-31"),
        "{flags}"
    );
}

async fn an_admin_imports_the_ismap_list_through_the_form_and_the_library_shows_the_flag(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("ismap_admin", &[(MEGURO, "admin")]).await;
    let record = app
        .insert_evidence(
            CHUOKAI,
            "ismap",
            json!({"kind": "ismap", "registration_number": "C23-0101-1",
                   "service_name": "Example Cloud", "provider": "クラウド事業者株式会社",
                   "registration_date": "2023-06-01", "expiry_date": "2027-03-31",
                   "scope_statement": "IaaS"}),
            day(2099, 3, 31),
            true,
        )
        .await;
    let list = "登録番号,サービス名称,事業者名,登録日,有効期限,備考\r\n\
        C23-0101-1,Example Cloud,クラウド事業者株式会社,2023/6/1,2028/3/31,\r\n\
        C24-0207-1,サンプルSaaS,サンプル株式会社,2024/4/1,2028/3/31,\r\n";
    let form = |csrf: Option<&str>, bytes: &[u8]| {
        let mut form = reqwest::multipart::Form::new();
        if let Some(token) = csrf {
            form = form.text("csrf", token.to_owned());
        }
        form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("ismap.csv"),
        )
    };

    let mut jar = Jar::with_session(&admin.token);
    let html = page(jar.get(&app, "/ismap").await, 200).await;
    let csrf = csrf_of(&html);
    // Without the token first: refused before the file is read, nothing imported.
    page(
        jar.post_multipart(&app, "/ismap", form(None, list.as_bytes()))
            .await,
        403,
    )
    .await;
    // A bad list: its errors shown, nothing imported.
    let html = page(
        jar.post_multipart(
            &app,
            "/ismap",
            form(Some(&csrf), "登録番号,サービス名称\r\nC1,x\r\n".as_bytes()),
        )
        .await,
        422,
    )
    .await;
    assert!(html.contains("id=\"import-errors\""));
    assert_eq!(
        ismap_import::Entity::find().count(&app.db).await.unwrap(),
        0
    );

    let imported = jar
        .post_multipart(&app, "/ismap", form(Some(&csrf), list.as_bytes()))
        .await;
    assert_eq!(imported.status(), 303);
    let location = imported.headers()[LOCATION].to_str().unwrap().to_owned();
    let html = page(jar.get(&app, &location).await, 200).await;
    assert!(html.contains("id=\"done\"") && html.contains("C24-0207-1"));
    assert_eq!(
        ismap_import::Entity::find().count(&app.db).await.unwrap(),
        1
    );

    // The record states another expiry than the list: flagged in the library, not changed.
    let mut officer = Jar::with_session(&cast.officer.token);
    assert_expiry_flag_in_library(&app, &mut officer, CHUOKAI).await;
    let api = app
        .get_json(&format!("/api/v1/evidence/{record}"), &cast.officer.token)
        .await;
    assert_eq!(api["ismap_flags"][0]["code"], "ismap_expiry_differs");
    assert_eq!(api["status"], "verified");

    // A contractor sees no list and may not import.
    let mut contractor = Jar::with_session(&cast.kokuhoren.token);
    page(contractor.get(&app, "/ismap").await, 404).await;
}

/// The withdrawal through the API and the permission decided after a fresh record: the screen
/// follows the permission.
async fn a_permission_decided_after_a_fresh_assessment_leaves_nothing_awaiting(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    record_inputs(&app, &cast).await;
    let big = at_decision_reaching_500(&app, &cast).await;
    let node = big["targets"][0]["node_id"].as_str().unwrap();
    let body = json!({ "node_id": node, "assessed_on": "2026-01-15", "summary": "評価した。" });
    let recorded = app
        .post_json_with_token("/api/v1/documents/assessments", &cast.officer.token, &body)
        .await;
    assert_eq!(recorded.status(), 201);
    act_ok(
        &app,
        &cast.manager.token,
        big["id"].as_str().unwrap(),
        "approve",
    )
    .await;
    let mut jar = Jar::with_session(&cast.officer.token);
    let (html, _) = documents_page(&app, &mut jar).await;
    assert!(html.contains("id=\"awaiting-none\""));
    assert!(
        !html.contains("withdraw-button"),
        "a decided permission keeps its assessment"
    );
    let refused = app
        .post_json_with_token("/api/v1/documents/assessments", &cast.officer.token, &body)
        .await;
    assert_api_error(refused, 422, "validation_failed").await;
}

async fn the_demo_has_an_ismap_list_with_a_difference_and_a_flagged_record(backend: Backend) {
    let app = spawn_app(backend).await;
    itaku::demo::seed(&app.state).await.unwrap();
    let signed_in = app.sign_in("meguro.officer", "itaku-demo-2026").await;
    let body: Value = signed_in.json().await.unwrap();
    let mut jar = Jar::with_session(body["token"].as_str().unwrap());
    let html = page(jar.get(&app, "/ismap").await, 200).await;
    let imports = up_to(&html, "imports", "</table>");
    assert_eq!(
        imports.matches("<tr>").count(),
        3,
        "a header and two imports"
    );
    assert!(up_to(&html, "diff", "</section>").contains("C26-0311-1"));
    assert_expiry_flag_in_library(&app, &mut jar, "cloud_provider").await;
    // The documents screen of the demo: the cloud provider waits for its assessment.
    let html = page(jar.get(&app, "/documents").await, 200).await;
    assert!(up_to(&html, "awaiting", "</ul>").contains("クラウド事業者株式会社"));
}

on_both_backends!(
    the_demo_has_an_ismap_list_with_a_difference_and_a_flagged_record,
    an_officer_records_an_assessment_and_withdraws_it_on_the_documents_screen,
    only_the_municipalitys_staff_see_its_documents_and_auditors_only_read_them,
    an_officer_creates_a_structure_chart_version_and_marks_it_submitted_on_its_screen,
    an_admin_imports_the_ismap_list_through_the_form_and_the_library_shows_the_flag,
    a_permission_decided_after_a_fresh_assessment_leaves_nothing_awaiting,
);
