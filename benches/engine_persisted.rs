//! The persisted engine benchmark of `shared/bench/WORKLOAD.md`, through the HTTP API of the real
//! application started in this process on 127.0.0.1 (port 0), with a durable database: a SQLite
//! file (WAL, `synchronous=FULL`: the application's defaults) or a fresh PostgreSQL database.
//!
//! For each database and each number K of concurrent clients: the untimed guard checks through
//! the API, 20 warm-up instances per client, then N instances (client k takes `i ≡ k mod K`), each
//! created (one commit) and moved by `submit`, `check_evidence` and `approve` (one commit each),
//! every request timed. Prints one JSON line per measurement and exits non-zero if a guard check
//! or an instance fails.
//!
//! `retained_instances` counts every instance in the database at the end: the N timed ones, the
//! 20·K warm-up ones and the three of the guard checks.
//!
//! Each measurement runs in a child process of its own (this binary, with `BENCH_RUN=db:K`), so
//! its memory figures and its server start from nothing. `peak_rss_kb` is the peak of the timed
//! loop: the high-water mark is reset just before it, so the argon2 hashes of the set-up (19 MiB
//! each) do not hide it.
//!
//! Each client keeps one HTTP/1.1 connection of its own, driven in its own task (hyper's
//! connection, as wrk does), so that the load generator takes as little of the machine as it can.
//! The load generator (the K clients) runs in the server's process by default, where it competes
//! with the server for the CPU; with `BENCH_LOAD=process` it runs in a process of its own (this
//! binary again, with `BENCH_LOAD_RUN`), as a separate load generator would. It still shares the
//! machine's cores, but no longer the server's runtime and allocator; `load` in the JSON line says
//! which it was, and `peak_rss_kb` is then the server's alone.
//!
//! Environment: `BENCH_N` (default 1,000), `BENCH_DB` = `sqlite`, `postgres` or `both` (default),
//! `BENCH_CLIENTS` (default `1,8`), `BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, where the scratch databases are created),
//! `BENCH_POOL` (the pool size; default: the application's), `BENCH_LOAD` = `inline` (default),
//! `process` or `both`, `RUST_LOG` (default `warn`). The server's other settings are the
//! application's, from the `ITAKU_*` variables (`ITAKU_HTTP_WORKERS`, `ITAKU_RUNTIME_THREADS`…);
//! the database, the address, the key and the folders are the benchmark's own.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;
use common::status_kb;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderValue};
use hyper::Method;
use itaku::auth::password;
use itaku::clock::Clock;
use itaku::config::Settings;
use itaku::services::instances;
use itaku::services::users::{self, ImportedUser, NewMembership, NewOrganisation};
use itaku::startup::{AppState, Application};
use itaku::workflow::kinds::workload::{self, WorkloadContext};
use itaku::workflow::Kinds;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use secrecy::SecretString;
use serde_json::{json, Value};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const WARM_UP_PER_CLIENT: u64 = 20;
/// The organisation in which every actor holds its role (the workload's roles are unscoped, so
/// any organisation satisfies them).
const ORGANISATION: &str = "bench";
/// The workflow id of `benches/workload.toml`.
const WORKFLOW: &str = "bench_workload";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    init_tracing();
    if let Ok(base) = std::env::var("BENCH_LOAD_RUN") {
        return generate_load(&base);
    }
    match std::env::var("BENCH_RUN") {
        Ok(run) => measure_in_this_process(&run),
        Err(_) => run_every_measurement(),
    }
}

/// Where the K clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// In the server's process, on its own runtime.
    Inline,
    /// In a process of their own.
    Process,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Inline => "inline",
            Load::Process => "process",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "inline" => Some(Load::Inline),
            "process" => Some(Load::Process),
            _ => None,
        }
    }
}

/// The log filter unless `RUST_LOG` says otherwise: one line per request would drown the
/// figures, and the refusals that the guard checks provoke on purpose are no warning.
const QUIET: &str = "warn,tracing_actix_web=error";

