//! Starts the real application on a free port against a fresh database of either backend.

use std::sync::LazyLock;

use actix_web::web;
use chrono::{DateTime, NaiveDate, Utc};
use itaku::clock::Clock;
use itaku::config::{LogFormat, Settings};
use itaku::services::users::{self, NewMembership, NewOrganisation, NewUser};
use itaku::startup::{AppState, Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::SecretString;
use serde_json::Value;
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
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::Sqlite).await; } )+
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::Postgres).await; } )+
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
    LazyLock::force(&TRACING);
    let database = ScratchDatabase::create(backend).await;
    let settings = Settings {
        host: "127.0.0.1".to_owned(),
        port: 0,
        database_url: database.url.clone(),
        jwt_secret: Some(SecretString::from(JWT_SECRET)),
        ..Settings::default()
    };
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
            .build()
            .expect("a client"),
        state,
        settings,
        _database: database,
    }
}

impl TestApp {
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

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs `body` as is, declared as `content_type`.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
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

    /// Creates an organisation with this id.
    pub async fn create_organisation(&self, id: &str) {
        users::create_organisation(
            &self.db,
            NewOrganisation {
                id: id.to_owned(),
                kind: "municipality".to_owned(),
                name_ja: format!("{id}市"),
                name_en: Some(format!("{id} City")),
            },
            self.now(),
        )
        .await
        .expect("organisation created");
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

/// A date, for brevity.
pub fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid date")
}

/// A fresh database, removed when the test ends (best effort for PostgreSQL).
struct ScratchDatabase {
    url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDatabase {
    async fn create(backend: Backend) -> Self {
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
                    _dir: None,
                }
            }
        }
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
