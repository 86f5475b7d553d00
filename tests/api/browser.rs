//! End-to-end tests in a real headless Chromium, driven through chromedriver (WebDriver).
//!
//! `scripts/test.sh` starts chromedriver and sets `BROWSER_TEST_WEBDRIVER_URL` and
//! `BROWSER_TEST_CHROMIUM`; without them these tests fail (they never skip). Chromium runs
//! with every background network feature off, so nothing leaves the machine. Screenshots of
//! the main screens are saved under `$CARGO_TARGET_DIR/ui-screenshots/`.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use entity::evidence_record;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{spawn_app, Backend, Cast, TestApp, KOKUHOREN, MEGURO, PASSWORD};
use crate::ui::thin_application_at_the_managers_step;

/// A headless Chromium with a fresh profile, closed when the test ends.
struct Browser {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(app: &TestApp) -> Self {
        let webdriver = std::env::var("BROWSER_TEST_WEBDRIVER_URL").expect(
            "BROWSER_TEST_WEBDRIVER_URL is not set: run the browser tests through scripts/test.sh, \
             which starts chromedriver (apt-get install -y chromium chromium-driver)",
        );
        let binary =
            std::env::var("BROWSER_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1280,1024",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("a Chromium session from chromedriver");
        Self {
            client,
            base: app.address.clone(),
            _profile: profile,
        }
    }

    async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The element `css` selects, once it is there (at most ten seconds).
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} not found: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    /// Sets a date field's value (typing into one depends on the browser's locale).
    async fn set_date(&self, css: &str, value: &str) {
        let element = self.element(css).await;
        self.client
            .execute(
                "arguments[0].value = arguments[1];",
                vec![serde_json::to_value(&element).unwrap(), json!(value)],
            )
            .await
            .unwrap();
    }

    /// Types into a field (for a file input: the path of the file to upload).
    async fn type_into(&self, css: &str, text: &str) {
        self.element(css).await.send_keys(text).await.unwrap();
    }

    async fn sign_in(&self, login: &str) {
        self.go("/sign-in").await;
        let field = self.client.find(Locator::Id("login")).await.unwrap();
        field.send_keys(login).await.unwrap();
        let password = self.client.find(Locator::Id("password")).await.unwrap();
        password.send_keys(PASSWORD).await.unwrap();
        self.click("#sign-in").await;
        // The inbox greets the user by name.
        assert_eq!(self.text("#user-name").await, format!("{login} さん"));
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.text("#sign-in").await;
    }

