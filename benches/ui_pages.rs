//! The web UI's pages at scale (issue 4).
//!
//! For each backend (`BENCH_DB`: `sqlite`, `postgres`, both by default) a fresh database gets
//! the demo data plus [`itaku::demo::scale`]: `BENCH_N` subcontract applications (default
//! 10,000) filed, decided or left waiting through the real services, and evidence records up
//! to `BENCH_EVIDENCE` (default 60,000). The real server then serves, to a signed-in user over
//! HTTP on loopback, one request at a time:
//!
//! - `inbox`: 目黒区's officer's inbox (every waiting application of the municipality is a
//!   candidate) and 目黒区's manager's;
//! - `application`: the detail of an application waiting for the officer (fields, evidence
//!   checklist of the chain, diagram, audit timeline, the officer's actions);
//! - `chain`: the chain view of a generated item (a tier-1 node with 100 subcontract nodes)
//!   and of the demo's NHI item.
//!
//! Each page is fetched `BENCH_REQUESTS` times (default 200) after 20 unmeasured requests; one
//! JSON line per backend and page gives p50, p95, p99 and max in milliseconds and the page's
//! size. Target: p95 under 50 ms on PostgreSQL. Run with `cargo bench --bench ui_pages`.
//!
//! `BENCH_DATABASE_URL` measures a database of one's own instead of a scratch one, and keeps it:
//! it is seeded the first time and measured as it is afterwards, so a change to a page can be
//! measured again without the half hour of seeding.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use itaku::clock::Clock;
use itaku::config::Settings;
use itaku::startup::Application;

mod scratch;

use scratch::{on_scratch_url, Backend, BenchResult};

const DEFAULT_N: u64 = 10_000;
const DEFAULT_EVIDENCE: usize = 60_000;
const DEFAULT_REQUESTS: usize = 200;
const WARM_UP: usize = 20;

fn main() -> ExitCode {
    let setup = || -> BenchResult<(u64, usize, usize, Vec<Backend>)> {
        let evidence = env_usize("BENCH_EVIDENCE", DEFAULT_EVIDENCE)?;
        let requests = env_usize("BENCH_REQUESTS", DEFAULT_REQUESTS)?;
        Ok((
            scratch::env_n(DEFAULT_N)?,
            evidence,
            requests,
            Backend::from_env()?,
        ))
    };
    let (n, evidence, requests, backends) = match setup() {
        Ok(found) => found,
        Err(e) => {
            eprintln!("ui_pages: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        return scratch::per_backend("ui_pages", vec![backend], |backend| {
            pages(backend, url.clone(), n, evidence, requests)
        });
    }
    scratch::per_backend("ui_pages", backends, |backend| {
        on_scratch_url(backend, move |url| async move {
            pages(backend, url, n, evidence, requests).await
        })
    })
}

fn env_usize(name: &str, default: usize) -> BenchResult<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("{name} must be a whole number, not {text:?}").into()),
    }
}

async fn pages(
    backend: Backend,
    url: String,
    n: u64,
    evidence: usize,
    requests: usize,
) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        host: "127.0.0.1".to_owned(),
        port: 0,
        database_url: url,
        mail_dir: dir.path().join("mail"),
        ..Settings::default()
    };
    // The demo's day, so its deadlines and the generated states are the same on every run.
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")?.to_utc();
    let app = Application::build_with_clock(settings, Clock::Fixed(at)).await?;
    let state = app.state();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let report = if let Some(report) = itaku::demo::scaled(&state).await? {
        eprintln!(
            "ui_pages: {}: reusing {} applications, {} evidence records",
            backend.name(),
            report.applications,
            report.evidence_records
        );
        report
    } else {
        let clock = Instant::now();
        itaku::demo::seed(&state).await?;
        let report = itaku::demo::scale(&state, usize::try_from(n)?, evidence).await?;
        // The planner's statistics of a live database: what PostgreSQL's autovacuum would have
        // gathered by now, and SQLite's `ANALYZE`.
        sea_orm::ConnectionTrait::execute_unprepared(&state.db, "ANALYZE").await?;
        eprintln!(
            "ui_pages: {}: seeded {} applications, {} evidence records in {:.1?}",
            backend.name(),
            report.applications,
            report.evidence_records,
            clock.elapsed()
        );
        report
    };

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let officer = session(&client, &base, "meguro.officer").await?;
    let manager = session(&client, &base, "meguro.manager").await?;
    let demo_item = demo_nhi_item(&state.db).await?;
    let measured = [
        ("inbox", "meguro.officer", &officer, "/inbox".to_owned()),
        ("inbox", "meguro.manager", &manager, "/inbox".to_owned()),
        (
            "application",
            "meguro.officer",
            &officer,
            format!("/applications/{}", report.sample_application),
        ),
        (
            "chain",
            "meguro.officer",
            &officer,
            format!("/items/{}", report.sample_item),
        ),
        (
            "chain",
            "meguro.officer",
            &officer,
            format!("/items/{demo_item}"),
        ),
    ];
    for (page, user, cookie, path) in measured {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for round in 0..WARM_UP + requests {
            let start = Instant::now();
            let body = fetch(&client, &base, cookie, &path).await?;
            let took = start.elapsed();
            bytes = body.len();
            if round >= WARM_UP {
                times.push(took);
            }
        }
        times.sort();
        let ms = |q: f64| {
            let ix = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
            times[ix].as_secs_f64() * 1000.0
        };
        println!(
            "{{\"bench\":\"ui_pages\",\"db\":\"{}\",\"page\":\"{page}\",\"user\":\"{user}\",\"path\":\"{path}\",\"applications\":{},\"evidence_records\":{},\"requests\":{},\"p50_ms\":{:.1},\"p95_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"bytes\":{bytes}}}",
            backend.name(),
            report.applications,
            report.evidence_records,
            times.len(),
            ms(0.50),
            ms(0.95),
            ms(0.99),
            times.last().map_or(0.0, Duration::as_secs_f64) * 1000.0,
        );
    }
    Ok(())
}

/// The session cookie of a demo user, from the API's sign-in.
async fn session(client: &reqwest::Client, base: &str, login: &str) -> BenchResult<String> {
    let response = client
        .post(format!("{base}/api/v1/auth/sign-in"))
        .json(&serde_json::json!({ "login": login, "password": itaku::demo::DEMO_PASSWORD }))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("{login} cannot sign in: {}", response.status()).into());
    }
    let body: serde_json::Value = response.json().await?;
    let token = body["token"].as_str().ok_or("the sign-in gave no token")?;
    Ok(format!("itaku_token={token}"))
}

/// A page's body; anything but 200 fails the bench.
async fn fetch(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
) -> BenchResult<String> {
    let response = client
        .get(format!("{base}{path}"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET {path}: {status}").into());
    }
    Ok(body)
}

/// The demo's NHI item of 目黒区.
async fn demo_nhi_item(db: &sea_orm::DatabaseConnection) -> BenchResult<String> {
    use entity::consignment_item::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Entity::find()
        .filter(Column::MunicipalityId.eq("meguro"))
        .filter(Column::Title.contains("国保情報集約システム"))
        .one(db)
        .await?
        .map(|i| i.id)
        .ok_or_else(|| "the demo has no NHI item of 目黒区".into())
}
