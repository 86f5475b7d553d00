//! Obligation reminders at scale (issue 5): one reminder pass over N obligations (default
//! 1,000,000) on SQLite and on PostgreSQL. Prints one JSON line per backend:
//!
//! ```text
//! {"bench":"obligations","db":"postgres","obligations":1000000,"seed_ms":…,"generate_nodes":1000,
//!  "generate_ms":…,"generated":2000,"due":…,"pass_ms":…,"second_pass_ms":…}
//! ```
//!
//! Per backend, a fresh migrated database (SQLite: a file in a temporary folder with the
//! product's settings, WAL and `synchronous=FULL`; PostgreSQL: a new uniquely named database,
//! dropped afterwards). Seeding (timed as `seed_ms`, multi-row inserts of 1,000): one
//! municipality, 1,000 contractors with a permitted node each, and N open obligations whose due
//! days are spread over the 2026 年度, each at the reminder stage a daily pass would have left it
//! in on the day before the measured one. Timed: the real generator over the 1,000 nodes
//! (`generate_ms`, 2,000 obligations), then one reminder pass on Thursday 2026-10-15
//! (`pass_ms`: finding what is due and, in the same transactions, moving each to its next stage
//! and writing its outbox row), then a second pass the same day (`second_pass_ms`, nothing
//! due). The run fails unless the pass fires exactly the stages expected, writes one outbox row
//! per stage, and the second pass fires none.
//!
//! `BENCH_N` sets N. `BENCH_DB` = `sqlite` or `postgres` runs one backend (default both).
//! `ITAKU_TEST_POSTGRES_URL` is the PostgreSQL server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Run with `cargo bench --bench obligations`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{chain_node, consignment_item, obligation, outbox};
use itaku::domain::obligations::ObligationPolicy;
use itaku::schedule::calendar::BusinessCalendar;
use itaku::services::obligations;
use itaku::services::users::{self, NewOrganisation};
use itaku::workflow::Now;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde::Serialize;

mod scratch;

use scratch::{on_scratch_database, Backend, BenchResult};

const DEFAULT_N: u64 = 1_000_000;
const NODES: usize = 1_000;
const CHUNK: usize = 1_000;
const MUNICIPALITY: &str = "bench-city";

#[derive(Serialize)]
struct Line {
    bench: &'static str,
    db: &'static str,
    obligations: u64,
    seed_ms: u128,
    generate_nodes: usize,
    generate_ms: f64,
    generated: u64,
    due: usize,
    pass_ms: f64,
    second_pass_ms: f64,
}

