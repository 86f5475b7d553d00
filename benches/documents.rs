//! The documents at scale (issue 6).
//!
//! **PIA section**: `BENCH_N` consignment items (default 10,000) of one PIA file, each with a
//! tier-1 node, a permitted tier-2 subcontract and a permitted cloud tier-3, seeded into a fresh
//! database of each backend (`BENCH_DB`: `sqlite`, `postgres`, both by default); then the real
//! export (`services::documents::export_pia`, what `GET /api/v1/documents/pia` streams) in each
//! format, read to the end as the response would be. Prints one JSON line per backend and format
//! with the time, the size and the growth of the process's resident memory during the export
//! (`rss_growth_kb`: the export streams, so it stays flat as N grows). Target: under 5 s for
//! 10,000 items.
//!
//! **Threshold test** of the same file, its 3 × `BENCH_N` contributions counted, as JSON and
//! HTML (in memory: the loading is the chains' query).
//!
//! `ITAKU_TEST_POSTGRES_URL` is the PostgreSQL server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Run with `cargo bench --bench documents`.

use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{chain_node, consignment_item};
use itaku::documents::pia::PiaFormat;
use itaku::documents::threshold::{self, Contribution, PeopleBracket, ThresholdInputs};
use itaku::services::access::Viewer;
use itaku::services::chains::HandlerBracket;
use itaku::services::documents;
use itaku::services::users::{self, NewOrganisation};
use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};

mod common;
mod scratch;

use common::status_kb;
use scratch::{on_scratch_database, Backend, BenchResult};

const DEFAULT_N: u64 = 10_000;
const CHUNK: usize = 500;
const MUNICIPALITY: &str = "bench-city";
const PIA_FILE: &str = "国民健康保険関係情報ファイル";
const TITLE: &str = "国民健康保険の資格管理等に関する事務";
const FORMATS: [(&str, PiaFormat); 4] = [
    ("json", PiaFormat::Json),
    ("csv", PiaFormat::Csv),
    ("xlsx", PiaFormat::Xlsx),
    ("html", PiaFormat::Html),
];

fn main() -> ExitCode {
    let (n, backends) = match scratch::env_n(DEFAULT_N).and_then(|n| Ok((n, Backend::from_env()?)))
    {
        Ok(found) => found,
        Err(e) => {
            eprintln!("documents: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = scratch::per_backend("documents", backends, |backend| {
        on_scratch_database(backend, move |conn| async move {
            pia_exports(backend, &conn, n).await
        })
    });
    threshold_test(usize::try_from(n).unwrap_or(usize::MAX));
    status
}

fn day(y: i32, m: u32, d: u32) -> BenchResult<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("{y}-{m}-{d} is not a day").into())
}

