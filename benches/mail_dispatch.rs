//! Mail dispatch throughput (issue 5): N notifications in the outbox of a scratch database are
//! sent by K dispatchers racing (as K replicas would) to a real SMTP server on loopback — the
//! test sink `scripts/smtp_sink.py` (aiosmtpd), which this benchmark starts itself. It then checks
//! that every message arrived exactly once and prints one JSON line; it exits non-zero on any
//! loss or duplicate.
//!
//! Environment: `BENCH_N` (default 10,000), `BENCH_DB` = `postgres` (default) or `sqlite`,
//! `BENCH_DISPATCHERS` (default 4), `BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, where the scratch database is created).

use std::collections::HashMap;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use itaku::clock::Clock;
use itaku::config::Settings;
use itaku::notify::{Dispatcher, SmtpSecurity};
use itaku::services::outbox::{self, OutboxRow};
use itaku::services::users::{self, NewUser};
use itaku::workflow::WorkflowSet;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use secrecy::SecretString;
use serde_json::{json, Value};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mail_dispatch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The SMTP sink process, stopped on drop.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let dir = tempfile::tempdir().map_err(|e| format!("sink folder: {e}"))?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp_sink.py");
        let child = Command::new("python3")
            .args([script, "--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .spawn()
            .map_err(|e| format!("python3 {script}: {e} (pip install aiosmtpd)"))?;
        let mut sink = Self { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sink);
            }
            if let Ok(Some(status)) = sink.child.try_wait() {
                return Err(format!(
                    "the SMTP sink exited: {status} (pip install aiosmtpd)"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sink.child.kill();
        Err("the SMTP sink did not start".to_owned())
    }

    /// Message-ID → how many times it arrived.
    fn received(&self) -> Result<HashMap<String, u32>> {
        let mut seen = HashMap::new();
        for entry in std::fs::read_dir(self.dir.path()).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let message: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let id = message["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            *seen.entry(id).or_default() += 1;
        }
        Ok(seen)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run() -> Result<Value> {
    let n = env_number("BENCH_N", 10_000);
    let dispatchers = env_number("BENCH_DISPATCHERS", 4).max(1);
    let postgres = std::env::var("BENCH_DB").map_or(true, |v| v != "sqlite");
    let sink = Sink::start()?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (url, drop_name) = if postgres {
        let admin_url =
            std::env::var("BENCH_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("itaku_bench_mail_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .map_err(|e| format!("PostgreSQL at {admin_url}: {e}"))?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| e.to_string())?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        (format!("{base}/{name}"), Some((admin_url.clone(), name)))
    } else {
        let path = scratch.path().join("itaku.db");
        (format!("sqlite://{}?mode=rwc", path.display()), None)
    };
    let result = measure(&url, &sink, n, dispatchers, postgres).await;
    if let Some((admin_url, name)) = drop_name {
        if let Ok(admin) = Database::connect(&admin_url).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
    result
}

async fn measure(
    url: &str,
    sink: &Sink,
    n: u64,
    dispatchers: u64,
    postgres: bool,
) -> Result<Value> {
    let mut settings = Settings {
        database_url: url.to_owned(),
        jwt_secret: Some(SecretString::from("x".repeat(40))),
        ..Settings::default()
    };
    settings.mail.smtp_host = Some("127.0.0.1".to_owned());
    settings.mail.smtp_port = Some(sink.port);
    settings.mail.smtp_security = SmtpSecurity::None;
    let db = itaku::db::connect(&settings)
        .await
        .map_err(|e| e.to_string())?;
    itaku::db::migrate(&db).await.map_err(|e| e.to_string())?;
    let now = Clock::System.now();
    let user = users::create_user(
        &db,
        NewUser {
            login: "recipient".to_owned(),
            display_name: "受信者".to_owned(),
            email: Some("recipient@example.lg.jp".to_owned()),
            password: SecretString::from("correct horse battery staple"),
        },
        now,
    )
    .await
    .map_err(|e| format!("{e:?}"))?
    .id;
    let txn = db.begin().await.map_err(|e| e.to_string())?;
    for k in 0..n {
        outbox::enqueue(
            &txn,
            OutboxRow {
                idempotency_key: format!("bench:{k}"),
                instance_id: None,
                effect: outbox::MAIL_EFFECT.to_owned(),
                template: Some("obligation_due".to_owned()),
                recipients: json!([{ "user": user }]),
                payload: json!({ "obligation": {
                    "title": { "ja": "研修の実施", "en": "Training" },
                    "organisation": "株式会社テスト",
                    "due": "2027-03-31",
                } }),
                now,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    txn.commit().await.map_err(|e| e.to_string())?;

    let workflows = Arc::new(WorkflowSet::default());
    let mut runners = Vec::new();
    for _ in 0..dispatchers {
        // Each dispatcher has its own pool, as a replica would.
        let pool = itaku::db::connect(&settings)
            .await
            .map_err(|e| e.to_string())?;
        let d = Dispatcher::new(
            pool,
            workflows.clone(),
            &settings.mail,
            &settings.mail_dir,
            &settings.public_url(),
        )
        .map_err(|e| e.to_string())?;
        runners.push(d);
    }
    let clock = Clock::Fixed(now + chrono::Duration::seconds(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in runners {
        tasks.push(tokio::spawn(async move {
            d.run_once(&clock, || true).await.map_err(|e| e.to_string())
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.map_err(|e| e.to_string())??.sent;
    }
    let seconds = started.elapsed().as_secs_f64();
    // The sink writes each message after accepting it: give it a moment to finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = sink.received()?;
    let duplicates = received.values().filter(|c| **c > 1).count();
    let lost = n.saturating_sub(received.len() as u64);
    let line = json!({
        "bench": "mail_dispatch",
        "db": if postgres { "postgres" } else { "sqlite" },
        "n": n,
        "dispatchers": dispatchers,
        "sent": sent,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "messages_per_second": (n as f64 / seconds).round(),
        "lost": lost,
        "duplicates": duplicates,
    });
    if lost > 0 || duplicates > 0 || u64::from(sent) != n {
        return Err(format!("not every message arrived exactly once: {line}"));
    }
    Ok(line)
}
