//! Demonstration data taken from the seeds: 目黒区 and 新宿区 consign NHI work to 東京都国保連,
//! which subcontracts to 国保中央会, which runs the system on a cloud provider. Applications are
//! created and moved through the real services, so every one has its audit trail.

use chrono::NaiveDate;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;

use crate::error::ApiError;
use crate::services::access::Viewer;
use crate::services::instances::{Acting, InstanceError};
use crate::services::users::{self, NewDeputy, NewMembership, NewOrganisation, NewUser};
use crate::startup::AppState;
use crate::workflow::{Actor, Now};

/// The password of every demo account (printed at start).
pub const DEMO_PASSWORD: &str = "itaku-demo-2026";

/// One demo account, for the start-up message.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub login: &'static str,
    pub who: &'static str,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot seed demo data: {0}")]
    Api(String),
    #[error("cannot seed demo application: {0:?}")]
    Instance(#[from] InstanceError),
}

impl From<sea_orm::DbErr> for DemoError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Api(e.to_string())
    }
}

impl From<ApiError> for DemoError {
    fn from(e: ApiError) -> Self {
        // Debug carries the details (which field, why), which is what a seeding bug needs.
        Self::Api(format!("{e:?}"))
    }
}

const ORGS: &[(&str, &str, &str, &str)] = &[
    ("meguro", "municipality", "目黒区", "Meguro City"),
    ("shinjuku", "municipality", "新宿区", "Shinjuku City"),
    (
        "tokyo_kokuhoren",
        "nhi_federation",
        "東京都国民健康保険団体連合会",
        "Tokyo NHI Federation",
    ),
    (
        "kokuho_chuokai",
        "central_association",
        "公益社団法人国民健康保険中央会",
        "All-Japan Federation of NHI Organizations",
    ),
    (
        "cloud_provider",
        "cloud_provider",
        "クラウド事業者株式会社",
        "Cloud provider",
    ),
    (
        "data_entry_co",
        "vendor",
        "データ入力株式会社",
        "Data Entry Co.",
    ),
    (
        "entry_center",
        "vendor",
        "入力センター株式会社",
        "Entry Center Co.",
    ),
    (
        "entry_center_b",
        "vendor",
        "第二入力センター株式会社",
        "Entry Center B",
    ),
    (
        "entry_center_c",
        "vendor",
        "第三入力センター株式会社",
        "Entry Center C",
    ),
    (
        "entry_center_d",
        "vendor",
        "第四入力センター株式会社",
        "Entry Center D",
    ),
    ("expired_co", "vendor", "期限切れ株式会社", "Expired Co."),
];

/// (login, display name, organisation, roles, description)
const USERS: &[(&str, &str, &str, &[&str], &str)] = &[
    (
        "admin",
        "システム管理者",
        "meguro",
        &["admin"],
        "administrator",
    ),
    (
        "meguro.officer",
        "目黒 担当",
        "meguro",
        &["officer"],
        "目黒区 担当者 (officer)",
    ),
    (
        "meguro.chief",
        "目黒 係長",
        "meguro",
        &["chief"],
        "目黒区 係長 (chief)",
    ),
    (
        "meguro.manager",
        "目黒 課長",
        "meguro",
        &["manager"],
        "目黒区 課長 (manager)",
    ),
    (
        "meguro.deputy",
        "目黒 課長代理",
        "meguro",
        &["chief"],
        "目黒区 課長代理 — registered deputy of the manager (代決)",
    ),
    (
        "meguro.auditor",
        "目黒 監査",
        "meguro",
        &["auditor"],
        "目黒区 監査担当 (auditor)",
    ),
    (
        "shinjuku.officer",
        "新宿 担当",
        "shinjuku",
        &["officer"],
        "新宿区 担当者 (officer)",
    ),
    (
        "shinjuku.chief",
        "新宿 係長",
        "shinjuku",
        &["chief"],
        "新宿区 係長 (chief)",
    ),
    (
        "shinjuku.manager",
        "新宿 課長",
        "shinjuku",
        &["manager"],
        "新宿区 課長 (manager)",
    ),
    (
        "kokuhoren.staff",
        "国保連 担当",
        "tokyo_kokuhoren",
        &["contractor"],
        "東京都国保連 (tier-1 contractor)",
    ),
    (
        "chuokai.staff",
        "中央会 担当",
        "kokuho_chuokai",
        &["contractor"],
        "国保中央会 (tier-2 contractor)",
    ),
    (
        "cloud.staff",
        "クラウド 担当",
        "cloud_provider",
        &["contractor"],
        "クラウド事業者 (tier-3 contractor)",
    ),
    (
        "vendor.staff",
        "データ入力 担当",
        "data_entry_co",
        &["contractor"],
        "データ入力株式会社 (tier-1 contractor of 目黒区's other item)",
    ),
];

