//! Starts the real application on a free port against a fresh database of either backend.

use std::sync::LazyLock;

use actix_web::web;
use chrono::{DateTime, NaiveDate, Utc};
use entity::{audit_record, outbox, timer, workflow_instance};
use itaku::clock::Clock;
use itaku::config::{LogFormat, Settings};
use itaku::services::users::{self, NewMembership, NewOrganisation, NewUser};
use itaku::startup::{AppState, Application};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

/// Where the PostgreSQL tests create their databases (trust authentication).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The signing key of every test application, so tests can forge tokens by hand.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// A password long enough for the account rules.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Writes each test twice, once per backend: `mod sqlite { … }` and `mod postgres { … }`.
/// Each named function must be `async fn name(backend: Backend)` in the invoking module.
/// `on_both_backends!(multi_thread: …)` runs them on a multi-threaded runtime (races).
#[macro_export]
macro_rules! on_both_backends {
    (multi_thread: $($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@ tokio::test(flavor = "multi_thread", worker_threads = 4); $($test),+);
    };
    ($($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@ tokio::test; $($test),+);
    };
    (@ $runtime:meta; $($test:ident),+) => {
        mod sqlite {
            $( #[$runtime] async fn $test() { super::$test($crate::helpers::Backend::Sqlite).await; } )+
        }
        mod postgres {
            $( #[$runtime] async fn $test() { super::$test($crate::helpers::Backend::Postgres).await; } )+
        }
    };
}

/// A running application and a way to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    /// The application's own pool.
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub settings: Settings,
    _database: ScratchDatabase,
}

// Logs are silent unless TEST_LOG is set (`TEST_LOG=1 cargo test … | less`).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        itaku::telemetry::init(LogFormat::Pretty);
    }
});

/// The application with the system clock.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with_clock(backend, Clock::System).await
}

/// The application with the given clock.
pub async fn spawn_app_with_clock(backend: Backend, clock: Clock) -> TestApp {
    spawn_app_with(backend, clock, |_| {}).await
}

/// The application with the given clock and settings changed by `adjust`.
pub async fn spawn_app_with(
    backend: Backend,
    clock: Clock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let database = ScratchDatabase::create(backend).await;
    let mut settings = database.settings();
    adjust(&mut settings);
    let application = Application::build_with_clock(settings.clone(), clock)
        .await
        .expect("the application builds");
    let port = application.port();
    let state = application.state();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db: state.db.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // No idle connections kept: on a loaded machine a test can pause longer than the
            // server's keep-alive (5 s), and a request on the connection the server is just
            // closing fails with "connection reset" or "incomplete message".
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client"),
        state,
        settings,
        _database: database,
    }
}

impl TestApp {
    /// A second application on the same database, with settings changed by `adjust` (a
    /// redeployment). The first keeps serving until the test ends, as an old replica would.
    pub async fn redeploy(self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        let application = Application::build_with_clock(settings.clone(), self.state.clock)
            .await
            .expect("the redeployed application builds");
        let port = application.port();
        let state = application.state();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            db: state.db.clone(),
            client: self.client,
            state,
            settings,
            _database: self._database,
        }
    }

    /// The application's "now".
    pub fn now(&self) -> DateTime<Utc> {
        self.state.clock.now()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// GETs `path` as `token`'s user, expecting 200 and a JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get_with_token(path, token).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn post_json_with_token(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn put_json_with_token(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        send(
            self.client
                .put(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// POSTs `body` as is, declared as `content_type`.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> reqwest::Response {
        send(raw(self.client.post(self.url(path)), content_type, body)).await
    }

    /// [`TestApp::post_raw`] as `token`'s user.
    pub async fn post_raw_with_token(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &'static str,
    ) -> reqwest::Response {
        let request = self.client.post(self.url(path)).bearer_auth(token);
        send(raw(request, content_type, body)).await
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/sign-in",
            &serde_json::json!({ "login": login, "password": password }),
        )
        .await
    }

    /// Signs in and returns the token, failing the test otherwise.
    pub async fn token_for(&self, login: &str) -> String {
        let response = self.sign_in(login, PASSWORD).await;
        assert_eq!(response.status(), 200, "sign-in of {login}");
        let body: Value = response.json().await.expect("json");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Creates a user with [`PASSWORD`]; returns its id.
    pub async fn create_user(&self, login: &str) -> String {
        users::create_user(
            &self.db,
            NewUser {
                login: login.to_owned(),
                display_name: format!("{login} さん"),
                email: Some(format!("{login}@example.lg.jp")),
                password: SecretString::from(PASSWORD),
            },
            self.now(),
        )
        .await
        .expect("user created")
        .id
    }

    /// Creates a municipality with this id.
    pub async fn create_organisation(&self, id: &str) {
        self.create_organisation_of_kind(id, "municipality", &format!("{id}市"))
            .await;
    }

    /// Gives `user_id` a role in `org` from `from` to `until` inclusive.
    pub async fn add_membership(
        &self,
        user_id: &str,
        org: &str,
        role: &str,
        from: NaiveDate,
        until: Option<NaiveDate>,
    ) {
        users::add_membership(
            &self.db,
            NewMembership {
                user_id: user_id.to_owned(),
                organisation_id: org.to_owned(),
                role: role.to_owned(),
                valid_from: from,
                valid_until: until,
            },
            self.now(),
        )
        .await
        .expect("membership added");
    }
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("request sent")
}