fn main() -> ExitCode {
    let (n, backends) = match scratch::env_n(DEFAULT_N).and_then(|n| Ok((n, Backend::from_env()?)))
    {
        Ok(found) => found,
        Err(e) => {
            eprintln!("obligations: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("obligations: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut status = ExitCode::SUCCESS;
    for backend in backends {
        match runtime.block_on(run_backend(backend, n)) {
            Ok(line) => match serde_json::to_string(&line) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("obligations: {e}");
                    status = ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("obligations: {}: {e}", backend.name());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// Measures on a fresh database of the backend, removed afterwards.
async fn run_backend(backend: Backend, n: u64) -> BenchResult<Line> {
    on_scratch_database(
        backend,
        |conn| async move { measure(backend, &conn, n).await },
    )
    .await
}

fn day(y: i32, m: u32, d: u32) -> BenchResult<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("{y}-{m}-{d} is not a day").into())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn measure(backend: Backend, conn: &DatabaseConnection, n: u64) -> BenchResult<Line> {
    let policy = ObligationPolicy::default_policy()?;
    let mut calendar = BusinessCalendar::new();
    let now: DateTime<Utc> = DateTime::from_timestamp(1_792_000_000, 0).ok_or("a time")?;
    let today = day(2026, 10, 15)?;
    let yesterday = day(2026, 10, 14)?;

    let clock = Instant::now();
    let nodes = seed_chain(conn, now).await?;
    // Due days spread over the 年度, each at the stage yesterday's pass left it in.
    let start = day(2026, 4, 1)?;
    let mut by_due: HashMap<NaiveDate, (i32, Option<NaiveDate>, bool)> = HashMap::new();
    let mut due_today = 0usize;
    let mut rows = Vec::with_capacity(CHUNK);
    for i in 0..n {
        let offset = i % 365;
        let raw = start
            .checked_add_days(chrono::Days::new(offset))
            .ok_or("a due day")?;
        let due = calendar.on_or_before(raw);
        let &mut (stage, next, fires) = by_due.entry(due).or_insert_with(|| {
            let reached = policy.stage_due(&mut calendar, due, 0, yesterday);
            let from = reached.map_or(0, |ix| ix + 1);
            let fires = policy.stage_due(&mut calendar, due, from, today).is_some();
            let next = policy.stage_day(&mut calendar, due, from);
            (i32::try_from(from).unwrap_or(0), next, fires)
        });
        if fires {
            due_today += 1;
        }
        let node = &nodes[usize::try_from(i)? % nodes.len()];
        rows.push(obligation::ActiveModel {
            id: Set(format!("0196f7a0-0000-7000-8000-{i:012}")),
            generation_key: Set(format!("bench:{i}")),
            kind: Set(if i % 2 == 0 { "training" } else { "inspection" }.to_owned()),
            organisation_id: Set(node.contractor_id.clone()),
            municipality_id: Set(MUNICIPALITY.to_owned()),
            item_id: Set(node.item_id.clone()),
            node_id: Set(node.id.clone()),
            fiscal_year: Set(2026),
            due_on: Set(due),
            status: Set("open".to_owned()),
            parent_id: Set(None),
            detail: Set(r#"{"title":{"ja":"研修","en":"Training"}}"#.to_owned()),
            record: Set(None),
            record_file: Set(None),
            record_filename: Set(None),
            submitted_by: Set(None),
            submitted_at: Set(None),
            decided_by: Set(None),
            decided_at: Set(None),
            return_reason: Set(None),
            reminder_stage: Set(stage),
            next_reminder_on: Set(next),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        });
        if rows.len() == CHUNK {
            insert(conn, std::mem::take(&mut rows)).await?;
        }
    }
    insert(conn, rows).await?;
    let seed = clock.elapsed();
    eprintln!(
        "obligations: {}: seeded {n} obligations in {seed:.2?}; {due_today} due",
        backend.name()
    );

    let clock = Instant::now();
    let generated =
        obligations::generate(conn, &policy, &mut calendar, Now { at: now, today }).await?;
    let generate = clock.elapsed();
    check(
        "obligations generated for the nodes",
        generated,
        2 * NODES as u64,
    )?;

    let pass_now = Now { at: now, today };
    let clock = Instant::now();
    let fired = obligations::remind_due(conn, &policy, &mut calendar, pass_now).await?;
    let pass = clock.elapsed();
    check("stages fired", fired.len() as u64, due_today as u64)?;
    let rows = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.starts_with("obligation:"))
        .count(conn)
        .await?;
    check("outbox rows", rows, due_today as u64)?;

    let clock = Instant::now();
    let again = obligations::remind_due(conn, &policy, &mut calendar, pass_now).await?;
    let second = clock.elapsed();
    check("stages fired by the second pass", again.len() as u64, 0)?;

    Ok(Line {
        bench: "obligations",
        db: backend.name(),
        obligations: n,
        seed_ms: seed.as_millis(),
        generate_nodes: NODES,
        generate_ms: ms(generate),
        generated,
        due: due_today,
        pass_ms: ms(pass),
        second_pass_ms: ms(second),
    })
}

fn check(what: &str, got: u64, want: u64) -> BenchResult<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, expected {want}").into())
    }
}

async fn insert(conn: &DatabaseConnection, rows: Vec<obligation::ActiveModel>) -> BenchResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let txn = conn.begin().await?;
    obligation::Entity::insert_many(rows)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// One municipality with one consignment item and 1,000 contractors, each with a permitted node.
async fn seed_chain(
    conn: &DatabaseConnection,
    now: DateTime<Utc>,
) -> BenchResult<Vec<chain_node::Model>> {
    let organisation = |id: String, kind: &str| NewOrganisation {
        id,
        kind: kind.to_owned(),
        name_ja: "ベンチ".to_owned(),
        name_en: None,
    };
    users::create_organisation(
        conn,
        organisation(MUNICIPALITY.to_owned(), "municipality"),
        now,
    )
    .await?;
    for i in 0..NODES {
        users::create_organisation(
            conn,
            organisation(format!("bench-vendor-{i}"), "vendor"),
            now,
        )
        .await?;
    }
    let item = consignment_item::Model {
        id: "bench-item".to_owned(),
        municipality_id: MUNICIPALITY.to_owned(),
        owning_section: None,
        title: "ベンチマーク".to_owned(),
        content: "ベンチマーク".to_owned(),
        handler_bracket: "from_10_to_49".to_owned(),
        data_items: "[]".to_owned(),
        pia_file: "ファイル".to_owned(),
        recording_medium: "クラウド".to_owned(),
        period_start: day(2020, 4, 1)?,
        period_end: day(2099, 3, 31)?,
        contractor_id: "bench-vendor-0".to_owned(),
        subcontract_policy: "書面により許諾する".to_owned(),
        registered_work: None,
        consignment_reason: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    consignment_item::Entity::insert(consignment_item::ActiveModel::from(item))
        .exec_without_returning(conn)
        .await?;
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        nodes.push(chain_node::Model {
            id: format!("bench-node-{i}"),
            item_id: "bench-item".to_owned(),
            parent_id: None,
            tier: 1,
            contractor_id: format!("bench-vendor-{i}"),
            scope_of_work: "運用".to_owned(),
            data_scope: "資格情報".to_owned(),
            reason: "運用".to_owned(),
            capability: "実績".to_owned(),
            inspection_requirements: "受け入れる".to_owned(),
            planned_amount: None,
            structure_chart: "{}".to_owned(),
            supervision: "月次".to_owned(),
            period_start: day(2020, 4, 1)?,
            period_end: day(2099, 3, 31)?,
            hosts_environment: false,
            cloud_classification: None,
            handler_bracket: None,
            recording_medium: None,
            responsible_person: None,
            manager: None,
            staff_count: None,
            work_location: None,
            service_name: None,
            advance_permission: None,
            permission_state: "permitted".to_owned(),
            state_changed_at: now,
            state_reason: None,
            created_at: now,
            updated_at: now,
            version: 1,
        });
    }
    let txn = conn.begin().await?;
    for chunk in nodes.chunks(200) {
        chain_node::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(chain_node::ActiveModel::from)
                .collect::<Vec<_>>(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(nodes)
}
