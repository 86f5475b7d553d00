//! Audit trail at scale: anchoring and verifying N instances × 5 records, on SQLite and on
//! PostgreSQL. Prints one JSON line per backend:
//!
//! ```text
//! {"bench":"audit_scale","db":"sqlite","instances":…,"records":…,"first_anchor_ms":…,
//!  "anchor_unchanged_ms":…,"anchor_1pct_ms":…,"verify_ms":…,"verify_records_per_s":…}
//! ```
//!
//! Per backend: a fresh migrated database (SQLite: a file in a temporary folder, opened by
//! `itaku::db::connect` with WAL and `synchronous=FULL`; PostgreSQL: a new uniquely named
//! database on the server, dropped afterwards), seeded with N instances of 5 records each
//! (untimed). Timed: the first anchor (all N heads), an anchor with nothing changed, an anchor
//! after one more record on 1 % of the instances, and a full verify. The run fails (non-zero
//! exit) unless the anchors commit the expected heads and the verify report is clean with the
//! expected counts.
//!
//! `BENCH_N` sets N (default 10,000). `BENCH_DB` = `sqlite` or `postgres` runs one backend
//! (default both). `ITAKU_TEST_POSTGRES_URL` is the PostgreSQL server, as for the tests
//! (default `postgres://postgres@127.0.0.1:5432/postgres`). Run with
//! `cargo bench --bench audit_scale`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use entity::{workflow_definition, workflow_instance};
use itaku::services::audit::{
    anchor, append, render, verify, ChainHead, NewAuditRecord, GENESIS_HASH,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde::Serialize;
use serde_json::json;

mod scratch;

use scratch::{on_scratch_database, Backend, BenchResult};

const DEFAULT_N: u64 = 10_000;
/// Records per instance before the first anchor.
const RECORDS_PER_INSTANCE: i64 = 5;
/// Every `CHANGED_EVERY`-th instance gets one more record after the first anchor (1 %).
const CHANGED_EVERY: usize = 100;
/// Instances seeded per transaction.
const SEED_CHUNK: usize = 500;
const WORKFLOW_ID: &str = "bench";

/// What one backend measured.
struct Figures {
    instances: u64,
    records: u64,
    first_anchor: Duration,
    anchor_unchanged: Duration,
    anchor_1pct: Duration,
    verify: Duration,
}

fn main() -> ExitCode {
    let (n, backends) = match scratch::env_n(DEFAULT_N).and_then(|n| Ok((n, Backend::from_env()?)))
    {
        Ok(found) => found,
        Err(e) => {
            eprintln!("audit_scale: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("audit_scale: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut status = ExitCode::SUCCESS;
    for backend in backends {
        match runtime.block_on(run_backend(backend, n)) {
            Ok(figures) => match json_line(backend, &figures) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!(
                        "audit_scale: {}: cannot serialise the figures: {e}",
                        backend.name()
                    );
                    status = ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("audit_scale: {}: {e}", backend.name());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// One output line; fields serialise in declaration order.
#[derive(Serialize)]
struct Line {
    bench: &'static str,
    db: &'static str,
    instances: u64,
    records: u64,
    first_anchor_ms: f64,
    anchor_unchanged_ms: f64,
    anchor_1pct_ms: f64,
    verify_ms: f64,
    verify_records_per_s: u64,
}

fn json_line(backend: Backend, f: &Figures) -> Result<String, serde_json::Error> {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let verify_records_per_s = (f.records as f64 / f.verify.as_secs_f64()).round() as u64;
    serde_json::to_string(&Line {
        bench: "audit_scale",
        db: backend.name(),
        instances: f.instances,
        records: f.records,
        first_anchor_ms: ms(f.first_anchor),
        anchor_unchanged_ms: ms(f.anchor_unchanged),
        anchor_1pct_ms: ms(f.anchor_1pct),
        verify_ms: ms(f.verify),
        verify_records_per_s,
    })
}

/// Measures on a fresh database of the backend, removed afterwards.
async fn run_backend(backend: Backend, n: u64) -> BenchResult<Figures> {
    on_scratch_database(backend, |conn| async move { measure(&conn, n).await }).await
}

/// Seeds, then times the anchors and the verify, checking each result.
async fn measure(conn: &DatabaseConnection, n: u64) -> BenchResult<Figures> {
    let ids: Vec<String> = (0..n)
        .map(|i| format!("0196f7a0-0000-7000-8000-{i:012}"))
        .collect();
    let clock = Instant::now();
    let mut heads = seed(conn, &ids).await?;
    eprintln!(
        "audit_scale: seeded {n} instances x {RECORDS_PER_INSTANCE} records in {:.2?}",
        clock.elapsed()
    );

    let clock = Instant::now();
    let first = anchor(conn, at(10_000)).await?;
    let first_anchor = clock.elapsed();
    let first = first.ok_or("the first anchor wrote nothing")?;
    check("heads in the first anchor", first.heads, ids.len())?;

    let clock = Instant::now();
    let unchanged = anchor(conn, at(10_001)).await?;
    let anchor_unchanged = clock.elapsed();
    if let Some(summary) = unchanged {
        return Err(format!(
            "an anchor with nothing changed wrote anchor {} with {} heads",
            summary.seq, summary.heads
        )
        .into());
    }

    let mut changed = 0usize;
    for (id, head) in ids.iter().zip(heads.iter_mut()).step_by(CHANGED_EVERY) {
        *head = transition(conn, id, head.clone(), at(10_002)).await?;
        changed += 1;
    }
    let clock = Instant::now();
    let delta = anchor(conn, at(10_003)).await?;
    let anchor_1pct = clock.elapsed();
    let delta = delta.ok_or("the anchor after 1 % changed wrote nothing")?;
    check("heads in the 1 % anchor", delta.heads, changed)?;

    let clock = Instant::now();
    let report = verify(conn).await?;
    let verify = clock.elapsed();
    if !report.is_clean() {
        return Err(format!(
            "verify found {} problem(s):\n{}",
            report.problems,
            render(&report)
        )
        .into());
    }
    let changed = u64::try_from(changed)?;
    let records = n * u64::try_from(RECORDS_PER_INSTANCE)? + changed;
    check("instances verified", report.instances, n)?;
    check("records verified", report.records, records)?;
    check("anchors verified", report.anchors, 2)?;
    check(
        "anchored heads verified",
        report.anchored_heads,
        n + changed,
    )?;
    Ok(Figures {
        instances: n,
        records,
        first_anchor,
        anchor_unchanged,
        anchor_1pct,
        verify,
    })
}

fn check<T: PartialEq + std::fmt::Display>(what: &str, found: T, expected: T) -> BenchResult<()> {
    if found == expected {
        Ok(())
    } else {
        Err(format!("{what}: {found}, expected {expected}").into())
    }
}

/// A fixed instant `seconds` after a base with nanoseconds (the bench reads no clock).
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
        + TimeDelta::seconds(1_795_000_000 + seconds)
        + TimeDelta::nanoseconds(123_456_789)
}

/// The `n`-th record of an instance, shaped like a real transition.
fn nth_record(instance_id: &str, n: i64, at: DateTime<Utc>) -> NewAuditRecord {
    let (event, from, to) = match n {
        1 => ("create", None, "draft"),
        2 => ("submit", Some("draft"), "review"),
        _ => ("approve", Some("review"), "review"),
    };
    NewAuditRecord {
        instance_id: instance_id.to_owned(),
        at,
        actor_id: format!("user-{n}"),
        on_behalf_of: (n == 3).then(|| "manager-1".to_owned()),
        event: event.to_owned(),
        from_state: from.map(str::to_owned),
        to_state: to.to_owned(),
        step: (n >= 3).then(|| "chief".to_owned()),
        comment: Some(format!("コメント {n} \"quoted\"\n")),
        request_id: Some(format!("req-{instance_id}-{n}")),
        details: json!({"n": n, "unmet": [], "nested": {"z": 1.5, "a": "委託"}}),
    }
}

/// The workflow definition the instances reference, then the instances with their records,
/// `SEED_CHUNK` per transaction. Returns each instance's chain head, in `ids` order.
async fn seed(conn: &DatabaseConnection, ids: &[String]) -> BenchResult<Vec<ChainHead>> {
    workflow_definition::Entity::insert(workflow_definition::ActiveModel {
        workflow_id: Set(WORKFLOW_ID.to_owned()),
        version: Set(1),
        content_hash: Set("0".repeat(64)),
        source: Set(format!("id = \"{WORKFLOW_ID}\"\nversion = 1\n")),
        deployed_at: Set(at(0)),
    })
    .exec_without_returning(conn)
    .await?;
    let mut heads = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(SEED_CHUNK) {
        let txn = conn.begin().await?;
        let rows = chunk.iter().map(|id| workflow_instance::ActiveModel {
            id: Set(id.clone()),
            workflow_id: Set(WORKFLOW_ID.to_owned()),
            workflow_version: Set(1),
            state: Set("draft".to_owned()),
            version: Set(1),
            submitter: Set("user-1".to_owned()),
            organisation_id: Set(Some("org-1".to_owned())),
            context: Set("{}".to_owned()),
            progress: Set("{}".to_owned()),
            corrects_instance_id: Set(None),
            created_at: Set(at(0)),
            updated_at: Set(at(0)),
            audit_seq: Set(0),
            audit_head: Set(GENESIS_HASH.to_owned()),
            waiting_org: Set(None),
            waiting_roles: Set(None),
        });
        workflow_instance::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        for id in chunk {
            let mut head = ChainHead::genesis();
            for n in 1..=RECORDS_PER_INSTANCE {
                head = append(&txn, head, nth_record(id, n, at(n * 60))).await?;
            }
            store_head(&txn, id, &head, "review", 1 + RECORDS_PER_INSTANCE, at(300)).await?;
            heads.push(head);
        }
        txn.commit().await?;
    }
    Ok(heads)
}

/// One more record on an instance, in its own transaction, as a transition would.
async fn transition(
    conn: &DatabaseConnection,
    id: &str,
    prev: ChainHead,
    at: DateTime<Utc>,
) -> BenchResult<ChainHead> {
    let txn = conn.begin().await?;
    let rec = nth_record(id, prev.seq + 1, at);
    let head = append(&txn, prev, rec).await?;
    store_head(&txn, id, &head, "review", head.seq + 1, at).await?;
    txn.commit().await?;
    Ok(head)
}

/// Stores the chain head (and state, version, `updated_at`) on the instance row.
async fn store_head(
    conn: &impl ConnectionTrait,
    id: &str,
    head: &ChainHead,
    state: &str,
    version: i64,
    at: DateTime<Utc>,
) -> BenchResult<()> {
    use workflow_instance::Column as I;
    let updated = workflow_instance::Entity::update_many()
        .col_expr(I::State, Expr::value(state))
        .col_expr(I::Version, Expr::value(version))
        .col_expr(I::AuditSeq, Expr::value(head.seq))
        .col_expr(I::AuditHead, Expr::value(head.hash.clone()))
        .col_expr(I::UpdatedAt, Expr::value(at))
        .filter(I::Id.eq(id))
        .exec(conn)
        .await?;
    check("instance rows updated", updated.rows_affected, 1)
}