fn raw(
    request: reqwest::RequestBuilder,
    content_type: &str,
    body: &'static str,
) -> reqwest::RequestBuilder {
    request.header("content-type", content_type).body(body)
}

/// Asserts the API's error shape and code; returns the body.
pub async fn assert_api_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for {code}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"]["ja"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["message"]["en"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body.get("details").is_some(),
        "details must be present (maybe null): {body}"
    );
    body
}

/// The `field` of each detail of a validation error, in order.
pub fn detail_fields(body: &Value) -> Vec<&str> {
    body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("a field"))
        .collect()
}

/// A date, for brevity.
pub fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid date")
}

/// A fresh database, removed when the test ends (best effort for PostgreSQL).
pub struct ScratchDatabase {
    url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDatabase {
    /// An empty database of `backend`; logs are switched on here when TEST_LOG asks for them.
    pub async fn create(backend: Backend) -> Self {
        LazyLock::force(&TRACING);
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                Self {
                    url: format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("itaku.db").display()
                    ),
                    postgres_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("itaku_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(POSTGRES_ADMIN_URL).await.unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL is required for these tests and does not answer at {POSTGRES_ADMIN_URL}: \
                         {error}. Start it (scripts/test.sh does) and run again."
                    )
                });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("the test database is created");
                admin.close().await.expect("admin connection closed");
                Self {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    postgres_name: Some(name),
                    _dir: Some(tempfile::tempdir().expect("a temporary folder")),
                }
            }
        }
    }
}

impl ScratchDatabase {
    /// Settings of a test application on this database: a free port, the test signing key,
    /// mail files in a scratch folder, and no mail dispatcher or timer scheduler running
    /// (the mail tests switch them on).
    pub fn settings(&self) -> Settings {
        let mut settings = Settings {
            host: "127.0.0.1".to_owned(),
            port: 0,
            database_url: self.url.clone(),
            jwt_secret: Some(SecretString::from(JWT_SECRET)),
            timer_interval_seconds: 0,
            ..Settings::default()
        };
        if let Some(dir) = &self._dir {
            settings.mail_dir = dir.path().join("mail");
        }
        settings.mail.dispatch_interval_seconds = 0;
        settings
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop cannot await, and the test's runtime may be shutting down: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = Database::connect(POSTGRES_ADMIN_URL).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop a test database; it is left behind");
        }
    }
}

// --- The subcontract chain and its instances ---------------------------------------------

/// The workflow the instance tests run.
pub const WORKFLOW: &str = "subcontract_permission";
/// 目黒区, the root consignor.
pub const MEGURO: &str = "meguro";
/// 東京都国保連, the tier-1 contractor.
pub const KOKUHOREN: &str = "tokyo_kokuhoren";
/// 国保中央会, the tier-2 contractor.
pub const CHUOKAI: &str = "kokuho_chuokai";
/// 新宿区, a municipality outside the chain.
pub const SHINJUKU: &str = "shinjuku";

/// A signed-in user: their id and a session token.
pub struct Person {
    pub id: String,
    pub token: String,
}