/// Seeds the demo data once; on a database that has it already, changes nothing. Returns the
/// accounts to print.
pub async fn seed(state: &AppState) -> Result<Vec<DemoLogin>, DemoError> {
    let logins: Vec<DemoLogin> = USERS
        .iter()
        .map(|(login, _, _, _, who)| DemoLogin { login, who })
        .collect();
    if users::find_by_login(&state.db, "admin").await?.is_some() {
        return Ok(logins);
    }
    let now = state.clock.now();
    let today = state.clock.today_jst();
    let since = NaiveDate::from_ymd_opt(2025, 4, 1).unwrap_or(today);
    for (id, kind, ja, en) in ORGS {
        users::create_organisation(
            &state.db,
            NewOrganisation {
                id: (*id).to_owned(),
                kind: (*kind).to_owned(),
                name_ja: (*ja).to_owned(),
                name_en: Some((*en).to_owned()),
            },
            now,
        )
        .await?;
    }
    let mut ids = std::collections::BTreeMap::new();
    for (login, name, org, roles, _) in USERS {
        let user = users::create_user(
            &state.db,
            NewUser {
                login: (*login).to_owned(),
                display_name: (*name).to_owned(),
                email: Some(format!("{login}@demo.invalid")),
                password: SecretString::from(DEMO_PASSWORD),
            },
            now,
        )
        .await?;
        for role in *roles {
            users::add_membership(
                &state.db,
                NewMembership {
                    user_id: user.id.clone(),
                    organisation_id: (*org).to_owned(),
                    role: (*role).to_owned(),
                    valid_from: since,
                    valid_until: None,
                },
                now,
            )
            .await?;
        }
        ids.insert(*login, user.id);
    }
    let id = |login: &str| ids.get(login).cloned().unwrap_or_default();
    users::add_deputy(
        &state.db,
        NewDeputy {
            principal_user_id: id("meguro.manager"),
            deputy_user_id: id("meguro.deputy"),
            role: "manager".to_owned(),
            organisation_id: "meguro".to_owned(),
            valid_from: since,
            valid_until: None,
        },
        now,
    )
    .await?;

    chains(state, &id, now, today).await?;
    obligations_under_way(state, &id, now, today).await?;
    ismap_lists(state, &id("admin"), now).await?;
    Ok(logins)
}

/// The 年度's obligations, some of them under way, so that their screens and the calendar have
/// something to show: 東京都国保連 submitted its training's attendance record to 目黒区 (two
/// absentees; waiting for 目黒区's officer), and 目黒区 reported its inspection of 東京都国保連 with
/// a finding whose follow-up is now 東京都国保連's obligation, due within the month.
async fn obligations_under_way(
    state: &AppState,
    id: &impl Fn(&str) -> String,
    at: chrono::DateTime<chrono::Utc>,
    today: NaiveDate,
) -> Result<(), DemoError> {
    use crate::services::obligations::{self as ob, ObligationFilter, RecordFile, RecordInput};
    let policy = &state.obligation_policy;
    let mut calendar = crate::schedule::calendar::BusinessCalendar::new();
    let now = Now { at, today };
    ob::generate(&state.db, policy, &mut calendar, now)
        .await
        .map_err(|e| DemoError::Api(e.to_string()))?;
    let kokuhoren = acting_as(state, &id("kokuhoren.staff"), today).await?;
    let kokuhoren = Viewer::new(&kokuhoren.id, &kokuhoren.grants);
    let officer = acting_as(state, &id("meguro.officer"), today).await?;
    let officer = Viewer::new(&officer.id, &officer.grants);
    let meguros = |kind: &'static str| {
        let filter = ObligationFilter {
            kind: Some(kind.to_owned()),
            organisation: Some("tokyo_kokuhoren".to_owned()),
            ..ObligationFilter::default()
        };
        let viewer = &kokuhoren;
        async move {
            let page = ob::list(&state.db, viewer, &filter, today).await?;
            page.items
                .into_iter()
                .find(|o| o.municipality_id == "meguro")
                .ok_or_else(|| DemoError::Api(format!("no {kind} obligation of 東京都国保連")))
        }
    };
    let training = meguros(crate::domain::obligations::TRAINING).await?;
    let attendance: RecordInput = serde_json::from_value(json!({ "record": {
        "kind": "attendance", "date": today, "topic": "特定個人情報の適正な取扱いと漏えい時の報告",
        "attendee_count": 18, "absent_count": 2 } }))
    .map_err(|e| DemoError::Api(e.to_string()))?;
    let list = RecordFile::inspect("受講者名簿.pdf", DEMO_PDF.to_vec(), DEMO_PDF.len())
        .map_err(|(_, e)| DemoError::Api(format!("{e:?}")))?;
    ob::submit(
        &state.db,
        policy,
        &mut calendar,
        &kokuhoren,
        &training.id,
        attendance,
        Some(Ok(list)),
        now,
    )
    .await?;
    let inspection = meguros(crate::domain::obligations::INSPECTION).await?;
    let report: RecordInput = serde_json::from_value(json!({ "record": {
        "kind": "inspection", "date": today, "mode": "on_site",
        "inspectors": ["目黒区 国保年金課 担当者", "目黒区 情報政策課 担当者"],
        "findings": [
            { "description": "入退室記録の確認が月1回にとどまっていた",
              "follow_up": "入退室記録を週1回確認する手順に改め、その記録を報告する" },
            { "description": "持出し媒体の管理簿は適切に運用されていた" } ] } }))
    .map_err(|e| DemoError::Api(e.to_string()))?;
    ob::record(
        &state.db,
        policy,
        &mut calendar,
        &officer,
        &inspection.id,
        report,
        now,
    )
    .await?;
    Ok(())
}

/// Two imports of a small ISMAP list (the Japanese headers of the published list): the second
/// adds a service and renews the demo cloud provider's Example Cloud, so `/ismap` shows a
/// difference and the provider's ISMAP record, which still states the old expiry, is flagged.
const ISMAP_LISTS: [(&str, &str); 2] = [
    (
        "ismap_list_2025.csv",
        "登録番号,サービス名称,事業者名,登録日,有効期限,備考\n\
         C23-0101-1,Example Cloud,クラウド事業者株式会社,2023/6/1,2027/3/31,\n\
         C22-0042-2,デモ統合基盤サービス,デモ情報システム株式会社,2022/10/1,2026/12/31,\n\
         C24-0207-1,サンプルSaaS,サンプル株式会社,2024/4/1,2028/3/31,\n",
    ),
    (
        "ismap_list_2026.csv",
        "登録番号,サービス名称,事業者名,登録日,有効期限,備考\n\
         C23-0101-1,Example Cloud,クラウド事業者株式会社,2023/6/1,2028/3/31,\n\
         C22-0042-2,デモ統合基盤サービス,デモ情報システム株式会社,2022/10/1,2026/12/31,更新申請中\n\
         C24-0207-1,サンプルSaaS,サンプル株式会社,2024/4/1,2028/3/31,\n\
         C26-0311-1,自治体向けデータ連携基盤,連携基盤株式会社,2026/4/1,2029/3/31,\n",
    ),
];