/// Seeds the items, then exports the section in each format and checks what came out.
async fn pia_exports(backend: Backend, conn: &DatabaseConnection, n: u64) -> BenchResult<()> {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_792_000_000, 0).ok_or("a time")?;
    let clock = Instant::now();
    seed(conn, n, now).await?;
    eprintln!(
        "documents: {}: seeded {n} items with 3 nodes each in {:.2?}",
        backend.name(),
        clock.elapsed()
    );
    let viewer = Viewer {
        user_id: "bench-officer".to_owned(),
        municipal: [MUNICIPALITY.to_owned()].into(),
        municipal_writer: [MUNICIPALITY.to_owned()].into(),
        contractor: Default::default(),
        member: [MUNICIPALITY.to_owned()].into(),
    };
    for (name, format) in FORMATS {
        let rss_before = status_kb("VmRSS:");
        let clock = Instant::now();
        let mut export = documents::export_pia(conn, &viewer, MUNICIPALITY, PIA_FILE, format)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (mut bytes, mut chunks, mut peak_rss) = (0usize, 0usize, rss_before);
        let (mut first, mut last) = (Vec::new(), Vec::new());
        while let Some(chunk) = export.body.recv().await {
            let chunk = chunk.map_err(|e| format!("{e:?}"))?;
            bytes += chunk.len();
            chunks += 1;
            if first.len() < 2 {
                first.extend_from_slice(&chunk[..chunk.len().min(2)]);
            }
            if chunks % 64 == 0 {
                peak_rss = peak_rss.max(status_kb("VmRSS:"));
            }
            if format == PiaFormat::Json {
                last = chunk;
            }
        }
        let ms = clock.elapsed().as_secs_f64() * 1000.0;
        peak_rss = peak_rss.max(status_kb("VmRSS:"));
        if format == PiaFormat::Json && !last.ends_with(b"]}") {
            return Err("the JSON export did not end".into());
        }
        // Every item's text is over 200 bytes; XLSX is zipped, so only its start is checked.
        let short = match format {
            PiaFormat::Xlsx => !first.starts_with(b"PK"),
            _ => bytes < usize::try_from(n)? * 200,
        };
        if short {
            return Err(format!("the {name} export is too short: {bytes} bytes").into());
        }
        println!(
            "{{\"bench\":\"pia_section\",\"db\":\"{}\",\"format\":\"{name}\",\"items\":{n},\"ms\":{ms:.1},\"bytes\":{bytes},\"chunks\":{chunks},\"rss_growth_kb\":{}}}",
            backend.name(),
            peak_rss.saturating_sub(rss_before)
        );
    }
    Ok(())
}

/// One municipality, three contractors, and `n` items each with a tier-1, a tier-2 and a cloud
/// tier-3 node, all permitted.
async fn seed(conn: &DatabaseConnection, n: u64, now: DateTime<Utc>) -> BenchResult<()> {
    for (id, kind, name) in [
        (MUNICIPALITY, "municipality", "目黒区"),
        ("bench-kokuhoren", "vendor", "東京都国民健康保険団体連合会"),
        ("bench-chuokai", "vendor", "公益社団法人国民健康保険中央会"),
        ("bench-cloud", "vendor", "クラウド事業者株式会社"),
    ] {
        let org = NewOrganisation {
            id: id.to_owned(),
            kind: kind.to_owned(),
            name_ja: name.to_owned(),
            name_en: None,
        };
        users::create_organisation(conn, org, now).await?;
    }
    let (start, end) = (day(2026, 4, 1)?, day(2027, 3, 31)?);
    let mut items = Vec::with_capacity(CHUNK);
    let mut nodes = Vec::with_capacity(3 * CHUNK);
    for i in 0..n {
        let item_id = format!("bench-item-{i:06}");
        items.push(consignment_item::ActiveModel {
            id: Set(item_id.clone()),
            municipality_id: Set(MUNICIPALITY.to_owned()),
            owning_section: Set(None),
            title: Set(format!("{TITLE} ({i})")),
            content: Set("国保情報集約システムを用いた資格情報の集約・提供、被保険者証の発行に係るデータ作成".to_owned()),
            handler_bracket: Set("from_10_to_49".to_owned()),
            data_items: Set("[]".to_owned()),
            pia_file: Set(PIA_FILE.to_owned()),
            recording_medium: Set("クラウド".to_owned()),
            period_start: Set(start),
            period_end: Set(end),
            contractor_id: Set("bench-kokuhoren".to_owned()),
            subcontract_policy: Set("委託先から再委託先の商号又は名称、住所、再委託する理由、再委託する業務の範囲等を記載した書面の提出を受け、区が審査の上、書面により許諾する。".to_owned()),
            created_at: Set(now + chrono::Duration::milliseconds(i64::try_from(i)?)),
            updated_at: Set(now),
            version: Set(1),
            ..Default::default()
        });
        for (tier, contractor, work, cloud) in [
            (
                1,
                "bench-kokuhoren",
                "国保情報集約システムによる資格管理",
                false,
            ),
            (
                2,
                "bench-chuokai",
                "国保情報集約システムの運用・保守",
                false,
            ),
            (3, "bench-cloud", "クラウド基盤の提供", true),
        ] {
            nodes.push(chain_node::ActiveModel {
                id: Set(format!("{item_id}-t{tier}")),
                item_id: Set(item_id.clone()),
                parent_id: Set((tier > 1).then(|| format!("{item_id}-t{}", tier - 1))),
                tier: Set(tier),
                contractor_id: Set(contractor.to_owned()),
                scope_of_work: Set(work.to_owned()),
                data_scope: Set("資格情報".to_owned()),
                reason: Set("運用".to_owned()),
                capability: Set("実績".to_owned()),
                inspection_requirements: Set("受け入れる".to_owned()),
                planned_amount: Set(None),
                structure_chart: Set("{}".to_owned()),
                supervision: Set("月次".to_owned()),
                period_start: Set(start),
                period_end: Set(end),
                hosts_environment: Set(cloud),
                cloud_classification: Set(cloud.then(|| "handles_data".to_owned())),
                handler_bracket: Set(Some("from_10_to_49".to_owned())),
                service_name: Set(None),
                advance_permission: Set(None),
                permission_state: Set("permitted".to_owned()),
                state_changed_at: Set(now),
                state_reason: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
                ..Default::default()
            });
        }
        if items.len() == CHUNK {
            insert(conn, std::mem::take(&mut items), std::mem::take(&mut nodes)).await?;
        }
    }
    insert(conn, items, nodes).await
}