/// The people of the chain 目黒区 → 東京都国保連 → 国保中央会, and an outsider of 新宿区.
pub struct Cast {
    /// 目黒区 担当者 (officer_check).
    pub officer: Person,
    /// 目黒区 係長 (chief).
    pub chief: Person,
    /// 目黒区 課長 (manager).
    pub manager: Person,
    /// A contractor of 東京都国保連.
    pub kokuhoren: Person,
    /// A contractor of 国保中央会.
    pub chuokai: Person,
    /// An officer of 新宿区.
    pub outsider: Person,
    /// 目黒区's consignment item.
    pub item: String,
    /// 東京都国保連's tier-1 node.
    pub tier1: String,
    /// 国保中央会's tier-2 node (permitted).
    pub tier2: String,
}

impl Cast {
    /// Creates the organisations, the users and their memberships, and signs everyone in; then
    /// the established chain the applications hang under: 目黒区's consignment item with
    /// 東京都国保連 at tier 1 and 国保中央会 permitted at tier 2, each with verified evidence.
    pub async fn create(app: &TestApp) -> Self {
        for (id, kind, name) in [
            (MEGURO, "municipality", "目黒区"),
            (SHINJUKU, "municipality", "新宿区"),
            (KOKUHOREN, "nhi_federation", "東京都国民健康保険団体連合会"),
            (
                CHUOKAI,
                "central_association",
                "公益社団法人国民健康保険中央会",
            ),
        ] {
            app.create_organisation_of_kind(id, kind, name).await;
        }
        let cast = Self {
            officer: app.person("meguro_officer", &[(MEGURO, "officer")]).await,
            chief: app.person("meguro_chief", &[(MEGURO, "chief")]).await,
            manager: app.person("meguro_manager", &[(MEGURO, "manager")]).await,
            kokuhoren: app.person("kokuhoren", &[(KOKUHOREN, "contractor")]).await,
            chuokai: app.person("chuokai", &[(CHUOKAI, "contractor")]).await,
            outsider: app
                .person("shinjuku_officer", &[(SHINJUKU, "officer")])
                .await,
            item: String::new(),
            tier1: String::new(),
            tier2: String::new(),
        };
        let item = app
            .post_json_with_token(
                "/api/v1/items",
                &cast.officer.token,
                &item_body(MEGURO, KOKUHOREN),
            )
            .await;
        let status = item.status();
        let item: Value = item.json().await.expect("a JSON body");
        assert_eq!(status, 201, "item created: {item}");
        let item_id = item["id"].as_str().expect("an item id").to_owned();
        let tree = app
            .get_json(
                &format!("/api/v1/items/{item_id}/tree"),
                &cast.officer.token,
            )
            .await;
        let tier1 = tree["nodes"][0]["id"]
            .as_str()
            .expect("the tier-1 node")
            .to_owned();
        app.give_evidence(KOKUHOREN, MEGURO, None).await;
        let tier2 = app.established_node(&tier1, CHUOKAI).await;
        app.give_evidence(CHUOKAI, KOKUHOREN, None).await;
        Self {
            item: item_id,
            tier1,
            tier2,
            ..cast
        }
    }

    /// 東京都国保連 files a tier-2 application with 目黒区 (nobody in between) for a new
    /// subcontractor that has its evidence; returns the decision's instance.
    pub async fn apply_tier2(&self, app: &TestApp) -> Value {
        let vendor = app.new_vendor(KOKUHOREN).await;
        let application = app
            .file_application(&self.kokuhoren.token, &vendor, &[&self.tier1])
            .await;
        app.target_instance(&application, &self.kokuhoren.token)
            .await
    }

    /// 国保中央会 files a tier-3 application, to be endorsed by 東京都国保連.
    pub async fn apply_tier3(&self, app: &TestApp) -> Value {
        let vendor = app.new_vendor(CHUOKAI).await;
        let application = app
            .file_application(&self.chuokai.token, &vendor, &[&self.tier2])
            .await;
        app.target_instance(&application, &self.chuokai.token).await
    }

    /// A tier-2 application, submitted: at the officer's step of 目黒区's decision.
    pub async fn submitted_tier2(&self, app: &TestApp) -> Value {
        let draft = self.apply_tier2(app).await;
        app.fire_ok(
            &self.kokuhoren.token,
            id_of(&draft),
            json!({ "event": "submit" }),
        )
        .await
    }