/// Imports the demo's ISMAP lists as the admin.
async fn ismap_lists(
    state: &AppState,
    admin: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DemoError> {
    for (filename, csv) in ISMAP_LISTS {
        crate::services::ismap::import(
            &state.db,
            crate::services::ismap::Access {
                admin: true,
                municipal: false,
            },
            crate::services::ismap::ImportInput {
                filename: Some(filename.to_owned()),
                bytes: csv.as_bytes().to_vec(),
                mapping: None,
            },
            crate::services::document_trail::Actor {
                user_id: admin,
                at: now,
                request_id: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// A minimal valid PDF, the file behind each demo evidence record.
const DEMO_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// Records, attaches and (when `verify`) has 目黒区's officer verify one evidence record.
async fn evidence(
    state: &AppState,
    as_user: &OwnedActor,
    verifier: &OwnedActor,
    fields: serde_json::Value,
    org: &str,
    verify: bool,
) -> Result<(), DemoError> {
    let (now, today) = (state.clock.now(), state.clock.today_jst());
    let input: crate::services::evidence::EvidenceInput = serde_json::from_value(json!({
        "organisation_id": org,
        "fields": fields,
    }))
    .map_err(|e| DemoError::Api(e.to_string()))?;
    let viewer = Viewer::new(&as_user.id, &as_user.grants);
    let rec = crate::services::evidence::create(&state.db, &viewer, input, now, today).await?;
    crate::services::evidence::attach(
        &state.db,
        &viewer,
        &rec.id,
        vec![crate::services::evidence::Upload {
            filename: format!("{}.pdf", rec.kind),
            bytes: DEMO_PDF.to_vec(),
        }],
        now,
        today,
    )
    .await?;
    if verify {
        let officer = Viewer::new(&verifier.id, &verifier.grants);
        crate::services::evidence::verify(&state.db, &officer, &rec.id, None, now, today).await?;
    }
    Ok(())
}

fn date(s: &str) -> String {
    s.to_owned()
}

/// The every-node evidence of `org` (NDA with `parent`), valid until `until`.
fn basic_evidence(org_name: &str, parent: &str, until: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"kind": "nda", "counterparty_organisation_id": parent, "signed_date": "2024-04-01",
               "term_until": until, "clauses": {"confidentiality": true, "no_removal_from_premises": true,
               "purpose_limitation": true, "subcontract_conditions": true, "leak_liability": true,
               "return_or_deletion": true, "staff_supervision_and_training": true,
               "compliance_reports": true, "on_site_inspection": true}}),
        json!({"kind": "structure_chart", "tiers": [{"organisation_name": org_name,
               "responsible_person": "業務責任者", "manager": "運用管理者", "staff_count": 15,
               "work_location": "東京都千代田区", "supervised_by": "委託元"}]}),
        json!({"kind": "safeguards", "organisational": "個人情報保護管理者を置き、規程を整備",
               "personnel": "年1回の研修と誓約書", "physical": "入退室管理と施錠保管",
               "technical": "アクセス制御・暗号化・ログ監視"}),
        json!({"kind": "iso27001", "certificate_number": format!("IS {}", org_name.len() * 1000 + 7),
               "organisation_name": org_name, "scope": "情報システムの運用", "covered_services": ["国保情報集約システム", "Example Cloud"],
               "edition": "2022", "certification_body": "審査登録機関", "issue_date": "2024-04-01",
               "expiry_date": until}),
    ]
}

fn fields(reason: &str, scope: &str, org_name: &str, medium: &str) -> serde_json::Value {
    json!({
        "recording_medium": medium,
        "reason": reason,
        "scope_of_work": scope,
        "data_scope": "被保険者の資格情報(氏名・住所・生年月日・被保険者番号)",
        "capability": "同種業務の受託実績があり、ISMS認証を取得している",
        "inspection_requirements": "委託元の求めに応じ、作業場所への立入調査を受け入れる",
        "planned_amount": 24_000_000,
        "structure_chart": {"tiers": [{"organisation_name": org_name, "responsible_person": "業務責任者",
            "manager": "運用管理者", "staff_count": 15, "work_location": "東京都千代田区",
            "supervised_by": "委託先の監督責任者"}]},
        "supervision": "月次の作業報告と年1回の立入調査により監督する",
        "nda_confirmed": true,
        "safeguards": "組織的・人的・物理的・技術的安全管理措置を講じる",
        "period_start": date("2026-04-01"),
        "period_end": date("2027-03-31"),
        "handler_bracket": "from_10_to_49",
    })
}

/// Chains from the seeds, moved through the real services so every step has its audit trail:
/// 新宿区 and 目黒区 → 東京都国保連 → 国保中央会 (a joint application, permitted by both) →
/// the cloud provider (classified, waiting for 目黒区's manager); 目黒区's other item with its
/// vendor; and one application waiting for each role, one blocked by expired evidence.
async fn chains(
    state: &AppState,
    id: &dyn Fn(&str) -> String,
    now: chrono::DateTime<chrono::Utc>,
    today: NaiveDate,
) -> Result<(), DemoError> {
    let officer_m = acting_as(state, &id("meguro.officer"), today).await?;
    let officer_s = acting_as(state, &id("shinjuku.officer"), today).await?;
    let kokuhoren = acting_as(state, &id("kokuhoren.staff"), today).await?;
    let chuokai = acting_as(state, &id("chuokai.staff"), today).await?;
    let vendor_user = acting_as(state, &id("vendor.staff"), today).await?;
    let mut items = std::collections::BTreeMap::new();
    for (muni, officer, title, contractor) in [
        (
            "meguro",
            &officer_m,
            "国民健康保険の資格管理等に関する事務(国保情報集約システム)",
            "tokyo_kokuhoren",
        ),
        (
            "shinjuku",
            &officer_s,
            "国民健康保険の資格管理等に関する事務(国保情報集約システム)",
            "tokyo_kokuhoren",
        ),
        (
            "meguro",
            &officer_m,
            "住民税の当初課税に係るデータ入力業務",
            "data_entry_co",
        ),
    ] {
        let input: crate::services::chains::ItemInput = serde_json::from_value(json!({
            "municipality_id": muni,
            "owning_section": if contractor == "data_entry_co" { "税務課" } else { "国保年金課" },
            "title": title,
            "content": if contractor == "data_entry_co" { "課税資料のパンチ入力" } else { "国保情報集約システムを用いた資格情報の集約・提供" },
            "handler_bracket": if contractor == "data_entry_co" { "from_50_to_99" } else { "from_10_to_49" },
            "data_items": ["識別情報", "連絡先等情報", "医療保険関係情報"],
            "pia_file": if contractor == "data_entry_co" { "住民税関係情報ファイル" } else { "国民健康保険関係情報ファイル" },
            "recording_medium": if contractor == "data_entry_co" { "電子記録媒体" } else { "クラウドサーバー" },
            "period_start": "2026-04-01",
            "period_end": "2027-03-31",
            "contractor_id": contractor,
            "subcontract_policy": "委託先から再委託の許諾申請書及び履行体制図の提出を受け、区が審査の上、書面により許諾する。再委託先が更に再委託する場合も同様とする。",
            "registered_work": if contractor == "data_entry_co" { "住民税(特別区民税・都民税)の賦課" } else { "国民健康保険" },
            "consignment_reason": if contractor == "data_entry_co" {
                "当初課税の時期に大量の課税資料を短期間で入力する必要があるため。"
            } else {
                "「被保険者の資格管理」と「高額療養費多数回管理」を都道府県単位で行う必要があり、連合会が運用管理する国保情報集約システムを利用する必要があるため。"
            },
        }))
        .map_err(|e| DemoError::Api(e.to_string()))?;
        let viewer = Viewer::new(&officer.id, &officer.grants);
        let item = crate::services::chains::create_item(&state.db, &viewer, input, now).await?;
        items.insert((muni, contractor), item.id);
    }
    let tier1 = |muni: &'static str, contractor: &'static str| {
        let item = items.get(&(muni, contractor)).cloned().unwrap_or_default();
        async move {
            let nodes = crate::services::chains::nodes_of_item(&state.db, &item).await?;
            Ok::<_, DemoError>(nodes.first().map(|n| n.id.clone()).unwrap_or_default())
        }
    };
    // 目黒区's threshold inputs as its 重点項目評価書 states them: 10万人以上30万人未満 in the
    // file, 100人以上500人未満 of its own staff using it.
    let counted_on = NaiveDate::from_ymd_opt(2026, 4, 1)
        .unwrap_or(today)
        .min(today);
    crate::services::documents::set_pia_file(
        &state.db,
        &Viewer::new(&officer_m.id, &officer_m.grants),
        crate::services::documents::PiaFileInput {
            municipality_id: "meguro".to_owned(),
            pia_file: "国民健康保険関係情報ファイル".to_owned(),
            people_bracket: crate::documents::threshold::PeopleBracket::From100000To299999,
            own_staff_bracket: crate::services::chains::HandlerBracket::From100To499,
            counted_on,
            version: None,
        },
        now,
        today,
    )
    .await?;
    let meguro_t1 = tier1("meguro", "tokyo_kokuhoren").await?;
    let shinjuku_t1 = tier1("shinjuku", "tokyo_kokuhoren").await?;
    let entry_t1 = tier1("meguro", "data_entry_co").await?;
    // The tier-1 contractors' part of the structure charts (履行体制図), as each records it.
    for (node, who, responsible, staff, place) in [
        (
            &meguro_t1,
            &kokuhoren,
            "事業部長",
            12,
            "東京都千代田区(東京都国保連 本部)",
        ),
        (
            &shinjuku_t1,
            &kokuhoren,
            "事業部長",
            12,
            "東京都千代田区(東京都国保連 本部)",
        ),
        (
            &entry_t1,
            &vendor_user,
            "入力業務責任者",
            60,
            "東京都江東区(データ入力センター)",
        ),
    ] {
        crate::services::structure_chart::set_node_structure(
            &state.db,
            &Viewer::new(&who.id, &who.grants),
            node,
            crate::services::structure_chart::NodeStructureInput {
                responsible_person: responsible.to_owned(),
                manager: "情報セキュリティ管理者".to_owned(),
                staff_count: staff,
                work_location: place.to_owned(),
                version: None,
            },
            now,
        )
        .await?;
    }

    macro_rules! file {
        ($($a:expr),+ $(,)?) => { file_application(state, $($a),+, now, today) };
    }
    macro_rules! fire {
        ($($a:expr),+ $(,)?) => { fire_event(state, $($a),+, now, today) };
    }
    // Evidence of the tier-1 contractors, verified by 目黒区.
    for f in basic_evidence("東京都国民健康保険団体連合会", "meguro", "2028-03-31") {
        evidence(state, &kokuhoren, &officer_m, f, "tokyo_kokuhoren", true).await?;
    }
    // Its contract (NDA) with 新宿区 is a separate document, verified by 新宿区.
    if let Some(nda) = basic_evidence("東京都国民健康保険団体連合会", "shinjuku", "2028-03-31")
        .into_iter()
        .next()
    {
        evidence(state, &kokuhoren, &officer_s, nda, "tokyo_kokuhoren", true).await?;
    }
    for f in basic_evidence("データ入力株式会社", "meguro", "2028-03-31") {
        evidence(state, &officer_m, &officer_m, f, "data_entry_co", true).await?;
    }
    let route_m = ["meguro.officer", "meguro.chief", "meguro.manager"];
    let route_s = ["shinjuku.officer", "shinjuku.chief", "shinjuku.manager"];

    // The joint application: 国保連 → 国保中央会, addressed to 目黒区 and 新宿区; both permit.
    let joint = file!(
        &kokuhoren,
        "kokuho_chuokai",
        vec![meguro_t1.clone(), shinjuku_t1.clone()],
        fields(
            "国保情報集約システムの全国一元的な運用のため",
            "国保情報集約システムの運用・保守",
            "公益社団法人国民健康保険中央会",
            "クラウド上のサーバ",
        ),
    )
    .await?;
    // The subcontractor's evidence, recorded by itself and verified by 目黒区 once it is in the
    // chain as an applicant.
    for f in basic_evidence(
        "公益社団法人国民健康保険中央会",
        "tokyo_kokuhoren",
        "2028-03-31",
    ) {
        evidence(state, &chuokai, &officer_m, f, "kokuho_chuokai", true).await?;
    }
    fire!(&kokuhoren, joint.id.clone(), "submit", None).await?;
    for login in route_m.iter().chain(route_s.iter()) {
        fire!(
            &acting_as(state, &id(login), today).await?,
            joint.id.clone(),
            "approve",
            None
        )
        .await?;
    }
    let meguro_t2 = joint
        .targets
        .iter()
        .find(|t| t.municipality_id == "meguro")
        .map(|t| t.node_id.clone())
        .unwrap_or_default();

    // 目黒区 has the structure chart of the chain as it stands on file (version 1, submitted);
    // the cloud provider applied for next makes it differ, to be resubmitted.
    {
        let item = items
            .get(&("meguro", "tokyo_kokuhoren"))
            .cloned()
            .unwrap_or_default();
        let viewer = Viewer::new(&officer_m.id, &officer_m.grants);
        let actor = crate::services::document_trail::Actor {
            user_id: &officer_m.id,
            at: now,
            request_id: None,
        };
        let (v1, _) = crate::services::structure_chart::create_version(
            &state.db, &viewer, &item, actor, today,
        )
        .await?;
        crate::services::structure_chart::submit_version(
            &state.db, &viewer, &item, v1.number, None, actor,
        )
        .await?;
    }
    // The cloud provider at tier 3 under 目黒区's chain: endorsed, classified, waiting for the
    // manager's decision.
    let mut cloud_fields = fields(
        "大規模なクラウド基盤を利用するため",
        "クラウド基盤(IaaS)の提供",
        "クラウド事業者株式会社",
        "クラウド基盤上のサーバ",
    );
    cloud_fields["hosts_environment"] = json!(true);
    cloud_fields["service_name"] = json!("Example Cloud");
    let cloud = file!(
        &chuokai,
        "cloud_provider",
        vec![meguro_t2.clone()],
        cloud_fields
    )
    .await?;
    // Recorded by the applicant (the tier above prepares the documents); the cloud certificates
    // are not recorded yet: the manager's decision shows what is missing.
    for f in basic_evidence("クラウド事業者株式会社", "kokuho_chuokai", "2028-03-31") {
        evidence(state, &chuokai, &officer_m, f, "cloud_provider", true).await?;
    }
    // Its ISMAP registration, recorded from the certificate before the renewal (the list now
    // says 2028-03-31): not verified, and flagged against the current list.
    evidence(
        state,
        &chuokai,
        &officer_m,
        json!({"kind": "ismap", "registration_number": "C23-0101-1",
               "service_name": "Example Cloud", "provider": "クラウド事業者株式会社",
               "registration_date": "2023-06-01", "expiry_date": "2027-03-31",
               "scope_statement": "Example Cloud の IaaS 全体(東京・大阪リージョン)"}),
        "cloud_provider",
        false,
    )
    .await?;
    fire!(&chuokai, cloud.id.clone(), "submit", None).await?;
    fire!(&kokuhoren, cloud.id.clone(), "endorse", None).await?;
    if let Some(t) = cloud.targets.first() {
        let viewer = Viewer::new(&officer_m.id, &officer_m.grants);
        crate::services::chains::classify_node(
            &state.db,
            &viewer,
            &t.node_id,
            crate::services::chains::CloudClassificationInput::HandlesData,
            None,
            now,
        )
        .await?;
    }
    for login in &route_m[..2] {
        fire!(
            &acting_as(state, &id(login), today).await?,
            cloud.id.clone(),
            "approve",
            None
        )
        .await?;
    }

    // 目黒区's other item: its vendor's subcontractor applications, one waiting for each role.
    let entry_fields = || {
        fields(
            "繁忙期の入力作業量に対応するため",
            "課税資料のパンチ入力(一部)",
            "入力センター株式会社",
            "電子記録媒体",
        )
    };
    // Draft, waiting for the vendor to submit.
    file!(
        &vendor_user,
        "entry_center",
        vec![entry_t1.clone()],
        entry_fields()
    )
    .await?;
    for f in basic_evidence("入力センター株式会社", "data_entry_co", "2028-03-31") {
        evidence(state, &vendor_user, &officer_m, f, "entry_center", false).await?;
    }
    // The others are filed with distinct subcontractors, since one may hold one live node.
    for (org, name, approvals) in [
        ("entry_center_b", "第二入力センター株式会社", 0usize),
        ("entry_center_c", "第三入力センター株式会社", 1),
        ("entry_center_d", "第四入力センター株式会社", 2),
    ] {
        let a = file!(
            &vendor_user,
            org,
            vec![entry_t1.clone()],
            fields(
                "繁忙期の入力作業量に対応するため",
                "課税資料のパンチ入力(一部)",
                name,
                "電子記録媒体",
            )
        )
        .await?;
        for f in basic_evidence(name, "data_entry_co", "2028-03-31") {
            evidence(state, &vendor_user, &officer_m, f, org, true).await?;
        }
        fire!(&vendor_user, a.id.clone(), "submit", None).await?;
        for login in &route_m[..approvals] {
            fire!(
                &acting_as(state, &id(login), today).await?,
                a.id.clone(),
                "approve",
                None
            )
            .await?;
        }
    }
    // Blocked by expired evidence: its ISO/IEC 27001 expired last year; at the manager's step.
    let blocked = file!(
        &vendor_user,
        "expired_co",
        vec![entry_t1],
        fields(
            "入力作業の外部化のため",
            "課税資料の検査",
            "期限切れ株式会社",
            "電子記録媒体",
        )
    )
    .await?;
    for f in basic_evidence("期限切れ株式会社", "data_entry_co", "2025-03-31") {
        evidence(state, &vendor_user, &officer_m, f, "expired_co", true).await?;
    }
    fire!(&vendor_user, blocked.id.clone(), "submit", None).await?;
    for login in &route_m[..2] {
        fire!(
            &acting_as(state, &id(login), today).await?,
            blocked.id.clone(),
            "approve",
            None
        )
        .await?;
    }
    Ok(())
}

async fn file_application(
    state: &AppState,
    as_user: &OwnedActor,
    contractor: &str,
    parents: Vec<String>,
    fields: serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
    today: NaiveDate,
) -> Result<crate::services::applications::ApplicationView, DemoError> {
    let input =
        json!({ "contractor_id": contractor, "parent_node_ids": parents, "fields": fields });
    let input = serde_json::from_value(input).map_err(|e| DemoError::Api(e.to_string()))?;
    let viewer = Viewer::new(&as_user.id, &as_user.grants);
    crate::services::applications::create(
        &state.db,
        &state.workflows,
        &viewer,
        input,
        &as_user.as_acting(now, today),
    )
    .await
    .map_err(demo_app_error)
}

async fn fire_event(
    state: &AppState,
    as_user: &OwnedActor,
    app_id: String,
    event: &str,
    comment: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    today: NaiveDate,
) -> Result<(), DemoError> {
    let ev: crate::services::applications::ApplicationEvent =
        serde_json::from_value(json!({ "event": event, "comment": comment }))
            .map_err(|e| DemoError::Api(e.to_string()))?;
    let viewer = Viewer::new(&as_user.id, &as_user.grants);
    crate::services::applications::fire(
        &state.db,
        &state.workflows,
        &viewer,
        &app_id,
        &ev,
        &as_user.as_acting(now, today),
    )
    .await
    .map_err(demo_app_error)?;
    Ok(())
}

fn demo_app_error(e: crate::services::applications::AppError) -> DemoError {
    match e {
        crate::services::applications::AppError::Api(e) => DemoError::Api(format!("{e:?}")),
        crate::services::applications::AppError::Instance(e) => DemoError::Instance(e),
    }
}

/// A user's grants on a day, owned, to lend to an [`Actor`].
struct OwnedActor {
    id: String,
    grants: Vec<crate::workflow::Grant>,
    deputy_for: Vec<crate::workflow::Deputyship>,
}

impl OwnedActor {
    fn as_acting(&self, at: chrono::DateTime<chrono::Utc>, today: NaiveDate) -> Acting<'_> {
        Acting {
            actor: Actor {
                id: &self.id,
                grants: &self.grants,
                deputy_for: &self.deputy_for,
            },
            request_id: Some("demo-seed"),
            now: Now { at, today },
        }
    }
}

async fn acting_as(
    state: &AppState,
    user_id: &str,
    today: NaiveDate,
) -> Result<OwnedActor, DemoError> {
    Ok(OwnedActor {
        id: user_id.to_owned(),
        grants: users::effective_grants(&state.db, user_id, today).await?,
        deputy_for: users::effective_deputyships(&state.db, user_id, today).await?,
    })
}

/// What [`scale`] generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScaleReport {
    pub items: usize,
    pub vendors: usize,
    pub applications: usize,
    pub evidence_records: usize,
    /// One generated application waiting for 目黒区's officer, for a page to look at.
    pub sample_application: String,
    /// One generated item, for its chain view.
    pub sample_item: String,
}

