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

use crate::helpers::{spawn_app, Backend, Cast, TestApp, KOKUHOREN, PASSWORD};
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