    /// A tier-2 application the officer and the chief approved: at the manager's step.
    pub async fn at_manager_step(&self, app: &TestApp) -> Value {
        let submitted = self.submitted_tier2(app).await;
        let id = id_of(&submitted);
        for who in [&self.officer, &self.chief] {
            app.fire_ok(&who.token, id, json!({ "event": "approve" }))
                .await;
        }
        app.get_json(&instance_path(id), &self.manager.token).await
    }

    /// A permitted tier-2 application.
    pub async fn permitted_tier2(&self, app: &TestApp) -> Value {
        let waiting = self.at_manager_step(app).await;
        let permitted = app
            .fire_ok(
                &self.manager.token,
                id_of(&waiting),
                json!({ "event": "approve" }),
            )
            .await;
        assert_eq!(permitted["state"], "permitted");
        permitted
    }
}

/// A consignment item of `municipality` with `contractor` at tier 1, for the current 年度.
pub fn item_body(municipality: &str, contractor: &str) -> Value {
    json!({
        "municipality_id": municipality,
        "owning_section": "保険年金課",
        "title": "国民健康保険の資格・給付に関する事務",
        "content": "国保情報集約システムによる資格情報の集約・提供",
        "handler_bracket": "from_10_to_49",
        "data_items": ["識別情報", "連絡先等情報", "医療保険関係情報"],
        "pia_file": "国民健康保険関係情報ファイル",
        "recording_medium": "クラウドサーバー",
        "period_start": "2020-04-01",
        "period_end": "2099-03-31",
        "contractor_id": contractor,
        "subcontract_policy": "委託先から再委託の許諾申請書及び履行体制図の提出を受け、区が審査の上、書面により許諾する。",
    })
}

/// The fields of a subcontract application (every field the seeds list).
pub fn application_fields(contractor_name: &str) -> Value {
    json!({
        "reason": "専門的な技術を有する事業者に委託し、安定的な運用を図るため",
        "scope_of_work": "システムの運用・保守",
        "data_scope": "被保険者の資格情報",
        "capability": "同種業務の受託実績あり。ISMS認証を取得している。",
        "inspection_requirements": "区の求めに応じ、作業場所への立入調査を受け入れる",
        "planned_amount": 12_000_000,
        "structure_chart": { "tiers": [{
            "organisation_name": contractor_name,
            "responsible_person": "運用責任者",
            "manager": "運用管理者",
            "staff_count": 12,
            "work_location": "東京都千代田区",
            "supervised_by": "委託元の監督責任者",
        }]},
        "supervision": "月次で作業報告を受け、年1回立入調査を行う",
        "nda_confirmed": true,
        "safeguards": "組織的・人的・物理的・技術的安全管理措置を講じる",
        "period_start": "2020-04-01",
        "period_end": "2099-03-31",
    })
}

impl TestApp {
    /// A new vendor organisation with every evidence a non-cloud node needs, its NDA naming
    /// `parent`.
    pub async fn new_vendor(&self, parent: &str) -> String {
        // Letters only: twelve random hex digits are all decimal now and then, and twelve
        // digits in a row are refused as a possible individual number.
        let letters: String = Uuid::new_v4().as_bytes()[..12]
            .iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        let id = format!("vendor-{letters}");
        self.create_organisation_of_kind(&id, "vendor", "株式会社テスト")
            .await;
        self.give_evidence(&id, parent, None).await;
        id
    }