/// Vendors of the generated dataset; each item's tier-1 node gets one application per vendor.
const SCALE_VENDORS: usize = 100;

/// Grows the demo data (seeded first) by `applications` subcontract applications and
/// `evidence` evidence records, for page benchmarks at the scale of a large municipality:
/// 目黒区 consigns ⌈applications / 100⌉ more items to 東京都国保連, which applies for a
/// subcontract to each of 100 vendors under every item. Every application goes through the real
/// services, several items at a time: one in 20 stays a draft, one waits for the officer, one
/// for the chief, one for the manager, one is rejected, the rest are permitted. Each vendor's four current evidence records
/// are recorded and verified through the services too; the rest of `evidence` is their history —
/// older certificates, expired and superseded — written directly, spread evenly over the vendors.
pub async fn scale(
    state: &AppState,
    applications: usize,
    evidence_total: usize,
) -> Result<ScaleReport, DemoError> {
    let login = |l: &'static str| async move {
        users::find_by_login(&state.db, l)
            .await?
            .map(|u| u.id)
            .ok_or_else(|| {
                DemoError::Api(format!("the demo user {l} is missing: seed the demo first"))
            })
    };
    let today = state.clock.today_jst();
    let now = state.clock.now();
    let officer = acting_as(state, &login("meguro.officer").await?, today).await?;
    let chief = acting_as(state, &login("meguro.chief").await?, today).await?;
    let manager = acting_as(state, &login("meguro.manager").await?, today).await?;
    let kokuhoren = acting_as(state, &login("kokuhoren.staff").await?, today).await?;
    let officer_view = Viewer::new(&officer.id, &officer.grants);
    let items = applications.div_ceil(SCALE_VENDORS);
    let vendors = applications.min(SCALE_VENDORS);
    let mut report = ScaleReport {
        items,
        vendors,
        ..ScaleReport::default()
    };
    for v in 0..vendors {
        users::create_organisation(
            &state.db,
            NewOrganisation {
                id: scale_vendor(v),
                kind: "vendor".to_owned(),
                name_ja: format!("規模試験システム株式会社 {v:03}"),
                name_en: Some(format!("Scale Test Systems {v:03}")),
            },
            now,
        )
        .await?;
    }
    let cast = ScaleCast {
        officer: &officer,
        chief: &chief,
        manager: &manager,
        kokuhoren: &kokuhoren,
        officer_view: &officer_view,
    };
    // The first item records the vendors' evidence; the others only file and decide, a few
    // at a time, as several users would.
    let first = scale_item(state, &cast, 0, vendors, applications).await?;
    report.sample_item = first.item;
    report.sample_application = first.sample.unwrap_or_default();
    report.evidence_records += first.evidence;
    let mut filed = first.filed;
    let mut rest = futures_util::stream::iter(1..items)
        .map(|k| scale_item(state, &cast, k, vendors, applications))
        .buffer_unordered(SCALE_WORKERS);
    while let Some(done) = rest.next().await {
        filed += done?.filed;
    }
    report.applications = filed;
    report.evidence_records += history(
        state,
        vendors,
        evidence_total.saturating_sub(report.evidence_records),
        now,
    )
    .await?;
    Ok(report)
}

