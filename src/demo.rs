//! Demonstration data taken from the seeds: 目黒区 and 新宿区 consign NHI work to 東京都国保連,
//! which subcontracts to 国保中央会, which runs the system on a cloud provider. Applications are
//! created and moved through the real services, so every one has its audit trail.

use chrono::NaiveDate;
use secrecy::SecretString;
use serde_json::json;

use crate::error::ApiError;
use crate::services::instances::{self, Acting, FireRequest, InstanceError, NewInstance};
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
    #[error("cannot seed demo application: {0}")]
    Instance(#[from] InstanceError),
}

impl From<ApiError> for DemoError {
    fn from(e: ApiError) -> Self {
        Self::Api(e.to_string())
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
        "クラウド事業者",
        "Cloud provider",
    ),
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

    // Applications in every interesting place.
    let tier2 = |root: &str| json!({"applicant_org": "tokyo_kokuhoren", "root_consignor_org": root, "intermediate_orgs": []});
    let tier3 = json!({
        "applicant_org": "kokuho_chuokai",
        "root_consignor_org": "meguro",
        "intermediate_orgs": ["tokyo_kokuhoren"],
    });
    let plans: Vec<Plan> = vec![
        // Waiting for the officer of 目黒区.
        (
            tier2("meguro"),
            "kokuhoren.staff",
            vec![("submit", "kokuhoren.staff")],
        ),
        // Waiting for the chief.
        (
            tier2("meguro"),
            "kokuhoren.staff",
            vec![("submit", "kokuhoren.staff"), ("approve", "meguro.officer")],
        ),
        // Waiting for the manager (or the deputy's 代決).
        (
            tier2("meguro"),
            "kokuhoren.staff",
            vec![
                ("submit", "kokuhoren.staff"),
                ("approve", "meguro.officer"),
                ("approve", "meguro.chief"),
            ],
        ),
        // A tier-3 application waiting for the federation's endorsement (進達).
        (
            tier3.clone(),
            "chuokai.staff",
            vec![("submit", "chuokai.staff")],
        ),
        // Permitted by 新宿区.
        (
            tier2("shinjuku"),
            "kokuhoren.staff",
            vec![
                ("submit", "kokuhoren.staff"),
                ("approve", "shinjuku.officer"),
                ("approve", "shinjuku.chief"),
                ("approve", "shinjuku.manager"),
            ],
        ),
        // A draft not yet submitted.
        (tier3, "chuokai.staff", vec![]),
    ];
    for (ctx, creator, steps) in plans {
        let inst = instances::create(
            &state.db,
            &state.workflows,
            NewInstance {
                workflow: "subcontract_permission",
                context: ctx,
                corrects: None,
            },
            &acting_as(state, &id(creator), today)
                .await?
                .as_acting(now, today),
        )
        .await?;
        for (event, who) in steps {
            instances::fire(
                &state.db,
                &state.workflows,
                &inst.id,
                &FireRequest {
                    event,
                    ..FireRequest::default()
                },
                &acting_as(state, &id(who), today)
                    .await?
                    .as_acting(now, today),
            )
            .await?;
        }
    }
    Ok(logins)
}

/// An application to create: its context, its creator, and the events to fire (event, by whom).
type Plan = (
    serde_json::Value,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

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