    /// Files an application for `contractor` under `parents`, expecting 201.
    pub async fn file_application(&self, token: &str, contractor: &str, parents: &[&str]) -> Value {
        let body = json!({
            "contractor_id": contractor,
            "parent_node_ids": parents,
            "fields": application_fields("株式会社テスト"),
        });
        let response = self
            .post_json_with_token("/api/v1/applications", token, &body)
            .await;
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 201, "application filed: {answer}");
        answer
    }

    /// The instance deciding the application's (first) target.
    pub async fn target_instance(&self, application: &Value, token: &str) -> Value {
        let id = application["targets"][0]["instance_id"]
            .as_str()
            .expect("a target instance");
        self.get_json(&instance_path(id), token).await
    }

    /// Verified, valid evidence of `org` for the every-node requirements (NDA naming
    /// `counterparty`, structure chart, safeguards, ISO/IEC 27001), written straight to the
    /// database as an officer would have verified it; `valid_until` defaults to 2099-03-31.
    pub async fn give_evidence(
        &self,
        org: &str,
        counterparty: &str,
        valid_until: Option<NaiveDate>,
    ) {
        let until = valid_until.unwrap_or_else(|| day(2099, 3, 31));
        for (kind, fields) in [
            (
                "nda",
                json!({ "counterparty_organisation_id": counterparty }),
            ),
            ("structure_chart", json!({})),
            ("safeguards", json!({})),
            ("iso27001", json!({ "covered_services": [] })),
        ] {
            self.insert_evidence(org, kind, fields, until, true).await;
        }
    }

    /// One evidence row, written straight to the database (a fixture).
    pub async fn insert_evidence(
        &self,
        org: &str,
        kind: &str,
        fields: Value,
        valid_until: NaiveDate,
        verified: bool,
    ) -> String {
        use sea_orm::{ActiveModelTrait, Set};
        let now = self.now();
        let id = Uuid::new_v4().to_string();
        entity::evidence_record::ActiveModel {
            id: Set(id.clone()),
            organisation_id: Set(org.to_owned()),
            node_id: Set(None),
            kind: Set(kind.to_owned()),
            service_name: Set(fields["service_name"].as_str().map(str::to_owned)),
            fields: Set(fields.to_string()),
            valid_from: Set(Some(day(2020, 1, 1))),
            valid_until: Set(Some(valid_until)),
            renewal_pending: Set(false),
            verified_by: Set(verified.then(|| "fixture".to_owned())),
            verified_at: Set(verified.then_some(now)),
            revoked_by: Set(None),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            lapse_handled_on: Set(None),
            created_by: Set("fixture".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&self.db)
        .await
        .expect("evidence inserted");
        id
    }

    /// A node of `contractor` under `parent`, permitted long ago (a fixture for a chain that
    /// predates the system).
    pub async fn established_node(&self, parent: &str, contractor: &str) -> String {
        use sea_orm::{ActiveModelTrait, Set};
        let parent = entity::chain_node::Entity::find_by_id(parent)
            .one(&self.db)
            .await
            .expect("parent read")
            .expect("the parent exists");
        let now = self.now();
        let id = Uuid::new_v4().to_string();
        entity::chain_node::ActiveModel {
            id: Set(id.clone()),
            item_id: Set(parent.item_id.clone()),
            parent_id: Set(Some(parent.id.clone())),
            tier: Set(parent.tier + 1),
            contractor_id: Set(contractor.to_owned()),
            scope_of_work: Set("国保情報集約システムの運用".to_owned()),
            data_scope: Set("資格情報".to_owned()),
            reason: Set("システムの一元的運用".to_owned()),
            capability: Set("全国の国保連合会のシステムを運用".to_owned()),
            inspection_requirements: Set("立入調査を受け入れる".to_owned()),
            planned_amount: Set(None),
            structure_chart: Set("{\"tiers\":[]}".to_owned()),
            supervision: Set("月次報告".to_owned()),
            period_start: Set(day(2020, 4, 1)),
            period_end: Set(day(2099, 3, 31)),
            hosts_environment: Set(false),
            cloud_classification: Set(None),
            service_name: Set(None),
            advance_permission: Set(None),
            handler_bracket: Set(Some("from_10_to_49".to_owned())),
            recording_medium: Set(None),
            responsible_person: Set(None),
            manager: Set(None),
            staff_count: Set(None),
            work_location: Set(None),
            permission_state: Set("permitted".to_owned()),
            state_changed_at: Set(now),
            state_reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&self.db)
        .await
        .expect("node inserted");
        id
    }
}

/// The first record of a chain whose instance does not exist.
pub fn ghost_record(at: DateTime<Utc>) -> itaku::services::audit::NewAuditRecord {
    itaku::services::audit::NewAuditRecord {
        instance_id: "ghost".to_owned(),
        at,
        actor_id: "someone".to_owned(),
        on_behalf_of: None,
        event: "create".to_owned(),
        from_state: None,
        to_state: "draft".to_owned(),
        step: None,
        comment: None,
        request_id: None,
        details: serde_json::json!({}),
    }
}

/// The `id` of an instance as the API shows it.
pub fn id_of(instance: &Value) -> &str {
    instance["id"].as_str().expect("an instance id")
}

/// `/api/v1/instances/{id}`.
pub fn instance_path(id: &str) -> String {
    format!("/api/v1/instances/{id}")
}