/// The users [`scale`] acts as.
struct ScaleCast<'a> {
    officer: &'a OwnedActor,
    chief: &'a OwnedActor,
    manager: &'a OwnedActor,
    kokuhoren: &'a OwnedActor,
    officer_view: &'a Viewer,
}

/// What [`scale_item`] made.
struct ScaledItem {
    item: String,
    filed: usize,
    evidence: usize,
    /// An application it left waiting for the officer.
    sample: Option<String>,
}

/// How many items [`scale`] seeds at once after the first.
const SCALE_WORKERS: usize = 3;

/// Item `k` of [`scale`]: the item, and one application under its tier-1 node per vendor (of
/// the `applications` in all), each left at its fate; item 0 also records the vendors'
/// evidence.
async fn scale_item(
    state: &AppState,
    cast: &ScaleCast<'_>,
    k: usize,
    vendors: usize,
    applications: usize,
) -> Result<ScaledItem, DemoError> {
    let today = state.clock.today_jst();
    let now = state.clock.now();
    let input: crate::services::chains::ItemInput = serde_json::from_value(json!({
        "municipality_id": "meguro",
        "owning_section": "情報政策課",
        "title": scale_item_title(k),
        "content": "規模試験のための委託事務",
        "handler_bracket": "from_10_to_49",
        "data_items": ["識別情報"],
        "pia_file": "規模試験ファイル",
        "recording_medium": "電子記録媒体",
        "period_start": "2026-04-01",
        "period_end": "2027-03-31",
        "contractor_id": "tokyo_kokuhoren",
        "subcontract_policy": "委託先から再委託の許諾申請書の提出を受け、区が審査の上、書面により許諾する。",
        "registered_work": "規模試験",
        "consignment_reason": "規模試験のため。",
    }))
    .map_err(|e| DemoError::Api(e.to_string()))?;
    let item =
        crate::services::chains::create_item(&state.db, cast.officer_view, input, now).await?;
    let tier1 = crate::services::chains::nodes_of_item(&state.db, &item.id)
        .await?
        .first()
        .map(|n| n.id.clone())
        .unwrap_or_default();
    let mut made = ScaledItem {
        item: item.id,
        filed: 0,
        evidence: 0,
        sample: None,
    };
    let first = k * vendors;
    for v in 0..vendors.min(applications.saturating_sub(first)) {
        let name = format!("規模試験システム株式会社 {v:03}");
        // Small teams (fewer than 10 handlers each), so the file's handler count stays
        // under the threshold of a significant change however many vendors there are.
        let mut f = fields("規模試験のため", "システムの運用", &name, "電子記録媒体");
        f["handler_bracket"] = json!("under_10");
        let app = file_application(
            state,
            cast.kokuhoren,
            &scale_vendor(v),
            vec![tier1.clone()],
            f,
            now,
            today,
        )
        .await?;
        if k == 0 {
            for f in basic_evidence(&name, "tokyo_kokuhoren", "2028-03-31") {
                evidence(state, cast.officer, cast.officer, f, &scale_vendor(v), true).await?;
                made.evidence += 1;
            }
        }
        made.filed += 1;
        let fate = (first + v) % 20;
        if fate == 0 {
            continue;
        }
        fire_event(
            state,
            cast.kokuhoren,
            app.id.clone(),
            "submit",
            None,
            now,
            today,
        )
        .await?;
        let deciders: &[&OwnedActor] = match fate {
            1 => {
                made.sample.get_or_insert(app.id.clone());
                &[]
            }
            2 => &[cast.officer],
            3 => &[cast.officer, cast.chief],
            4 => {
                let reason = Some("規模試験: 再委託の必要性が認められない");
                fire_event(
                    state,
                    cast.officer,
                    app.id.clone(),
                    "reject",
                    reason,
                    now,
                    today,
                )
                .await?;
                &[]
            }
            _ => &[cast.officer, cast.chief, cast.manager],
        };
        for who in deciders {
            fire_event(state, who, app.id.clone(), "approve", None, now, today).await?;
        }
    }
    Ok(made)
}