/// Installs the log subscriber.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(QUIET));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts one child process per (database, K), in order; stops at the first failure.
fn run_every_measurement() -> ExitCode {
    let dbs = match std::env::var("BENCH_DB").as_deref() {
        Ok("sqlite") => vec!["sqlite"],
        Ok("postgres") => vec!["postgres"],
        Ok("both") | Err(_) => vec!["sqlite", "postgres"],
        Ok(other) => {
            eprintln!("BENCH_DB must be sqlite, postgres or both, not {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let clients = std::env::var("BENCH_CLIENTS").unwrap_or_else(|_| "1,8".to_owned());
    let Ok(clients) = clients
        .split(',')
        .map(|k| k.trim().parse::<u64>().map_err(|_| ()))
        .filter(|k| *k != Ok(0))
        .collect::<std::result::Result<Vec<u64>, ()>>()
    else {
        eprintln!("BENCH_CLIENTS must be a comma-separated list of positive numbers");
        return ExitCode::FAILURE;
    };
    let loads = match std::env::var("BENCH_LOAD").as_deref() {
        Err(_) => vec![Load::Inline],
        Ok("both") => vec![Load::Inline, Load::Process],
        Ok(name) => match Load::parse(name) {
            Some(load) => vec![load],
            None => {
                eprintln!("BENCH_LOAD must be inline, process or both, not {name:?}");
                return ExitCode::FAILURE;
            }
        },
    };
    let Ok(me) = std::env::current_exe() else {
        eprintln!("cannot find this benchmark's own executable");
        return ExitCode::FAILURE;
    };
    for db in &dbs {
        for load in &loads {
            for k in &clients {
                let what = format!("on {db} with {k} clients ({} load)", load.name());
                let status = Command::new(&me)
                    .env("BENCH_RUN", format!("{db}:{k}:{}", load.name()))
                    .status();
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => {
                        eprintln!("the measurement {what} failed ({s})");
                        return ExitCode::FAILURE;
                    }
                    Err(e) => {
                        eprintln!("cannot start the measurement {what}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// Which database a measurement uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

fn measure_in_this_process(run: &str) -> ExitCode {
    let mut parts = run.split(':');
    let db = match parts.next() {
        Some("sqlite") => Some(Db::Sqlite),
        Some("postgres") => Some(Db::Postgres),
        _ => None,
    };
    let clients = parts
        .next()
        .and_then(|k| k.parse::<u64>().ok())
        .filter(|k| *k > 0);
    let load = parts.next().map_or(Some(Load::Inline), Load::parse);
    let (Some(db), Some(clients), Some(load), None) = (db, clients, load, parts.next()) else {
        eprintln!(
            "BENCH_RUN must be sqlite:K or postgres:K, optionally :inline or :process, not {run:?}"
        );
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(measure_on_scratch_database(db, clients, load, bench_n())) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} with {clients} clients: {e}", db.name());
            ExitCode::FAILURE
        }
    }
}

/// `BENCH_N`, default 1,000.
fn bench_n() -> u64 {
    std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// The runtime the server runs on, sized as `itaku serve` sizes its own (`runtime_threads`).
fn runtime() -> Option<tokio::runtime::Runtime> {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    match settings.runtime() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

/// A fresh database for one measurement: a file in a temporary folder, or a uniquely named
/// PostgreSQL database that [`Scratch::remove`] drops.
struct Scratch {
    url: String,
    postgres: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Scratch {
    async fn create(db: Db) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        match db {
            Db::Sqlite => Ok(Self {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("itaku.db").display()
                ),
                postgres: None,
                dir,
            }),
            Db::Postgres => {
                let admin_url = std::env::var("BENCH_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let name = format!("itaku_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .map_err(|e| format!("PostgreSQL at {admin_url}: {e}"))?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .map_err(|e| format!("creating database {name}: {e}"))?;
                let _ = admin.close().await;
                Ok(Self {
                    url: itaku::db::database_url(&admin_url, &name),
                    postgres: Some((admin_url, name)),
                    dir,
                })
            }
        }
    }

    async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres {
            let dropped = match Database::connect(admin_url).await {
                Ok(admin) => admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = dropped {
                eprintln!("note: could not drop the scratch database {name}: {e}");
            }
        }
    }
}

async fn measure_on_scratch_database(db: Db, clients: u64, load: Load, n: u64) -> Result<Value> {
    let scratch = Scratch::create(db).await?;
    let result = measure(db, &scratch, clients, load, n).await;
    scratch.remove().await;
    result
}

/// `today` of the workload, 00:00 UTC (09:00 in Tokyo, the day the application judges by).
fn workload_clock() -> Clock {
    Clock::Fixed(
        workload::today()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc(),
    )
}

async fn measure(db: Db, scratch: &Scratch, clients: u64, load: Load, n: u64) -> Result<Value> {
    let workflows_dir = scratch.dir.path().join("workflows");
    std::fs::create_dir_all(&workflows_dir).map_err(|e| format!("workflows folder: {e}"))?;
    std::fs::write(workflows_dir.join("workload.toml"), workload::DEFINITION)
        .map_err(|e| format!("workload definition: {e}"))?;
    let mut secret = [0u8; 32];
    rand_bytes(&mut secret);
    let settings = Settings {
        host: "127.0.0.1".to_owned(),
        port: 0,
        database_url: scratch.url.clone(),
        workflows_dir,
        jwt_secret: Some(SecretString::from(hex::encode(secret))),
        mail_dir: scratch.dir.path().join("mail"),
        database_max_connections: std::env::var("BENCH_POOL")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Settings::load().map_err(|e| e.to_string())?
    };
    let mut kinds = Kinds::product();
    kinds.add(workload::registry);
    kinds.vocabulary = kinds.vocabulary.with_roles(&["staff"]);
    let app = Application::build_with(settings, workload_clock(), kinds)
        .await
        .map_err(|e| format!("the application does not start: {e}"))?;
    let state = app.state();
    let base = format!("http://127.0.0.1:{}/api/v1", app.port());
    tokio::spawn(app.run_until_stopped());

    let tokens = create_actors(&state).await?;
    let timed = match load {
        Load::Inline => {
            let api = Arc::new(Api::new(&base, &tokens)?);
            guard_checks(&api).await?;
            run_clients(&api, clients, WARM_UP_PER_CLIENT * clients).await?;
            let rss_baseline_kb = start_peak_rss();
            let start = Instant::now();
            let latencies = run_clients(&api, clients, n).await?;
            Timed {
                elapsed: start.elapsed(),
                latencies,
                rss_baseline_kb,
            }
        }
        Load::Process => {
            tokio::task::spawn_blocking(move || load_in_child(&base, &tokens, clients, n))
                .await
                .map_err(|e| format!("the load generator: {e}"))??
        }
    };
    let peak_rss_kb = status_kb("VmHWM:");
    let retained = instances::count(&state.db)
        .await
        .map_err(|e| format!("counting instances: {e}"))?;

    let Timed {
        elapsed,
        mut latencies,
        rss_baseline_kb,
    } = timed;
    let elapsed = elapsed.as_secs_f64();
    latencies.sort_unstable();
    let transitions = 3 * n;
    let commits = 4 * n;
    #[allow(clippy::cast_precision_loss)]
    let per_s = |count: u64| count as f64 / elapsed;
    Ok(json!({
        "peer": "itaku",
        "version": env!("CARGO_PKG_VERSION"),
        "runtime": "rust, actix-web + sea-orm, HTTP/1.1 loopback",
        "n": n,
        "transitions": transitions,
        "elapsed_s": elapsed,
        "instances_per_s": per_s(n),
        "transitions_per_s": per_s(transitions),
        "rss_baseline_kb": rss_baseline_kb,
        "peak_rss_kb": peak_rss_kb,
        "retained_instances": retained,
        "guard_checks": "ok",
        "db": db.name(),
        "load": load.name(),
        "workers": clients,
        "commits": commits,
        "commits_per_s": per_s(commits),
        "p50_ms": percentile_ms(&latencies, 0.50),
        "p99_ms": percentile_ms(&latencies, 0.99),
    }))
}

fn rand_bytes(bytes: &mut [u8]) {
    use rand::RngCore as _;
    rand::rng().fill_bytes(bytes);
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// Resets the peak resident set size (`VmHWM`) to the current one (Linux ≥ 4.0; where that is
/// refused the peak covers the whole process) and returns the current one (`VmRSS`).
fn start_peak_rss() -> u64 {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("note: cannot reset the peak RSS; peak_rss_kb covers the set-up too");
    }
    status_kb("VmRSS:")
}

/// The timed loop: how long it took, every request's latency, and the server's RSS before it.
struct Timed {
    elapsed: Duration,
    latencies: Vec<Duration>,
    rss_baseline_kb: u64,
}

/// Runs the load generator as a child process (`BENCH_LOAD_RUN`) and talks to it by lines:
/// the tokens to it; "warm" from it once the guard checks and the warm-up are done; "go" to it
/// once the peak RSS is reset; then its result, the elapsed time and every latency.
fn load_in_child(
    base: &str,
    tokens: &HashMap<String, String>,
    clients: u64,
    n: u64,
) -> Result<Timed> {
    let me = std::env::current_exe().map_err(|e| format!("this benchmark's executable: {e}"))?;
    let mut child = Command::new(me)
        .env("BENCH_LOAD_RUN", base)
        .env("BENCH_LOAD_CLIENTS", clients.to_string())
        .env("BENCH_N", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the load generator: {e}"))?;
    let result = talk_to_load_generator(&mut child, tokens);
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the load generator: {e}"))?;
    let result = result?;
    if !status.success() {
        return Err(format!("the load generator failed ({status})"));
    }
    Ok(result)
}

fn talk_to_load_generator(
    child: &mut std::process::Child,
    tokens: &HashMap<String, String>,
) -> Result<Timed> {
    let io = |e: std::io::Error| format!("talking to the load generator: {e}");
    let mut to = child.stdin.take().ok_or("no stdin to the load generator")?;
    let mut from = BufReader::new(
        child
            .stdout
            .take()
            .ok_or("no stdout from the load generator")?,
    );
    let mut line = String::new();
    writeln!(to, "{}", json!(tokens)).map_err(io)?;
    from.read_line(&mut line).map_err(io)?;
    if line.trim() != "warm" {
        return Err(format!("the load generator did not warm up: {line:?}"));
    }
    let rss_baseline_kb = start_peak_rss();
    writeln!(to, "go").map_err(io)?;
    line.clear();
    from.read_line(&mut line).map_err(io)?;
    let result: Value = serde_json::from_str(&line)
        .map_err(|e| format!("the load generator's result {line:?}: {e}"))?;
    let elapsed = result["elapsed_s"]
        .as_f64()
        .ok_or("a result without elapsed_s")?;
    let latencies = result["latencies_us"]
        .as_array()
        .ok_or("a result without latencies_us")?
        .iter()
        .map(|us| us.as_u64().map(Duration::from_micros))
        .collect::<Option<Vec<_>>>()
        .ok_or("a latency that is not a number")?;
    Ok(Timed {
        elapsed: Duration::from_secs_f64(elapsed),
        latencies,
        rss_baseline_kb,
    })
}

/// The load generator's process (`BENCH_LOAD_RUN` = the API's base URL): see [`load_in_child`].
fn generate_load(base: &str) -> ExitCode {
    let clients = std::env::var("BENCH_LOAD_CLIENTS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|k| *k > 0);
    let Some(clients) = clients else {
        eprintln!("BENCH_LOAD_CLIENTS must be a positive number");
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(load_as_told(base, clients, bench_n())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load generator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn load_as_told(base: &str, clients: u64, n: u64) -> Result<()> {
    let io = |e: std::io::Error| format!("talking to the server's process: {e}");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).map_err(io)?;
    let tokens: HashMap<String, String> =
        serde_json::from_str(&line).map_err(|e| format!("the tokens: {e}"))?;
    let api = Arc::new(Api::new(base, &tokens)?);
    guard_checks(&api).await?;
    run_clients(&api, clients, WARM_UP_PER_CLIENT * clients).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "warm").map_err(io)?;
    stdout.flush().map_err(io)?;
    line.clear();
    stdin.read_line(&mut line).map_err(io)?;
    if line.trim() != "go" {
        return Err(format!("expected go, got {line:?}"));
    }
    let start = Instant::now();
    let latencies = run_clients(&api, clients, n).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let micros: Vec<u128> = latencies.iter().map(Duration::as_micros).collect();
    writeln!(
        stdout,
        "{}",
        json!({ "elapsed_s": elapsed, "latencies_us": micros })
    )
    .map_err(io)?;
    stdout.flush().map_err(io)
}

/// Creates the workload's actors in one transaction and returns a session token for each,
/// by user id.
///
/// Every actor's id is the name the workload uses (`user-7`, `mgr-7`, `system`), since its
/// guards compare the actor's id with the context's `submitter`. They share one argon2 hash:
/// nobody signs in with a password here, and 1,053 hashes would take minutes on two cores.
/// Tokens are minted with the application's own keys, as a sign-in would.
async fn create_actors(state: &AppState) -> Result<HashMap<String, String>> {
    let now = state.clock.now();
    let from = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let hash = password::hash_blocking(SecretString::from("benchmark actors never sign in"))
        .await
        .map_err(|e| format!("hashing: {e:?}"))?;
    let mut roles: Vec<(String, &str)> = Vec::new();
    roles.extend((0..1000).map(|i| (format!("user-{i}"), "staff")));
    roles.extend((0..50).map(|i| (WorkloadContext::approver(i), "manager")));
    roles.push(("system".to_owned(), "system"));
    // The guard checks' other actors: a stranger who tries to submit, a clerk who tries to
    // approve, and instance 7's submitter who tries to approve their own application.
    roles.push(("someone-else".to_owned(), "staff"));
    roles.push(("clerk-1".to_owned(), "staff"));
    roles.push(("user-7".to_owned(), "manager"));

    let db_err = |what: &str| {
        let what = what.to_owned();
        move |e: sea_orm::DbErr| format!("{what}: {e}")
    };
    let api_err = |what: &str| {
        let what = what.to_owned();
        move |e: itaku::error::ApiError| format!("{what}: {e:?}")
    };
    let vocabulary = &state.kinds.vocabulary;
    let txn = state.db.begin().await.map_err(db_err("begin"))?;
    users::create_organisation(
        &txn,
        NewOrganisation {
            id: ORGANISATION.to_owned(),
            kind: "municipality".to_owned(),
            name_ja: "ベンチマーク市".to_owned(),
            name_en: Some("Benchmark City".to_owned()),
        },
        now,
    )
    .await
    .map_err(api_err("organisation"))?;
    let mut tokens = HashMap::new();
    for (id, role) in roles {
        if !tokens.contains_key(&id) {
            users::import_user(
                &txn,
                ImportedUser {
                    id: id.clone(),
                    login: id.clone(),
                    display_name: id.clone(),
                    email: None,
                    password_hash: hash.clone(),
                },
                now,
            )
            .await
            .map_err(api_err(&id))?;
            let token = state
                .jwt
                .issue(&id, now, state.token_ttl)
                .map_err(api_err("token"))?;
            tokens.insert(id.clone(), token.token);
        }
        users::add_membership_in(
            &txn,
            vocabulary,
            NewMembership {
                user_id: id.clone(),
                organisation_id: ORGANISATION.to_owned(),
                role: role.to_owned(),
                valid_from: from,
                valid_until: None,
            },
            now,
        )
        .await
        .map_err(api_err(&id))?;
    }
    txn.commit().await.map_err(db_err("commit"))?;
    Ok(tokens)
}

/// The HTTP client side: where the API is, and the `Authorization` header of every actor.
///
/// Each client keeps one connection of its own (HTTP/1.1, kept alive), driven in the client's
/// own task, as a load generator such as wrk does: the server gets the same requests as from
/// any client, and the load generator spends as little of the shared machine as it can.
struct Api {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// The path of the API's root, e.g. `/api/v1`.
    root: String,
    authorizations: HashMap<String, HeaderValue>,
}

/// An instance as a response shows it (the fields a client needs of it).
#[derive(serde::Deserialize)]
struct Seen {
    id: String,
    state: String,
    version: i64,
}

impl Seen {
    fn of(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body).map_err(|e| {
            format!(
                "a response that does not show an instance ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })
    }
}

impl Api {
    /// `base` is the API's root URL, e.g. `http://127.0.0.1:8080/api/v1`.
    fn new(base: &str, tokens: &HashMap<String, String>) -> Result<Self> {
        let uri: hyper::Uri = base
            .parse()
            .map_err(|e| format!("the API's URL {base}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("the API's URL {base} is not plain http"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the API's URL {base} names no host"))?
            .to_string();
        let authorizations = tokens
            .iter()
            .map(|(actor, token)| {
                HeaderValue::try_from(format!("Bearer {token}"))
                    .map(|value| (actor.clone(), value))
                    .map_err(|e| format!("the token of {actor}: {e}"))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            authority,
            root: uri.path().trim_end_matches('/').to_owned(),
            authorizations,
        })
    }

    /// A client with a connection of its own.
    async fn connect(&self) -> Result<Client<'_>> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake with {}: {e}", self.authority))?;
        Ok(Client {
            api: self,
            sender,
            connection: Box::pin(connection),
        })
    }
}

type Connection = hyper::client::conn::http1::Connection<
    hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    Full<Bytes>,
>;

/// One client's connection to the API.
struct Client<'a> {
    api: &'a Api,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    connection: std::pin::Pin<Box<Connection>>,
}

impl Client<'_> {
    /// Sends a request as `actor`; returns the status and the body.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        actor: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes)> {
        let authorization = self
            .api
            .authorizations
            .get(actor)
            .ok_or_else(|| format!("no token for {actor}"))?
            .clone();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.api.root))
            .header(header::HOST, self.api.authority.as_str())
            .header(header::AUTHORIZATION, authorization);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| format!("a request to {path}: {e}"))?;
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        // The connection does its I/O while it is polled: here, beside the exchange, rather
        // than in a task of its own that each request would have to wake.
        tokio::select! {
            biased;
            outcome = exchange => outcome.map_err(|e| format!("{path}: {e}")),
            closed = self.connection.as_mut() => {
                Err(format!("the connection closed during {path}: {closed:?}"))
            }
        }
    }

    async fn create(&mut self, actor: &str, context: &WorkloadContext) -> Result<(u16, Bytes)> {
        let body = serde_json::to_vec(&json!({ "workflow": WORKFLOW, "context": context }))
            .map_err(|e| e.to_string())?;
        self.send(Method::POST, "/instances", actor, Some(body))
            .await
    }

    async fn fire(
        &mut self,
        actor: &str,
        id: &str,
        event: &str,
        version: Option<i64>,
    ) -> Result<(u16, Bytes)> {
        let body = serde_json::to_vec(&json!({ "event": event, "version": version }))
            .map_err(|e| e.to_string())?;
        self.send(
            Method::POST,
            &format!("/instances/{id}/events"),
            actor,
            Some(body),
        )
        .await
    }

    async fn state(&mut self, id: &str) -> Result<String> {
        match self
            .send(Method::GET, &format!("/instances/{id}"), "system", None)
            .await?
        {
            (200, body) => Ok(Seen::of(&body)?.state),
            (status, body) => Err(format!(
                "reading instance {id}: {status} {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Creates an instance and checks it starts in `draft`.
    async fn created(&mut self, actor: &str, context: &WorkloadContext) -> Result<Seen> {
        match self.create(actor, context).await? {
            (201, body) => {
                let seen = Seen::of(&body)?;
                if seen.state == "draft" {
                    Ok(seen)
                } else {
                    Err(format!("instance {} created in {}", context.id, seen.state))
                }
            }
            (status, body) => Err(format!(
                "creating instance {}: {status} {}",
                context.id,
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Fires `event` as `actor` and reads the instance's state back.
    async fn fire_and_read(&mut self, actor: &str, id: &str, event: &str) -> Result<String> {
        self.fire(actor, id, event, None).await?;
        self.state(id).await
    }
}

/// The untimed guard checks of WORKLOAD.md, through the API: a refused event must leave the
/// state as it was (read back), an accepted one must move it.
async fn guard_checks(api: &Api) -> Result<()> {
    let expect = |what: &str, got: &str, want: &str| {
        if got == want {
            Ok(())
        } else {
            Err(format!("guard check {what}: expected {want}, got {got}"))
        }
    };
    let mut api = api.connect().await?;
    let i7 = api
        .created("user-7", &WorkloadContext::for_instance(7))
        .await?
        .id;
    let got = api.fire_and_read("someone-else", &i7, "submit").await?;
    expect("instance 7 submit by someone-else", &got, "draft")?;
    let got = api.fire_and_read("user-7", &i7, "submit").await?;
    expect("instance 7 submit", &got, "submitted")?;

    let mut c8 = WorkloadContext::for_instance(8);
    c8.evidence.0[2] = NaiveDate::from_ymd_opt(2025, 5, 31);
    let i8 = api.created("user-8", &c8).await?.id;
    api.fire_and_read("user-8", &i8, "submit").await?;
    let got = api.fire_and_read("system", &i8, "check_evidence").await?;
    expect(
        "instance 8 with iso27018 expired 2025-05-31",
        &got,
        "submitted",
    )?;

    let mut c9 = WorkloadContext::for_instance(9);
    c9.evidence.0[4] = None;
    let i9 = api.created("user-9", &c9).await?.id;
    api.fire_and_read("user-9", &i9, "submit").await?;
    let got = api.fire_and_read("system", &i9, "check_evidence").await?;
    expect("instance 9 without nda", &got, "submitted")?;

    let got = api.fire_and_read("system", &i7, "check_evidence").await?;
    expect("instance 7 check_evidence", &got, "evidence_ok")?;
    let got = api.fire_and_read("user-7", &i7, "approve").await?;
    expect("instance 7 approve by its submitter", &got, "evidence_ok")?;
    let got = api.fire_and_read("clerk-1", &i7, "approve").await?;
    expect("instance 7 approve by clerk-1 (staff)", &got, "evidence_ok")?;
    let got = api.fire_and_read("mgr-7", &i7, "approve").await?;
    expect("instance 7 approve by mgr-7", &got, "approved")
}

/// Runs `clients` concurrent clients over instances `0 .. n`, client k taking
/// `k, k + clients, …`. Returns the latency of every request.
async fn run_clients(api: &Arc<Api>, clients: u64, n: u64) -> Result<Vec<Duration>> {
    let mut tasks = Vec::with_capacity(usize::try_from(clients).unwrap_or(0));
    for k in 0..clients {
        let api = Arc::clone(api);
        tasks.push(tokio::spawn(
            async move { client(&api, k, clients, n).await },
        ));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| format!("a client failed: {e}"))??);
    }
    Ok(all)
}

/// One client: its share of the instances, each created, submitted, checked and approved.
async fn client(api: &Api, k: u64, step: u64, n: u64) -> Result<Vec<Duration>> {
    let step = usize::try_from(step).map_err(|e| e.to_string())?;
    let mut api = api.connect().await?;
    let mut latencies = Vec::new();
    for i in (k..n).step_by(step) {
        let ctx = WorkloadContext::for_instance(i);
        let approver = WorkloadContext::approver(i);
        let started = Instant::now();
        let mut seen = api.created(&ctx.submitter, &ctx).await?;
        latencies.push(started.elapsed());
        for (actor, event) in [
            (ctx.submitter.as_str(), "submit"),
            ("system", "check_evidence"),
            (approver.as_str(), "approve"),
        ] {
            let started = Instant::now();
            let (status, body) = api.fire(actor, &seen.id, event, Some(seen.version)).await?;
            latencies.push(started.elapsed());
            if status != 200 {
                return Err(format!(
                    "instance {i} {event}: {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            seen = Seen::of(&body)?;
        }
        if seen.state != "approved" {
            return Err(format!(
                "instance {i} ended in {}, not approved",
                seen.state
            ));
        }
    }
    Ok(latencies)
}