/// The `code` of every unmet requirement in an error's details.
pub fn unmet_codes(error: &Value) -> Vec<&str> {
    error["details"]["unmet"]
        .as_array()
        .expect("details.unmet")
        .iter()
        .map(|u| u["code"].as_str().expect("an unmet code"))
        .collect()
}

/// What a refused request must leave exactly as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Footprint {
    pub state: String,
    pub version: i64,
    pub audit_records: usize,
    pub outbox_rows: usize,
    pub timers: usize,
    pub running_timers: usize,
}

impl TestApp {
    /// Creates an organisation of this kind and name.
    pub async fn create_organisation_of_kind(&self, id: &str, kind: &str, name_ja: &str) {
        users::create_organisation(
            &self.db,
            NewOrganisation {
                id: id.to_owned(),
                kind: kind.to_owned(),
                name_ja: name_ja.to_owned(),
                name_en: None,
            },
            self.now(),
        )
        .await
        .expect("organisation created");
    }

    /// Creates a user holding these `(organisation, role)`s since 2020-04-01, and signs in.
    pub async fn person(&self, login: &str, roles: &[(&str, &str)]) -> Person {
        let id = self.create_user(login).await;
        for (org, role) in roles {
            self.add_membership(&id, org, role, day(2020, 4, 1), None)
                .await;
        }
        Person {
            token: self.token_for(login).await,
            id,
        }
    }

    /// POST /instances: `body` names the workflow, the context and what it corrects.
    pub async fn create_instance(&self, token: &str, body: Value) -> reqwest::Response {
        self.post_json_with_token("/api/v1/instances", token, &body)
            .await
    }

    /// How many instances exist.
    pub async fn instance_count(&self) -> u64 {
        workflow_instance::Entity::find()
            .count(&self.db)
            .await
            .expect("instances counted")
    }

    /// Fires an event: POST /instances/{id}/events.
    pub async fn fire(&self, token: &str, id: &str, body: Value) -> reqwest::Response {
        let path = format!("{}/events", instance_path(id));
        self.post_json_with_token(&path, token, &body).await
    }

    /// Fires an event expecting 200; returns the instance as the API shows it.
    pub async fn fire_ok(&self, token: &str, id: &str, body: Value) -> Value {
        let response = self.fire(token, id, body.clone()).await;
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{body} answered {answer}");
        answer
    }

    /// The instance's row.
    pub async fn instance_row(&self, id: &str) -> workflow_instance::Model {
        workflow_instance::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("instance read")
            .expect("the instance exists")
    }

    /// The instance's audit records, by seq.
    pub async fn audit_rows(&self, id: &str) -> Vec<audit_record::Model> {
        use audit_record::Column as C;
        self.rows_of::<audit_record::Entity>(C::InstanceId, id, C::Seq)
            .await
    }

    /// The instance's outbox rows, by idempotency key.
    pub async fn outbox_rows(&self, id: &str) -> Vec<outbox::Model> {
        use outbox::Column as C;
        self.rows_of::<outbox::Entity>(C::InstanceId, id, C::IdempotencyKey)
            .await
    }

    /// The instance's timers, by idempotency key.
    pub async fn timer_rows(&self, id: &str) -> Vec<timer::Model> {
        use timer::Column as C;
        self.rows_of::<timer::Entity>(C::InstanceId, id, C::IdempotencyKey)
            .await
    }

    /// The rows of `E` whose `instance` column is `id`, ordered by `order`.
    async fn rows_of<E: EntityTrait>(
        &self,
        instance: E::Column,
        id: &str,
        order: E::Column,
    ) -> Vec<E::Model> {
        E::find()
            .filter(instance.eq(id))
            .order_by_asc(order)
            .all(&self.db)
            .await
            .expect("rows read")
    }

    /// What the database holds for the instance.
    pub async fn footprint(&self, id: &str) -> Footprint {
        let row = self.instance_row(id).await;
        let timers = self.timer_rows(id).await;
        Footprint {
            state: row.state,
            version: row.version,
            audit_records: self.audit_rows(id).await.len(),
            outbox_rows: self.outbox_rows(id).await.len(),
            running_timers: timers.iter().filter(|t| t.cancelled_at.is_none()).count(),
            timers: timers.len(),
        }
    }
}