/// The report of a database [`scale`] grew before, read back from the database, or `None` when
/// it was never grown: a benchmark can then measure the same dataset again without seeding it
/// anew.
pub async fn scaled(state: &AppState) -> Result<Option<ScaleReport>, DemoError> {
    use crate::services::sql::Sql;
    use sea_orm::{ConnectionTrait, FromQueryResult};
    #[derive(FromQueryResult)]
    struct Sample {
        application_id: String,
        item_id: String,
    }
    #[derive(FromQueryResult)]
    struct Counts {
        items: i64,
        vendors: i64,
        applications: i64,
        evidence_records: i64,
    }
    let backend = state.db.get_database_backend();
    let mut sql = Sql::new(backend);
    // The second application of the first item: the one `scale` leaves with the officer.
    sql.push(
        "SELECT t.application_id AS application_id, t.item_id AS item_id \
         FROM application_targets t \
         JOIN subcontract_applications a ON a.id = t.application_id \
         JOIN consignment_items c ON c.id = t.item_id WHERE c.title = ",
    )
    .bind(scale_item_title(0))
    .push(" AND a.contractor_id = ")
    .bind(scale_vendor(1));
    let Some(sample) = Sample::find_by_statement(sql.statement())
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    let vendors = format!("{SCALE_VENDOR_PREFIX}%");
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT (SELECT COUNT(DISTINCT t.item_id) FROM application_targets t \
         JOIN subcontract_applications a ON a.id = t.application_id \
         WHERE a.contractor_id LIKE ",
    )
    .bind(vendors.clone())
    .push(") AS items, (SELECT COUNT(*) FROM organisations WHERE id LIKE ")
    .bind(vendors.clone())
    .push(") AS vendors, (SELECT COUNT(*) FROM subcontract_applications WHERE contractor_id LIKE ")
    .bind(vendors.clone())
    .push(") AS applications, (SELECT COUNT(*) FROM evidence_records WHERE organisation_id LIKE ")
    .bind(vendors)
    .push(") AS evidence_records");
    let counts = Counts::find_by_statement(sql.statement())
        .one(&state.db)
        .await?
        .ok_or_else(|| DemoError::Api("the generated data cannot be counted".to_owned()))?;
    let size = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(Some(ScaleReport {
        items: size(counts.items),
        vendors: size(counts.vendors),
        applications: size(counts.applications),
        evidence_records: size(counts.evidence_records),
        sample_application: sample.application_id,
        sample_item: sample.item_id,
    }))
}