async fn insert(
    conn: &DatabaseConnection,
    items: Vec<consignment_item::ActiveModel>,
    nodes: Vec<chain_node::ActiveModel>,
) -> BenchResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let txn = conn.begin().await?;
    consignment_item::Entity::insert_many(items)
        .exec_without_returning(&txn)
        .await?;
    for chunk in nodes.chunks(CHUNK) {
        chain_node::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The threshold test over `n` items: tier 1 from the item's bracket, tiers 2 and 3 from their
/// nodes'.
fn threshold_test(n: usize) {
    let contributions: Vec<Contribution> = (1..=n)
        .flat_map(|i| {
            [
                (
                    "tokyo_kokuhoren",
                    "東京都国民健康保険団体連合会",
                    1,
                    HandlerBracket::From10To49,
                ),
                (
                    "kokuho_chuokai",
                    "公益社団法人国民健康保険中央会",
                    2,
                    HandlerBracket::From50To99,
                ),
                (
                    "cloud_provider",
                    "クラウド事業者株式会社",
                    3,
                    HandlerBracket::Under10,
                ),
            ]
            .map(|(id, name, tier, bracket)| Contribution {
                organisation_id: id.to_owned(),
                organisation_name: name.to_owned(),
                item_title: format!("{TITLE} ({i})"),
                tier,
                bracket: Some(bracket),
            })
        })
        .collect();
    let inputs = ThresholdInputs {
        municipality: "目黒区".into(),
        pia_file: "国民健康保険関係情報ファイル".into(),
        people: Some(PeopleBracket::From100000To299999),
        own_staff: Some(HandlerBracket::From100To499),
        counted_on: chrono::NaiveDate::from_ymd_opt(2026, 4, 1),
        last_serious_incident_on: None,
        contributions,
    };
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default();
    let measure = |format: &str, render: &dyn Fn() -> usize| {
        let t = Instant::now();
        let bytes = render();
        println!(
            "{{\"bench\":\"threshold_test\",\"format\":\"{format}\",\"items\":{n},\"nodes\":{},\"ms\":{:.1},\"bytes\":{bytes}}}",
            inputs.contributions.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    };
    measure("json", &|| {
        serde_json::to_vec(&threshold::evaluate(&inputs, today)).map_or(0, |b| b.len())
    });
    measure("html", &|| {
        threshold::to_html(&threshold::evaluate(&inputs, today)).len()
    });
}
