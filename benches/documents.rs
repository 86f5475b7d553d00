//! Renders the PIA consignment section for `BENCH_N` consignment items (default 10,000), each
//! with a tier-2 and a cloud tier-3 subcontract, as CSV, XLSX and HTML; then the threshold test
//! (しきい値判断) of the same file — its 3 × `BENCH_N` nodes counted — as JSON and HTML. Prints
//! one JSON line per format with the time and size. Target (issue 6): under 5 s for 10,000 items.

use std::time::Instant;

use itaku::documents::pia::{self, PermittedNode, PiaSection};
use itaku::documents::threshold::{self, Contribution, PeopleBracket, ThresholdInputs};
use itaku::services::chains::HandlerBracket;

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let started = Instant::now();
    let items = (1..=n)
        .map(|i| {
            pia::item(
                i,
                &format!("委託事項{i} 国民健康保険の資格管理等に関する事務"),
                "国保情報集約システムを用いた資格情報の集約・提供、被保険者証の発行に係るデータ作成",
                "10人以上50人未満",
                "東京都国民健康保険団体連合会",
                "委託先から再委託先の商号又は名称、住所、再委託する理由、再委託する業務の範囲等を記載した書面の提出を受け、区が審査の上、書面により許諾する。",
                vec![
                    PermittedNode {
                        tier: 2,
                        contractor: "公益社団法人国民健康保険中央会".into(),
                        parent_contractor: "東京都国民健康保険団体連合会".into(),
                        scope_of_work: "国保情報集約システムの運用・保守".into(),
                        cloud: false,
                    },
                    PermittedNode {
                        tier: 3,
                        contractor: "クラウド事業者株式会社".into(),
                        parent_contractor: "公益社団法人国民健康保険中央会".into(),
                        scope_of_work: "クラウド基盤の提供".into(),
                        cloud: true,
                    },
                ],
            )
        })
        .collect();
    let section = PiaSection {
        municipality: "目黒区".into(),
        pia_file: "国民健康保険関係情報ファイル".into(),
        items,
    };
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let measure = |format: &str, render: &dyn Fn() -> usize| {
        let t = Instant::now();
        let bytes = render();
        println!(
            "{{\"bench\":\"pia_section\",\"format\":\"{format}\",\"items\":{n},\"ms\":{:.1},\"bytes\":{bytes},\"build_ms\":{build_ms:.1}}}",
            t.elapsed().as_secs_f64() * 1000.0
        );
    };
    measure("csv", &|| pia::to_csv(&section).len());
    measure("xlsx", &|| {
        pia::to_xlsx(&section).map(|b| b.len()).unwrap_or(0)
    });
    measure("html", &|| pia::to_html(&section).len());

    // The threshold test over the same items: tier 1 from the item's bracket, tiers 2 and 3
    // from their nodes'.
    let contributions: Vec<Contribution> = section
        .items
        .iter()
        .flat_map(|item| {
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
                item_title: item.title.clone(),
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