fn scale_item_title(k: usize) -> String {
    format!("規模試験の委託事務 {k:03}")
}

/// The generated vendors' organisation ids start with this.
const SCALE_VENDOR_PREFIX: &str = "scale_vendor_";

fn scale_vendor(v: usize) -> String {
    format!("{SCALE_VENDOR_PREFIX}{v:03}")
}

/// `n` past evidence records of the scale vendors, written in batches: certificates and NDAs
/// that expired over the past years, each verified when it was current.
async fn history(
    state: &AppState,
    vendors: usize,
    n: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, DemoError> {
    use sea_orm::{EntityTrait, Set, TransactionTrait};
    const KINDS: [&str; 4] = ["iso27001", "nda", "safeguards", "structure_chart"];
    let mut written = 0;
    while written < n {
        let batch: Vec<entity::evidence_record::ActiveModel> = (written..n.min(written + 500))
            .map(|i| {
                let org = scale_vendor(i % vendors.max(1));
                let years_ago = i32::try_from(1 + (i / vendors.max(1)) % 20).unwrap_or(1);
                let until = NaiveDate::from_ymd_opt(2026 - years_ago, 3, 31);
                let from = NaiveDate::from_ymd_opt(2024 - years_ago, 4, 1);
                entity::evidence_record::ActiveModel {
                    id: Set(crate::services::new_id(now)),
                    organisation_id: Set(org),
                    node_id: Set(None),
                    kind: Set(KINDS[i % KINDS.len()].to_owned()),
                    service_name: Set(None),
                    fields: Set(json!({"note": "規模試験の過去の記録"}).to_string()),
                    valid_from: Set(from),
                    valid_until: Set(until),
                    renewal_pending: Set(false),
                    verified_by: Set(Some("scale".to_owned())),
                    verified_at: Set(Some(now)),
                    revoked_by: Set(None),
                    revoked_at: Set(None),
                    revoked_reason: Set(None),
                    lapse_handled_on: Set(until),
                    created_by: Set("scale".to_owned()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(1),
                }
            })
            .collect();
        let count = batch.len();
        let txn = state.db.begin().await?;
        entity::evidence_record::Entity::insert_many(batch)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        written += count;
    }
    Ok(written)
}