    async fn screenshot(&self, name: &str) {
        let dir = std::path::Path::new(
            &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
        )
        .join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

#[tokio::test]
async fn an_application_is_approved_in_the_browser_by_the_officer_the_chief_and_the_manager() {
    let app = spawn_app(Backend::Sqlite).await;
    let cast = Cast::create(&app).await;
    cast.submitted_tier2(&app).await;
    let browser = Browser::open(&app).await;

    for (login, step) in [
        ("meguro_officer", "officer"),
        ("meguro_chief", "chief"),
        ("meguro_manager", "manager"),
    ] {
        browser.sign_in(login).await;
        assert_eq!(browser.text("#count-approve").await, "1", "{login}'s inbox");
        if step == "officer" {
            browser.screenshot("inbox").await;
        }
        browser.click("#inbox tbody a").await;
        browser.text("#app-number").await;
        if step == "manager" {
            browser.screenshot("application").await;
        }
        browser.click("#event-approve").await;
        assert!(!browser.text("#done").await.is_empty(), "{login} approved");
        browser.sign_out().await;
    }

    // The permission is recorded, and the contractor sees it.
    browser.sign_in("kokuhoren").await;
    browser.go("/inbox").await;
    assert_eq!(browser.text("#count-total").await, "0");
    browser.go(&format!("/items/{}", cast.item)).await;
    let nodes = browser.text("#nodes").await;
    assert!(
        nodes.contains("株式会社テスト") && nodes.contains("許諾"),
        "{nodes}"
    );
    browser.screenshot("chain").await;
    browser.close().await;
}

#[tokio::test]
async fn the_manager_sees_every_unmet_requirement_when_evidence_went_missing_before_the_decision() {
    let app = spawn_app(Backend::Sqlite).await;
    let cast = Cast::create(&app).await;
    let id = thin_application_at_the_managers_step(&app, &cast).await;
    app.give_evidence("thin", KOKUHOREN, None).await;
    let browser = Browser::open(&app).await;
    browser.sign_in("meguro_manager").await;
    browser.go(&format!("/applications/{id}")).await;
    browser.text("#event-approve").await;
    // While the manager reads the page, the subcontractor's evidence disappears.
    evidence_record::Entity::delete_many()
        .filter(evidence_record::Column::OrganisationId.eq("thin"))
        .exec(&app.db)
        .await
        .unwrap();
    browser.click("#event-approve").await;
    let refusal = browser.text("#refusal").await;
    for requirement in [
        "親階層との秘密保持契約",
        "履行体制図",
        "安全管理措置",
        "ISO/IEC 27001",
    ] {
        assert!(refusal.contains(requirement), "{requirement} in {refusal}");
    }
    browser.screenshot("refusal").await;
    browser.close().await;
}

#[tokio::test]
async fn a_contractor_uploads_evidence_and_submits_an_application_and_the_officer_verifies_it() {
    let app = spawn_app(Backend::Sqlite).await;
    Cast::create(&app).await;
    // A new subcontractor with every evidence but its structure chart.
    app.create_organisation_of_kind("newco", "vendor", "株式会社新規")
        .await;
    let until = crate::helpers::day(2099, 3, 31);
    for (kind, fields) in [
        ("nda", json!({ "counterparty_organisation_id": KOKUHOREN })),
        ("safeguards", json!({})),
        ("iso27001", json!({ "covered_services": [] })),
    ] {
        app.insert_evidence("newco", kind, fields, until, true)
            .await;
    }
    // Something of 東京都国保連's that expires soon, for the calendar.
    let soon = app
        .state
        .clock
        .today_jst()
        .checked_add_days(chrono::Days::new(20))
        .unwrap();
    app.insert_evidence(KOKUHOREN, "privacy_mark", json!({}), soon, true)
        .await;
    let pdf_dir = tempfile::tempdir().unwrap();
    let pdf = pdf_dir.path().join("structure-chart.pdf");
    std::fs::write(&pdf, crate::ui_screens::PDF).unwrap();
    let browser = Browser::open(&app).await;

    // The contractor lands on its portal.
    browser.sign_in("kokuhoren").await;
    browser.text("#org-tokyo_kokuhoren").await;
    browser.screenshot("portal").await;

    // It files the application for the subcontractor as a draft.
    browser.go("/portal").await;
    browser.click("#new-application").await;
    browser.click("#f-contractor_id option[value=newco]").await;
    browser.click("#f-parent_node_ids-0").await;
    for (field, value) in [
        ("reason", "専門的な技術を有する事業者に委託するため"),
        ("scope_of_work", "システムの運用・保守"),
        ("data_scope", "被保険者の資格情報"),
        ("capability", "同種業務の受託実績あり"),
        (
            "inspection_requirements",
            "区の求めに応じ立入調査を受け入れる",
        ),
        ("structure_chart-tiers-0--organisation_name", "株式会社新規"),
        ("structure_chart-tiers-0--responsible_person", "運用責任者"),
        ("structure_chart-tiers-0--manager", "運用管理者"),
        ("structure_chart-tiers-0--staff_count", "8"),
        ("structure_chart-tiers-0--work_location", "東京都港区"),
        ("supervision", "月次で作業報告を受ける"),
        ("safeguards", "組織的・人的・物理的・技術的安全管理措置"),
    ] {
        browser.type_into(&format!("#f-{field}"), value).await;
    }
    browser.set_date("#f-period_start", "2020-04-01").await;
    browser.set_date("#f-period_end", "2099-03-31").await;
    browser.click("#f-nda_confirmed").await;
    browser.screenshot("application-form").await;
    browser.click("#save-draft").await;
    assert!(!browser.text("#done").await.is_empty(), "saved");
    // Its page without `?done=1`, so that the next notice is the submission's own.
    let application = browser
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .to_owned();
    // Then records the subcontractor's structure chart with its file, and submits.
    browser.go("/organisations/newco/evidence").await;
    browser.click("#new-evidence").await;
    browser
        .click("#kind-choice option[value=structure_chart]")
        .await;
    browser.click("#choose-kind").await;
    for (field, value) in [
        ("organisation_name", "株式会社新規"),
        ("responsible_person", "運用責任者"),
        ("manager", "運用管理者"),
        ("staff_count", "8"),
        ("work_location", "東京都港区"),
        ("supervised_by", "東京都国民健康保険団体連合会"),
    ] {
        browser
            .type_into(&format!("#f-tiers-0--{field}"), value)
            .await;
    }
    browser.type_into("#f-file", pdf.to_str().unwrap()).await;
    browser.screenshot("evidence-form").await;
    browser.click("#save-evidence").await;
    assert!(!browser.text("#done").await.is_empty());
    let library = browser.text("main").await;
    assert!(
        library.contains("structure-chart.pdf") && library.contains("未確認"),
        "{library}"
    );
    browser.screenshot("evidence-library").await;

    browser.go(&application).await;
    assert!(browser.client.find(Locator::Id("done")).await.is_err());
    browser.click("#event-submit").await;
    assert!(!browser.text("#done").await.is_empty(), "submitted");
    browser.sign_out().await;

    // The officer sees what is missing before a decision, and verifies the evidence.
    browser.sign_in("meguro_officer").await;
    browser.go("/inbox").await;
    browser.click("#inbox tbody a").await;
    let unmet = browser.text("ul.unmet").await;
    assert!(unmet.contains("履行体制図"), "{unmet}");
    browser.screenshot("missing-evidence").await;
    browser
        .click("table.checklist a[href='/organisations/newco/evidence']")
        .await;
    browser.click("button.verify").await;
    assert!(!browser.text("#done").await.is_empty(), "verified");
    browser.screenshot("evidence-verified").await;
    browser.go("/inbox").await;
    browser.click("#inbox tbody a").await;
    browser.text("#event-approve").await;
    let page = browser.text("main").await;
    assert!(
        !page.contains("現時点で満たされていない要件"),
        "nothing missing: {page}"
    );

    // The overview's calendar marks what expires within 30 days in words.
    browser.go("/evidence").await;
    let calendar = browser.text("#calendar").await;
    assert!(calendar.contains("30日以内"), "{calendar}");
    browser.screenshot("evidence-overview").await;
    browser.sign_out().await;

    // The administrator reads the workflow definitions.
    app.person("meguro_admin", &[(MEGURO, "admin")]).await;
    browser.sign_in("meguro_admin").await;
    browser.go("/admin/workflows").await;
    browser.text("#wf-subcontract_permission-1").await;
    browser.screenshot("admin-workflows").await;
    browser.close().await;
}

#[tokio::test]
async fn a_contractor_opens_its_overdue_training_from_the_calendar_records_it_and_the_officer_accepts_it(
) {
    let (app, _cast) = crate::ui_obligations::after_the_training_was_due(Backend::Sqlite).await;
    let training = crate::ui_obligations::training_of(&app, KOKUHOREN).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("attendance-list.pdf");
    std::fs::write(&list, crate::ui_screens::PDF).unwrap();
    let browser = Browser::open(&app).await;

    // The contractor finds the overdue training in March's calendar, marked in words.
    browser.sign_in("kokuhoren").await;
    browser.click("header nav a[href='/calendar']").await;
    assert!(browser.text("#month .today").await.contains("今日"));
    browser.click("#prev-month").await;
    let day = browser.text("#day-2027-03-31").await;
    assert!(
        day.contains("【期限超過】") && day.contains("研修の実施と受講記録の提出"),
        "{day}"
    );
    browser.screenshot("calendar").await;
    browser
        .click(&format!(
            "#day-2027-03-31 a[href='/obligations/{}']",
            training.id
        ))
        .await;

    // It records the training with the attendance list.
    assert!(browser.text("#due").await.contains("【期限超過】"));
    browser.set_date("#f-date", "2027-03-25").await;
    browser
        .type_into("#f-topic", "特定個人情報の適正な取扱い")
        .await;
    browser.type_into("#f-attendee_count", "12").await;
    browser.type_into("#f-file", list.to_str().unwrap()).await;
    browser.screenshot("obligation-form").await;
    browser.click("#submit-record").await;
    assert!(!browser.text("#done").await.is_empty(), "submitted");
    assert_eq!(browser.text("#status").await, "確認待ち");
    assert_eq!(browser.text("#record-file").await, "attendance-list.pdf");
    browser.sign_out().await;

    // The officer opens it from the inbox and accepts it.
    browser.sign_in("meguro_officer").await;
    browser.go("/inbox").await;
    browser
        .click(&format!(
            "#obligations a[href='/obligations/{}']",
            training.id
        ))
        .await;
    browser.screenshot("obligation-decision").await;
    browser.click("#accept").await;
    assert!(!browser.text("#done").await.is_empty(), "accepted");
    assert_eq!(browser.text("#status").await, "完了");
    let history = browser.text("#history").await;
    assert!(
        history.contains("記録の提出") && history.contains("受理"),
        "{history}"
    );
    browser.screenshot("obligation-accepted").await;
    browser.close().await;
}

#[tokio::test]
async fn the_manager_returns_to_the_officer_and_a_deputy_decides_for_the_absent_manager() {
    let app = spawn_app(Backend::Sqlite).await;
    let cast = Cast::create(&app).await;
    let deputy = app.person("meguro_deputy", &[(MEGURO, "chief")]).await;
    itaku::services::users::add_deputy(
        &app.db,
        itaku::services::users::NewDeputy {
            principal_user_id: cast.manager.id.clone(),
            deputy_user_id: deputy.id.clone(),
            role: "manager".to_owned(),
            organisation_id: MEGURO.to_owned(),
            valid_from: crate::helpers::day(2020, 4, 1),
            valid_until: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    let waiting = cast.at_manager_step(&app).await;
    let instance = crate::helpers::id_of(&waiting).to_owned();
    let browser = Browser::open(&app).await;

    // The manager sends it back to the officer's step with the reason.
    browser.sign_in("meguro_manager").await;
    browser.click("#inbox tbody a").await;
    let application = browser
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .to_owned();
    browser
        .click("form[id^='form-return-'] select option[value=officer_check]")
        .await;
    browser
        .type_into(
            "form[id^='form-return-'] textarea",
            "体制図の監督体制を確認してください",
        )
        .await;
    browser.screenshot("return-form").await;
    browser.click("form[id^='form-return-'] button").await;
    assert!(!browser.text("#done").await.is_empty(), "returned");
    let timeline = browser.text("table.timeline").await;
    assert!(
        timeline.contains("体制図の監督体制を確認してください"),
        "{timeline}"
    );
    browser.sign_out().await;
    let shown = app
        .get_json(
            &crate::helpers::instance_path(&instance),
            &cast.officer.token,
        )
        .await;
    assert_eq!(shown["progress"]["route"]["current"], 0, "{shown}");

    // The officer and the chief approve again; the manager is away, and the deputy decides.
    for who in [&cast.officer, &cast.chief] {
        app.fire_ok(&who.token, &instance, json!({ "event": "approve" }))
            .await;
    }
    browser.sign_in("meguro_deputy").await;
    browser.go(&application).await;
    let principal = browser.text("form[id^='form-proxy-'] select option").await;
    assert_eq!(principal, "meguro_manager さん");
    browser
        .type_into("form[id^='form-proxy-'] textarea", "課長出張のため代決")
        .await;
    browser.screenshot("proxy-form").await;
    browser.click("form[id^='form-proxy-'] button").await;
    assert!(!browser.text("#done").await.is_empty(), "decided");
    let state = browser.text("h3 .state").await;
    assert_eq!(state, "許諾");
    let timeline = browser.text("table.timeline").await;
    assert!(timeline.contains("meguro_deputy さん"), "{timeline}");
    browser.screenshot("proxy-decided").await;
    browser.sign_out().await;

    // The manager reviews it afterwards (後閲).
    browser.sign_in("meguro_manager").await;
    browser.go(&application).await;
    browser.click("#event-acknowledge").await;
    assert!(!browser.text("#done").await.is_empty(), "reviewed");
    browser.close().await;
}

/// The pages of a PDF as Chromium writes it (one `/Type /Page` object per page, beside the
/// `/Type /Pages` tree) and the first page's size in points.
fn pdf_pages(pdf: &[u8]) -> (usize, f64, f64) {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let text = String::from_utf8_lossy(pdf);
    let pages = text
        .match_indices("/Type /Page")
        .filter(|(at, m)| !text[at + m.len()..].starts_with('s'))
        .count();
    let media = text
        .split("/MediaBox [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a MediaBox");
    let numbers: Vec<f64> = media
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (pages, numbers[2] - numbers[0], numbers[3] - numbers[1])
}

#[tokio::test]
async fn the_pia_section_and_the_structure_chart_print_to_pdf_on_a4() {
    use fantoccini::wd::{PrintConfiguration, PrintOrientation};
    let app = spawn_app(Backend::Sqlite).await;
    let cast = Cast::create(&app).await;
    let browser = Browser::open(&app).await;
    browser.sign_in("meguro_officer").await;

    // The PIA consignment section: one item, one A4 portrait page.
    let mut pia = reqwest::Url::parse("http://x/api/v1/documents/pia").unwrap();
    pia.query_pairs_mut()
        .append_pair("municipality", MEGURO)
        .append_pair("pia_file", "国民健康保険関係情報ファイル")
        .append_pair("format", "html");
    browser
        .go(&format!("{}?{}", pia.path(), pia.query().unwrap()))
        .await;
    assert!(browser
        .text("body")
        .await
        .contains("特定個人情報ファイルの取扱いの委託"));
    let portrait = PrintConfiguration::builder()
        .orientation(PrintOrientation::Portrait)
        .build()
        .unwrap();
    let pdf = browser.client.print(portrait).await.unwrap();
    let (pages, width, height) = pdf_pages(&pdf);
    assert_eq!(pages, 1, "the PIA section of one item is one page");
    assert!(
        (width - 595.0).abs() < 2.0 && (height - 842.0).abs() < 2.0,
        "A4 portrait: {width}×{height}"
    );

    // The structure chart: the drawing on the first A4 landscape page, the tiers' details on
    // the second.
    browser
        .go(&format!(
            "/api/v1/items/{}/structure-chart?format=html",
            cast.item
        ))
        .await;
    assert!(browser.text("h1").await.contains("履行体制図"));
    let landscape = PrintConfiguration::builder()
        .orientation(PrintOrientation::Landscape)
        .build()
        .unwrap();
    let pdf = browser.client.print(landscape).await.unwrap();
    let (pages, width, height) = pdf_pages(&pdf);
    assert_eq!(pages, 2, "the chart, then the details");
    assert!(
        (width - 842.0).abs() < 2.0 && (height - 595.0).abs() < 2.0,
        "A4 landscape: {width}×{height}"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_officer_records_the_assessment_on_the_documents_screen_and_the_manager_permits() {
    let app = spawn_app(Backend::Sqlite).await;
    let cast = Cast::create(&app).await;
    crate::documents::record_inputs(&app, &cast).await;
    let waiting = crate::documents::at_decision_reaching_500(&app, &cast).await;
    let browser = Browser::open(&app).await;

    browser.sign_in("meguro_officer").await;
    browser.click("#nav-documents").await;
    let awaiting = browser.text("#awaiting").await;
    assert!(awaiting.contains("事前"), "blocked: {awaiting}");
    browser.click("#f-node_id option:nth-child(2)").await;
    browser
        .set_date("#f-assessed_on", &app.state.clock.today_jst().to_string())
        .await;
    browser
        .type_into(
            "#f-summary",
            "取扱者数が500人以上となるため全項目評価を実施した。",
        )
        .await;
    browser.screenshot("documents").await;
    browser.click("#record-submit").await;
    assert!(!browser.text("#done").await.is_empty());
    browser.text("#awaiting-none").await;
    assert!(browser
        .text("#assessment-list")
        .await
        .contains("全項目評価を実施した。"));
    browser.sign_out().await;

    // No longer blocked: the manager permits it.
    browser.sign_in("meguro_manager").await;
    browser
        .go(&format!(
            "/applications/{}",
            waiting["id"].as_str().unwrap()
        ))
        .await;
    browser.click("#event-approve").await;
    assert!(!browser.text("#done").await.is_empty(), "permitted");
    browser.close().await;
}
