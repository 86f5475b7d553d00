//! Subcontract applications (再委託申請) and the permission of chain nodes.
//!
//! The parent tier's contractor files an application for a new node under one parent node or,
//! for a joint consignment (共同委託), under one parent node in each of several municipalities'
//! chains. Each of those is a *target*: a node in state `applying` and a workflow instance
//! (`subcontract_permission`) decided by that municipality alone. Permission always comes from
//! the root municipality (番号法 art. 10, BRIEF C2); the tiers in between endorse it.
//!
//! Every event goes through [`fire`], which gives the guards the chain's facts on the decision
//! date (ancestors' permission, evidence), mirrors the new state on the node, and suspends every
//! permitted descendant when a node leaves the permitted state (BRIEF C7) — all in the one
//! transaction that also holds the audit records and the outbox rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    application_sequence, application_target, chain_node, consignment_item, evidence_record,
    organisation, subcontract_application, workflow_instance,
};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use validator::{Validate, ValidationError};

use crate::domain::policy::{self, ChainFacts, EvidenceFact, NodeFacts, Policy};
use crate::error::{ApiError, ErrorCode, FieldError, Msg};
use crate::services::access::Viewer;
use crate::services::application_scope::{Scope, Sql};
use crate::services::chains::{AdvancePermission, HandlerBracket, Page, Paged};
use crate::services::instances::{self, Acting, FireRequest, InstanceError, InstanceView};
use crate::services::new_id;
use crate::validation::{self, invalid, not_blank};
use crate::workflow::{Actor, Grant, Now, WorkflowSet};

/// The workflow every application runs on.
pub const WORKFLOW: &str = "subcontract_permission";

/// The system's own event that suspends a permitted node whose ancestor or evidence lapsed.
pub const CASCADE_EVENT: &str = "cascade_suspend";

/// One tier of the implementation structure chart (履行体制図).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StructureTier {
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub organisation_name: String,
    /// 責任者.
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    pub responsible_person: String,
    /// 管理者.
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    pub manager: String,
    #[validate(range(min = 1, max = 100_000))]
    pub staff_count: u32,
    /// 作業場所.
    #[validate(length(min = 1, max = 300), custom(function = "not_blank"))]
    pub work_location: String,
    /// Who supervises this tier (監督).
    #[validate(length(max = 200))]
    pub supervised_by: Option<String>,
}

impl StructureTier {
    /// The staff count as stored on a node.
    pub fn staff(&self) -> i32 {
        i32::try_from(self.staff_count).unwrap_or(i32::MAX)
    }
}

/// The implementation structure chart, including how the parent supervises (BRIEF C3). Its
/// first tier describes the subcontractor itself: the node takes its responsible person,
/// manager, staff count and work location from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StructureChart {
    #[validate(length(min = 1, max = 50), nested)]
    pub tiers: Vec<StructureTier>,
}

fn must_be_true(value: &bool) -> Result<(), ValidationError> {
    if *value {
        return Ok(());
    }
    Err(invalid(
        "must_confirm",
        "確認が必要です。",
        "This must be confirmed.",
    ))
}

/// Every field of a subcontract application (seeds: 目黒区 委託事項2, 6, 7; BRIEF 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationFields {
    /// 再委託する理由.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub reason: String,
    /// 再委託する業務の範囲.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub scope_of_work: String,
    /// 取り扱う特定個人情報の範囲.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub data_scope: String,
    /// 再委託先に係る業務の履行能力.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub capability: String,
    /// 立ち入り調査に係る要件.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub inspection_requirements: String,
    /// 再委託予定金額 (yen).
    #[validate(range(min = 0))]
    pub planned_amount: Option<i64>,
    /// 履行体制図.
    #[validate(nested)]
    pub structure_chart: StructureChart,
    /// 監督体制: how the applicant supervises the subcontractor.
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub supervision: String,
    /// 秘密保持契約: the applicant confirms an NDA with the subcontractor exists.
    #[validate(custom(function = "must_be_true"))]
    pub nda_confirmed: bool,
    /// 安全管理措置: the subcontractor's safeguards, in summary (the evidence holds the detail).
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub safeguards: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// The subcontractor hosts the environment as a cloud provider.
    #[serde(default)]
    pub hosts_environment: bool,
    /// The cloud service used (required when it hosts the environment).
    #[validate(length(min = 1, max = 200))]
    pub service_name: Option<String>,
    /// Permission in advance at contract signing (BRIEF C4).
    #[validate(nested)]
    pub advance_permission: Option<AdvancePermission>,
    /// ②取扱者数: the subcontractor's handlers of this work, as the PIA form's bracket; the
    /// threshold test (しきい値判断) counts its lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_bracket: Option<HandlerBracket>,
    /// 処理させる情報項目の記録媒体: where the subcontractor keeps the data (e.g. AWSクラウド上の
    /// サーバ), as the committee submission (付議) names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub recording_medium: Option<String>,
}

/// A new application.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationInput {
    /// The proposed subcontractor.
    #[validate(length(min = 1, max = 64))]
    pub contractor_id: String,
    /// The parent node in each municipality's chain (several for a joint consignment).
    #[validate(length(min = 1, max = 500))]
    pub parent_node_ids: Vec<String>,
    #[validate(nested)]
    pub fields: ApplicationFields,
}

/// One municipality's decision on an application.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TargetView {
    pub id: String,
    pub municipality_id: String,
    pub municipality_name: String,
    pub item_id: String,
    pub parent_node_id: String,
    pub node_id: String,
    pub instance_id: String,
    pub state: String,
    pub state_label: Option<crate::workflow::definition::Label>,
    pub version: i64,
    /// The events the caller may fire on this target now.
    pub available_events: Vec<String>,
    /// The same events with the parameters each may take.
    pub event_choices: Vec<crate::workflow::EventChoice>,
    /// What the guards were told when the events were worked out (the chain, the significant
    /// changes), so the checklist of the same request does not read them again.
    #[serde(skip)]
    #[schema(ignore)]
    pub facts: Option<Value>,
}

/// How far a joint application has come, for the applicant.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: usize,
    pub permitted: usize,
    pub rejected: usize,
    pub pending: usize,
    pub other: usize,
}

/// An application as the caller may see it: a municipality sees only its own target.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApplicationView {
    pub id: String,
    pub number: String,
    pub fiscal_year: i32,
    pub applicant_id: String,
    pub applicant_name: String,
    pub contractor_id: String,
    pub contractor_name: String,
    pub contractor_address: Option<String>,
    pub contractor_representative: Option<String>,
    pub fields: Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// For `PATCH` (optimistic concurrency).
    pub version: i64,
    pub targets: Vec<TargetView>,
    /// Over the targets the caller may see.
    pub progress: Progress,
}

/// An event on an application.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationEvent {
    pub event: String,
    /// Target ids; when omitted, every target the caller may act on now.
    pub targets: Option<Vec<String>>,
    /// The target version the caller saw (only with a single target).
    pub version: Option<i64>,
    pub comment: Option<String>,
    pub to_step: Option<String>,
    pub on_behalf_of: Option<String>,
}

/// Why an application operation failed; nothing was written.
#[derive(Debug)]
pub enum AppError {
    Api(ApiError),
    Instance(InstanceError),
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<InstanceError> for AppError {
    fn from(e: InstanceError) -> Self {
        Self::Instance(e)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Instance(InstanceError::Db(e))
    }
}

impl From<ErrorCode> for AppError {
    fn from(e: ErrorCode) -> Self {
        Self::Api(e.into())
    }
}

/// The next application number of `org` in fiscal year `fy`, unique under concurrency: one
/// upsert that increments and returns the counter.
pub async fn next_number(
    db: &impl ConnectionTrait,
    org: &str,
    fy: i32,
) -> Result<i64, sea_orm::DbErr> {
    let stmt = Query::insert()
        .into_table(application_sequence::Entity)
        .columns([
            application_sequence::Column::OrganisationId,
            application_sequence::Column::FiscalYear,
            application_sequence::Column::LastValue,
        ])
        .values([org.into(), fy.into(), 1i64.into()])
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::columns([
                application_sequence::Column::OrganisationId,
                application_sequence::Column::FiscalYear,
            ])
            .value(
                application_sequence::Column::LastValue,
                Expr::col((
                    application_sequence::Entity,
                    application_sequence::Column::LastValue,
                ))
                .add(1),
            )
            .to_owned(),
        )
        .returning_col(application_sequence::Column::LastValue)
        .to_owned();
    let row = db
        .query_one(db.get_database_backend().build(&stmt))
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("the sequence upsert returned nothing".into()))?;
    row.try_get("", "last_value")
}

/// The grant the system acts with (cascades, sweeps): the `system` role, in no organisation.
fn system_grants() -> [Grant; 1] {
    [Grant {
        role: "system".to_owned(),
        org: None,
    }]
}

/// The system acting at `now` in a request (or a sweep's run).
fn system_acting<'a>(grants: &'a [Grant], now: Now, request_id: Option<&'a str>) -> Acting<'a> {
    Acting {
        actor: Actor {
            id: "system",
            grants,
            deputy_for: &[],
        },
        request_id,
        now,
    }
}

/// Every error of a request's own fields (each field alone, between fields, and individual
/// numbers), without looking at the database: what a form shows beside its fields.
pub fn field_errors<T: Validate + Serialize>(
    body: &T,
    fields: &ApplicationFields,
) -> Vec<FieldError> {
    let mut errors = validation::errors_of(body);
    errors.extend(cross_field_errors(fields));
    errors
}

/// The rules between fields of an application (the derive checks each field alone).
fn cross_field_errors(f: &ApplicationFields) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if f.period_end < f.period_start {
        errors.push(FieldError::new(
            "fields.period_end",
            "終了日は開始日以降の日付にしてください。",
            "The end date must not be before the start date.",
        ));
    }
    if f.hosts_environment
        && f.service_name
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    {
        errors.push(FieldError::new(
            "fields.service_name",
            "クラウド環境を提供する場合は利用するサービス名を入力してください。",
            "Name the cloud service used when the subcontractor hosts the environment.",
        ));
    }
    if f.advance_permission
        .as_ref()
        .is_some_and(|a| !a.reporting_agreed)
    {
        errors.push(FieldError::new(
            "fields.advance_permission.reporting_agreed",
            "事前許諾には、再委託開始時及び定期的な報告への同意が必要です。",
            "Advance permission needs the contractor's agreement to report at the start and periodically.",
        ));
    }
    errors
}

/// Files an application: the application, one applying node and one workflow instance per
/// target, in one transaction.
pub async fn create(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    input: ApplicationInput,
    acting: &Acting<'_>,
) -> Result<ApplicationView, AppError> {
    let mut errors = field_errors(&input, &input.fields);
    let f = &input.fields;
    let today = acting.now.today;
    let txn = db.begin().await?;
    let contractor = organisation::Entity::find_by_id(&input.contractor_id)
        .one(&txn)
        .await?;
    if contractor.is_none() {
        errors.push(FieldError::new(
            "contractor_id",
            "その組織は登録されていません。",
            "No such organisation.",
        ));
    }
    // Every parent must be a node the applicant's organisation holds, in force today.
    let mut parents = Vec::new();
    let mut applicant: Option<String> = None;
    let mut items_seen = BTreeSet::new();
    for (ix, pid) in input.parent_node_ids.iter().enumerate() {
        let field = format!("parent_node_ids[{ix}]");
        let node = chain_node::Entity::find_by_id(pid).one(&txn).await?;
        let Some(node) = node.filter(|n| viewer.is_contractor(&n.contractor_id)) else {
            errors.push(FieldError::new(
                field,
                "その委託先ノードはありません(自組織が受託しているノードを指定してください)。",
                "No such node of your organisation.",
            ));
            continue;
        };
        match &applicant {
            None => applicant = Some(node.contractor_id.clone()),
            Some(a) if a != &node.contractor_id => {
                errors.push(FieldError::new(
                    field.clone(),
                    "一つの申請のノードはすべて同じ申請者(委託先)のものにしてください。",
                    "Every parent node of one application must be held by the same applicant.",
                ));
            }
            Some(_) => {}
        }
        if node.permission_state != "permitted" || node.period_end < today {
            errors.push(FieldError::new(
                field.clone(),
                format!(
                    "このノード(第{}階層)は現在有効な許諾がないため、再委託を申請できません(状態: {})。",
                    node.tier, node.permission_state
                ),
                format!(
                    "This node (tier {}) is not in force, so it cannot subcontract (state: {}).",
                    node.tier, node.permission_state
                ),
            ));
        }
        if !items_seen.insert(node.item_id.clone()) {
            errors.push(FieldError::new(
                field.clone(),
                "同じ委託事項が重複しています。",
                "The same consignment item appears twice.",
            ));
        }
        if node.contractor_id == input.contractor_id {
            errors.push(FieldError::new(
                "contractor_id",
                "自組織を再委託先にすることはできません。",
                "An organisation cannot subcontract to itself.",
            ));
        }
        let live = chain_node::Entity::find()
            .filter(chain_node::Column::ParentId.eq(pid.as_str()))
            .filter(chain_node::Column::ContractorId.eq(input.contractor_id.as_str()))
            .filter(chain_node::Column::PermissionState.is_in([
                "applying",
                "permitted",
                "suspended",
            ]))
            .one(&txn)
            .await?;
        if live.is_some() {
            errors.push(FieldError::new(
                field.clone(),
                "この再委託先には既に申請中または許諾済みのノードがあります。",
                "This subcontractor already has a pending or permitted node here.",
            ));
        }
        parents.push(node);
    }
    validation::finish(errors)?;
    let (Some(applicant), Some(contractor)) = (applicant, contractor) else {
        return Err(ErrorCode::NotFound.into());
    };
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    let fiscal = crate::domain::fiscal::FiscalYear::of(today);
    let fy = fiscal.year();
    let seq = next_number(&txn, &applicant, fy).await?;
    let number =
        crate::domain::fiscal::application_number(fiscal, u32::try_from(seq).unwrap_or(u32::MAX));
    let app_id = new_id(now);
    let fields_json = serde_json::to_string(&input.fields).map_err(ApiError::internal)?;
    subcontract_application::ActiveModel {
        id: Set(app_id.clone()),
        number: Set(number),
        fiscal_year: Set(fy),
        applicant_id: Set(applicant.clone()),
        contractor_id: Set(contractor.id.clone()),
        fields: Set(fields_json),
        created_by: Set(acting.actor.id.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    for parent in &parents {
        let item = consignment_item::Entity::find_by_id(&parent.item_id)
            .one(&txn)
            .await?
            .ok_or(ErrorCode::NotFound)?;
        let ancestors = ancestors_of(&txn, parent).await?;
        // The tiers between the applicant and the root, nearest to the applicant first.
        let intermediate: Vec<String> = ancestors
            .iter()
            .map(|n| n.contractor_id.clone())
            .filter(|o| o != &applicant)
            .collect();
        let node_id = new_id(now);
        let own = f.structure_chart.tiers.first();
        chain_node::ActiveModel {
            id: Set(node_id.clone()),
            item_id: Set(parent.item_id.clone()),
            parent_id: Set(Some(parent.id.clone())),
            tier: Set(parent.tier + 1),
            contractor_id: Set(contractor.id.clone()),
            scope_of_work: Set(f.scope_of_work.clone()),
            data_scope: Set(f.data_scope.clone()),
            reason: Set(f.reason.clone()),
            capability: Set(f.capability.clone()),
            inspection_requirements: Set(f.inspection_requirements.clone()),
            planned_amount: Set(f.planned_amount),
            structure_chart: Set(serde_json::to_string(&f.structure_chart).unwrap_or_default()),
            supervision: Set(f.supervision.clone()),
            period_start: Set(f.period_start),
            period_end: Set(f.period_end),
            hosts_environment: Set(f.hosts_environment),
            cloud_classification: Set(None),
            service_name: Set(f.service_name.clone()),
            advance_permission: Set(f
                .advance_permission
                .as_ref()
                .and_then(|a| serde_json::to_string(a).ok())),
            handler_bracket: Set(f.handler_bracket.map(|b| b.as_str().to_owned())),
            recording_medium: Set(f.recording_medium.as_deref().map(|s| s.trim().to_owned())),
            responsible_person: Set(own.map(|t| t.responsible_person.clone())),
            manager: Set(own.map(|t| t.manager.clone())),
            staff_count: Set(own.map(StructureTier::staff)),
            work_location: Set(own.map(|t| t.work_location.clone())),
            permission_state: Set("applying".to_owned()),
            state_changed_at: Set(now),
            state_reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        let view = instances::create_in(
            &txn,
            workflows,
            instances::NewInstance {
                workflow: WORKFLOW,
                context: json!({
                    "applicant_org": applicant,
                    "root_consignor_org": item.municipality_id,
                    "intermediate_orgs": intermediate,
                    "node_id": node_id,
                    "application_id": app_id,
                }),
                corrects: None,
            },
            acting,
        )
        .await?;
        application_target::ActiveModel {
            id: Set(new_id(now)),
            application_id: Set(app_id.clone()),
            municipality_id: Set(item.municipality_id.clone()),
            item_id: Set(item.id.clone()),
            parent_node_id: Set(parent.id.clone()),
            node_id: Set(node_id),
            instance_id: Set(view.id),
        }
        .insert(&txn)
        .await?;
    }
    let view = load_view(&txn, workflows, viewer, &app_id, acting).await?;
    txn.commit().await?;
    Ok(view)
}

/// The node's ancestors, parent first, up to tier 1.
pub async fn ancestors_of(
    db: &impl ConnectionTrait,
    node: &chain_node::Model,
) -> Result<Vec<chain_node::Model>, sea_orm::DbErr> {
    let mut out = Vec::new();
    let mut up = node.parent_id.clone();
    while let Some(id) = up {
        let Some(p) = chain_node::Entity::find_by_id(&id).one(db).await? else {
            break;
        };
        up = p.parent_id.clone();
        out.push(p);
    }
    Ok(out)
}

/// Which targets of an application the viewer may see: everything for the applicant, the
/// proposed contractor and the intermediate tiers; only its own target for a municipality.
fn visible_targets<'t>(
    app: &subcontract_application::Model,
    targets: &'t [application_target::Model],
    intermediates: &HashMap<String, BTreeSet<String>>,
    viewer: &Viewer,
) -> Vec<&'t application_target::Model> {
    let party = viewer.is_member(&app.applicant_id) || viewer.is_member(&app.contractor_id);
    targets
        .iter()
        .filter(|t| {
            party
                || viewer.is_municipal(&t.municipality_id)
                || intermediates
                    .get(&t.id)
                    .is_some_and(|orgs| orgs.iter().any(|o| viewer.is_contractor(o)))
        })
        .collect()
}

async fn target_intermediates(
    db: &impl ConnectionTrait,
    targets: &[application_target::Model],
) -> Result<HashMap<String, BTreeSet<String>>, sea_orm::DbErr> {
    let mut out = HashMap::new();
    for t in targets {
        let Some(parent) = chain_node::Entity::find_by_id(&t.parent_node_id)
            .one(db)
            .await?
        else {
            continue;
        };
        let mut orgs: BTreeSet<String> = ancestors_of(db, &parent)
            .await?
            .into_iter()
            .map(|n| n.contractor_id)
            .collect();
        orgs.insert(parent.contractor_id);
        out.insert(t.id.clone(), orgs);
    }
    Ok(out)
}

async fn load_view(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    id: &str,
    acting: &Acting<'_>,
) -> Result<ApplicationView, AppError> {
    let app = subcontract_application::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let targets = application_target::Entity::find()
        .filter(application_target::Column::ApplicationId.eq(id))
        .order_by_asc(application_target::Column::Id)
        .all(db)
        .await?;
    let inter = target_intermediates(db, &targets).await?;
    let visible = visible_targets(&app, &targets, &inter, viewer);
    if visible.is_empty() {
        return Err(ErrorCode::NotFound.into());
    }
    let orgs = crate::services::chains::names(
        db,
        visible
            .iter()
            .map(|t| t.municipality_id.clone())
            .chain([app.applicant_id.clone()]),
    )
    .await?;
    let contractor = organisation::Entity::find_by_id(&app.contractor_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let mut views = Vec::new();
    let mut progress = Progress::default();
    for t in visible {
        let facts = facts_for(db, workflows, &t.instance_id, &t.node_id, acting.now.today).await?;
        let inst =
            instances::get_with_facts(db, workflows, &t.instance_id, acting, Some(facts.clone()))
                .await;
        let inst = match inst {
            Ok(i) => i,
            // The viewer sees the application but not this instance's organisations: a
            // municipal auditor, say. Show the state without actions.
            Err(InstanceError::NotFound) => instance_state_only(db, workflows, &t.instance_id)
                .await?
                .ok_or(ErrorCode::NotFound)?,
            Err(e) => return Err(e.into()),
        };
        progress.total += 1;
        match inst.state.as_str() {
            "permitted" => progress.permitted += 1,
            "rejected" => progress.rejected += 1,
            "draft" | "endorsement" | "decision" => progress.pending += 1,
            _ => progress.other += 1,
        }
        views.push(TargetView {
            id: t.id.clone(),
            municipality_name: orgs.get(&t.municipality_id).cloned().unwrap_or_default(),
            municipality_id: t.municipality_id.clone(),
            item_id: t.item_id.clone(),
            parent_node_id: t.parent_node_id.clone(),
            node_id: t.node_id.clone(),
            instance_id: t.instance_id.clone(),
            state: inst.state,
            state_label: inst.state_label,
            version: inst.version,
            available_events: inst.available_events,
            event_choices: inst.event_choices,
            facts: Some(facts),
        });
    }
    Ok(ApplicationView {
        applicant_name: orgs.get(&app.applicant_id).cloned().unwrap_or_default(),
        contractor_name: contractor.name_ja,
        contractor_address: contractor.address,
        contractor_representative: contractor.representative,
        id: app.id,
        number: app.number,
        fiscal_year: app.fiscal_year,
        applicant_id: app.applicant_id,
        contractor_id: app.contractor_id,
        fields: serde_json::from_str(&app.fields).unwrap_or_default(),
        created_by: app.created_by,
        created_at: app.created_at,
        version: app.version,
        targets: views,
        progress,
    })
}

async fn instance_state_only(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    id: &str,
) -> Result<Option<InstanceView>, AppError> {
    let Some(row) = workflow_instance::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let label = workflows
        .get(
            &row.workflow_id,
            u32::try_from(row.workflow_version).unwrap_or(0),
        )
        .and_then(|rt| rt.state_label(&row.state));
    Ok(Some(InstanceView {
        id: row.id,
        workflow: row.workflow_id,
        workflow_version: row.workflow_version,
        state: row.state,
        state_label: label,
        version: row.version,
        submitter: row.submitter,
        organisation_id: row.organisation_id,
        context: Value::Null,
        progress: Value::Null,
        corrects_instance_id: row.corrects_instance_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        audit_seq: row.audit_seq,
        available_events: Vec::new(),
        event_choices: Vec::new(),
    }))
}

/// An application, if the viewer may see it.
pub async fn get(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    id: &str,
    acting: &Acting<'_>,
) -> Result<ApplicationView, AppError> {
    load_view(db, workflows, viewer, id, acting).await
}

/// Filters of the application list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ApplicationFilter {
    /// Workflow state of a target (`decision`, `permitted`, …).
    pub state: Option<String>,
    /// Organisation: applicant, contractor or deciding municipality.
    pub organisation: Option<String>,
    /// Tier of the node applied for.
    pub tier: Option<i32>,
}

/// Applications the viewer may see, newest first, each cut to the viewer's targets. The
/// database selects, filters, counts and pages them ([`application_scope`]); only the page's
/// applications are loaded.
pub async fn list(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    filter: &ApplicationFilter,
    page: Page,
    acting: &Acting<'_>,
) -> Result<Paged<ApplicationView>, AppError> {
    let backend = db.get_database_backend();
    let scope = Scope::new(viewer);
    let query = |select: &str| {
        let mut sql = Sql::new(backend);
        scope.with(&mut sql);
        sql.push(select)
            .push(" FROM subcontract_applications a WHERE ");
        scope.application(&mut sql);
        if let Some(org) = &filter.organisation {
            sql.push(" AND (a.applicant_id = ")
                .bind(org.clone())
                .push(" OR a.contractor_id = ")
                .bind(org.clone())
                .push(" OR ");
            scope.any_target(&mut sql, |sql| {
                sql.push("t.municipality_id = ").bind(org.clone());
            });
            sql.push(")");
        }
        if let Some(state) = &filter.state {
            sql.push(" AND ");
            scope.any_target(&mut sql, |sql| {
                sql.push("i.state = ").bind(state.clone());
            });
        }
        if let Some(tier) = filter.tier {
            sql.push(" AND ");
            scope.any_target(&mut sql, |sql| {
                sql.push("n.tier = ").bind(tier);
            });
        }
        sql
    };
    let total = db
        .query_one(query("SELECT COUNT(*) AS n").statement())
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let mut ids = query("SELECT a.id AS id");
    ids.push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ")
        .bind(i64::try_from(page.limit()).unwrap_or(i64::MAX))
        .push(" OFFSET ")
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    for row in db.query_all(ids.statement()).await? {
        let id: String = row.try_get("", "id")?;
        out.push(load_view(db, workflows, viewer, &id, acting).await?);
    }
    Ok(Paged::new(out, u64::try_from(total).unwrap_or(0), page))
}

/// What the guards see on the decision date: the chain (the node, its ancestors, their
/// permission states, the evidence of each node's organisation and its parent's), the
/// requirement policy of the definition the instance runs on, and the significant changes the
/// node would make without an assessment recorded in advance.
pub async fn facts_for(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    instance_id: &str,
    node_id: &str,
    today: NaiveDate,
) -> Result<Value, AppError> {
    let inst = workflow_instance::Entity::find_by_id(instance_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let policy = policy_of(workflows, &inst.workflow_id, inst.workflow_version)?;
    let chain = chain_facts(db, node_id).await?.without_superseded(today);
    let (significant, reassessment) =
        crate::services::documents::pending_node_checks(db, node_id, today).await?;
    // The re-assessment warning is for the decision screen, not the guards: it rides along so
    // that the screen does not count the file's handlers a second time.
    Ok(json!({
        "chain": chain,
        "policy": policy,
        "significant_changes": significant,
        "reassessment_warning": reassessment,
    }))
}

/// The chain facts of a node (see [`facts_for`]).
pub async fn chain_facts(db: &impl ConnectionTrait, node_id: &str) -> Result<ChainFacts, AppError> {
    let node = chain_node::Entity::find_by_id(node_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let ancestors = ancestors_of(db, &node).await?;
    let chain: Vec<&chain_node::Model> = std::iter::once(&node).chain(ancestors.iter()).collect();
    let orgs: BTreeSet<String> = chain.iter().map(|n| n.contractor_id.clone()).collect();
    let node_ids: BTreeSet<String> = chain.iter().map(|n| n.id.clone()).collect();
    let names = crate::services::chains::names(db, orgs.iter().cloned()).await?;
    let records = evidence_record::Entity::find()
        .filter(evidence_record::Column::OrganisationId.is_in(orgs.iter().cloned()))
        .all(db)
        .await?;
    let facts: Vec<(String, EvidenceFact)> = records
        .iter()
        .filter(|r| r.node_id.as_ref().is_none_or(|n| node_ids.contains(n)))
        .map(|r| (r.organisation_id.clone(), evidence_fact(r)))
        .collect();
    let node_facts = |n: &chain_node::Model, parent_org: Option<&str>| NodeFacts {
        node_id: n.id.clone(),
        tier: u32::try_from(n.tier).unwrap_or(0),
        organisation_id: n.contractor_id.clone(),
        organisation_name: names.get(&n.contractor_id).cloned().unwrap_or_default(),
        parent_organisation_id: parent_org.map(str::to_owned),
        hosts_environment: n.hosts_environment,
        cloud_classification: n
            .cloud_classification
            .as_deref()
            .and_then(|c| serde_json::from_value(Value::String(c.to_owned())).ok()),
        service_name: n.service_name.clone(),
        permission_state: n.permission_state.clone(),
        period_start: n.period_start,
        period_end: n.period_end,
        evidence: facts
            .iter()
            .filter(|(org, e)| {
                (org == &n.contractor_id || Some(org.as_str()) == parent_org)
                    && e.node_id.as_ref().is_none_or(|x| x == &n.id)
            })
            .map(|(_, e)| e.clone())
            .collect(),
    };
    // Tier 1's parent is the consigning municipality (its NDA is with the municipality).
    let municipality = consignment_item::Entity::find_by_id(&node.item_id)
        .one(db)
        .await?
        .map(|i| i.municipality_id);
    let parent_org = |n: &chain_node::Model| -> Option<String> {
        match &n.parent_id {
            None => municipality.clone(),
            Some(p) => chain
                .iter()
                .find(|x| &x.id == p)
                .map(|x| x.contractor_id.clone()),
        }
    };
    Ok(ChainFacts {
        node: node_facts(&node, parent_org(&node).as_deref()),
        ancestors: ancestors
            .iter()
            .map(|a| node_facts(a, parent_org(a).as_deref()))
            .collect(),
    })
}

/// A stored evidence record as the policy sees it.
pub fn evidence_fact(r: &evidence_record::Model) -> EvidenceFact {
    let fields: Value = serde_json::from_str(&r.fields).unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        fields
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    EvidenceFact {
        id: r.id.clone(),
        kind: serde_json::from_value(Value::String(r.kind.clone()))
            .unwrap_or(crate::domain::evidence::EvidenceKind::CsSilver),
        organisation_id: r.organisation_id.clone(),
        node_id: r.node_id.clone(),
        service_name: r.service_name.clone(),
        covered_services: strings("covered_services"),
        counterparty_organisation_id: fields
            .get("counterparty_organisation_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        renewal_pending: r.renewal_pending,
        verified: r.verified_at.is_some(),
        revoked: r.revoked_at.is_some(),
    }
}

/// The requirement policy as declared in the definition file the instance runs on (the
/// `requirements_met` guard's parameters).
pub fn policy_of(workflows: &WorkflowSet, id: &str, version: i32) -> Result<Policy, ApiError> {
    let rt = workflows
        .get(id, u32::try_from(version).unwrap_or(0))
        .ok_or_else(|| ApiError::internal(format!("definition {id} v{version} is not loaded")))?;
    let file: toml::Table = toml::from_str(rt.source()).map_err(ApiError::internal)?;
    let guard = file
        .get("transitions")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("guards").and_then(toml::Value::as_array))
        .flatten()
        .filter_map(toml::Value::as_table)
        .find(|g| g.get("name").and_then(toml::Value::as_str) == Some("requirements_met"));
    match guard {
        Some(g) => {
            let mut params = g.clone();
            params.remove("name");
            Policy::from_params(&params).map_err(ApiError::internal)
        }
        None => Ok(Policy {
            requirements: Vec::new(),
        }),
    }
}

/// The evidence checklist of a target's node and its ancestors, with the unmet requirements
/// and warnings, as the decision screen shows them.
pub async fn checklist(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    app_id: &str,
    target_id: &str,
    acting: &Acting<'_>,
) -> Result<Value, AppError> {
    let view = load_view(db, workflows, viewer, app_id, acting).await?;
    checklist_of(db, workflows, viewer, &view, target_id, acting).await
}

/// [`checklist`] of an application already loaded for the viewer.
pub async fn checklist_of(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    view: &ApplicationView,
    target_id: &str,
    acting: &Acting<'_>,
) -> Result<Value, AppError> {
    let target = view
        .targets
        .iter()
        .find(|t| t.id == target_id)
        .ok_or(ErrorCode::NotFound)?;
    let inst = workflow_instance::Entity::find_by_id(&target.instance_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let policy = policy_of(workflows, &inst.workflow_id, inst.workflow_version)?;
    // The facts the view was loaded with, else read now.
    let known = target.facts.as_ref();
    let facts = match known.and_then(|f| serde_json::from_value(f["chain"].clone()).ok()) {
        Some(facts) => facts,
        None => chain_facts(db, &target.node_id).await?,
    };
    let today = acting.now.today;
    let mut evaluation = policy::evaluate(&policy, &facts, today);
    // The handler count is the municipality's own document: only its staff see the warning.
    if viewer.is_municipal(&target.municipality_id) {
        let known_warning = known
            .and_then(|f| f.get("reassessment_warning"))
            .map(|w| serde_json::from_value::<Option<crate::domain::policy::Warning>>(w.clone()));
        let warning = match known_warning {
            Some(Ok(warning)) => warning,
            _ => {
                crate::services::documents::reassessment_warning(db, &target.node_id, today).await?
            }
        };
        evaluation.warnings.extend(warning);
        // ISMAP records that disagree with the current list, for the officer to look at.
        evaluation
            .warnings
            .extend(crate::services::ismap::checklist_warnings(db, &evaluation.checklist).await?);
    }
    let in_force = policy::chain_in_force(&facts, today);
    // Decided by the municipality alone, from its own documents: not shown to contractors.
    let significant = if viewer.is_municipal(&target.municipality_id) {
        match known.and_then(|f| serde_json::from_value(f["significant_changes"].clone()).ok()) {
            Some(changes) => changes,
            None => {
                crate::services::documents::unassessed_changes(db, &target.node_id, today).await?
            }
        }
    } else {
        Vec::new()
    };
    Ok(json!({
        "decision_date": today,
        "node_id": target.node_id,
        "checklist": evaluation.checklist,
        "unmet": in_force
            .into_iter()
            .chain(evaluation.unmet)
            .chain(significant)
            .collect::<Vec<_>>(),
        "warnings": evaluation.warnings,
    }))
}

/// A requirement of one of an organisation's own nodes that asks something of it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub node_id: String,
    pub item_id: String,
    pub entry: policy::ChecklistEntry,
}

/// What the requirement policy (of the latest definition) asks of `org` for the nodes it holds
/// that are applying, permitted or suspended: every requirement not met today, and every one
/// met by evidence that runs out within `days`. Only for the organisation's own contractor
/// users.
pub async fn requests_for(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    org: &str,
    today: NaiveDate,
    days: u32,
) -> Result<Vec<Request>, AppError> {
    if !viewer.is_contractor(org) {
        return Err(ErrorCode::NotFound.into());
    }
    let latest = workflows
        .latest(WORKFLOW)
        .map(|rt| rt.version())
        .ok_or_else(|| ApiError::internal(format!("{WORKFLOW} is not loaded")))?;
    let policy = policy_of(
        workflows,
        WORKFLOW,
        i32::try_from(latest).unwrap_or(i32::MAX),
    )?;
    let soon = today + chrono::Days::new(u64::from(days));
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ContractorId.eq(org))
        .filter(chain_node::Column::PermissionState.is_in(["applying", "permitted", "suspended"]))
        .order_by_asc(chain_node::Column::ItemId)
        .order_by_asc(chain_node::Column::Tier)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for n in nodes {
        let facts = chain_facts(db, &n.id).await?;
        let evaluation = policy::evaluate(&policy, &facts, today);
        out.extend(
            evaluation
                .checklist
                .into_iter()
                .filter(|e| e.node_id == n.id)
                .filter(|e| {
                    e.status != policy::EvidenceStatus::Met
                        || e.valid_until.is_some_and(|u| u <= soon)
                })
                .map(|entry| Request {
                    node_id: n.id.clone(),
                    item_id: n.item_id.clone(),
                    entry,
                }),
        );
    }
    Ok(out)
}

/// The outcome of an event on an application.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOutcome {
    /// The targets the event was applied to.
    pub fired: Vec<String>,
    /// Nodes suspended because an ancestor left the permitted state.
    pub cascaded: Vec<String>,
    pub application: ApplicationView,
}

/// Applies an event to the application's targets in one transaction: all or nothing.
pub async fn fire(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    app_id: &str,
    ev: &ApplicationEvent,
    acting: &Acting<'_>,
) -> Result<EventOutcome, AppError> {
    if let Some(c) = &ev.comment {
        validation::finish(validation::no_individual_numbers(&json!({ "comment": c })))?;
    }
    let txn = db.begin().await?;
    let view = load_view(&txn, workflows, viewer, app_id, acting).await?;
    let explicit = ev.targets.is_some();
    let chosen: Vec<&TargetView> = match &ev.targets {
        Some(ids) => {
            let mut v = Vec::new();
            for id in ids {
                v.push(
                    view.targets
                        .iter()
                        .find(|t| &t.id == id)
                        .ok_or(ErrorCode::NotFound)?,
                );
            }
            v
        }
        None => view.targets.iter().collect(),
    };
    if ev.version.is_some() && chosen.len() != 1 {
        return Err(ApiError::invalid_field(
            "version",
            "versionは対象を一つに絞ったときだけ指定できます。",
            "version can only be given with exactly one target.",
        )
        .into());
    }
    let req = FireRequest {
        event: &ev.event,
        expected_version: ev.version,
        comment: ev.comment.as_deref(),
        to_step: ev.to_step.as_deref(),
        on_behalf_of: ev.on_behalf_of.as_deref(),
        data: None,
    };
    let mut fired = Vec::new();
    let mut cascaded = Vec::new();
    let mut first_error: Option<InstanceError> = None;
    for t in chosen {
        // Without explicit targets, only those where the caller may act now.
        if !explicit && !t.available_events.iter().any(|e| e == &ev.event) {
            if first_error.is_none() {
                first_error = Some(dry_error(&txn, workflows, t, &req, acting).await?);
            }
            continue;
        }
        let done = fire_target(&txn, workflows, &t.instance_id, &t.node_id, &req, acting).await?;
        cascaded.extend(done);
        fired.push(t.id.clone());
    }
    if fired.is_empty() {
        return Err(first_error
            .map(AppError::Instance)
            .unwrap_or_else(|| ErrorCode::NotFound.into()));
    }
    let application = load_view(&txn, workflows, viewer, app_id, acting).await?;
    txn.commit().await?;
    Ok(EventOutcome {
        fired,
        cascaded,
        application,
    })
}

/// The refusal the engine gives for an event on a target, without keeping anything: it runs
/// inside a savepoint that is always rolled back.
async fn dry_error(
    txn: &sea_orm::DatabaseTransaction,
    workflows: &WorkflowSet,
    t: &TargetView,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceError, AppError> {
    let sp = txn.begin().await?;
    let facts = facts_for(&sp, workflows, &t.instance_id, &t.node_id, acting.now.today).await?;
    let r = instances::fire_in(&sp, workflows, &t.instance_id, req, acting, Some(facts)).await;
    sp.rollback().await?;
    Ok(match r {
        Err(e) => e,
        // It would apply after all (the caller's view was stale): report a conflict.
        Ok(_) => InstanceError::Concurrent,
    })
}

/// Fires one event on a target's instance with the chain's facts, mirrors the state on the
/// node and cascades a lapse of permission to every permitted descendant. Returns the nodes
/// suspended by the cascade.
pub async fn fire_target(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    instance_id: &str,
    node_id: &str,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<Vec<String>, AppError> {
    let facts = facts_for(txn, workflows, instance_id, node_id, acting.now.today).await?;
    let (view, fired) =
        instances::fire_in(txn, workflows, instance_id, req, acting, Some(facts)).await?;
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    set_node_state(txn, node_id, &view.state, req.comment, now).await?;
    // Evidence that expires within the node's period is a warning on the decision screen; its
    // owner and the root municipality are reminded before it expires by the staged reminders
    // (`services::reminders`), which cover every verified record, not only those of a decision.
    let lapsed = matches!(view.state.as_str(), "suspended" | "revoked" | "terminated");
    if lapsed && fired.from != fired.to {
        let cause = Msg::new(
            format!(
                "上位ノードの許諾が「{}」になったため",
                view.state_label.map_or(view.state.clone(), |l| l.ja)
            ),
            format!("An ancestor's permission became \"{}\"", view.state),
        );
        return cascade(
            txn,
            workflows,
            node_id,
            &cause,
            acting.now,
            acting.request_id,
        )
        .await;
    }
    Ok(Vec::new())
}

/// The node's permission state for a workflow state.
pub fn node_state(workflow_state: &str) -> &str {
    match workflow_state {
        "draft" | "endorsement" | "decision" => "applying",
        other => other,
    }
}

async fn set_node_state(
    txn: &impl ConnectionTrait,
    node_id: &str,
    workflow_state: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let state = node_state(workflow_state);
    chain_node::Entity::update_many()
        .col_expr(chain_node::Column::PermissionState, Expr::value(state))
        .col_expr(chain_node::Column::StateChangedAt, Expr::value(now))
        .col_expr(
            chain_node::Column::StateReason,
            Expr::value(reason.map(str::to_owned)),
        )
        .col_expr(chain_node::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            chain_node::Column::Version,
            Expr::col(chain_node::Column::Version).add(1),
        )
        .filter(chain_node::Column::Id.eq(node_id))
        .filter(chain_node::Column::PermissionState.ne(state))
        .exec(txn)
        .await?;
    Ok(())
}

/// Suspends every permitted node below `node_id` (BRIEF C7), each by the system's
/// `cascade_suspend` event with the cause as its comment, so each has its audit record and
/// its notification rows in the caller's transaction.
pub async fn cascade(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    node_id: &str,
    cause: &Msg,
    now: Now,
    request_id: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let mut suspended = Vec::new();
    let mut frontier = VecDeque::from([node_id.to_owned()]);
    let grants = system_grants();
    let acting = system_acting(&grants, now, request_id);
    let comment = format!("{} / {}", cause.ja, cause.en);
    while let Some(id) = frontier.pop_front() {
        let children = chain_node::Entity::find()
            .filter(chain_node::Column::ParentId.eq(id.as_str()))
            .all(txn)
            .await?;
        for child in children {
            frontier.push_back(child.id.clone());
            if child.permission_state != "permitted" {
                continue;
            }
            suspend_node(txn, workflows, &child.id, &comment, &acting).await?;
            suspended.push(child.id);
        }
    }
    Ok(suspended)
}

/// Suspends one permitted node through its instance's `cascade_suspend` event.
pub async fn suspend_node(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    node_id: &str,
    comment: &str,
    acting: &Acting<'_>,
) -> Result<(), AppError> {
    let target = application_target::Entity::find()
        .filter(application_target::Column::NodeId.eq(node_id))
        .one(txn)
        .await?;
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    match target {
        Some(t) => {
            let req = FireRequest {
                event: CASCADE_EVENT,
                comment: Some(comment),
                ..FireRequest::default()
            };
            let (view, _) =
                instances::fire_in(txn, workflows, &t.instance_id, &req, acting, None).await?;
            set_node_state(txn, node_id, &view.state, Some(comment), now).await?;
        }
        // A node without an application (tier 1, in force by contract) is suspended directly.
        None => set_node_state(txn, node_id, "suspended", Some(comment), now).await?,
    }
    Ok(())
}

/// Re-evaluates every permitted node that relies on `org`'s evidence (its own node and the
/// nodes directly below it) and suspends, with their descendants, those whose requirements
/// are no longer met. Used when evidence expires or is revoked.
pub async fn reevaluate_for_organisation(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    org: &str,
    cause: &Msg,
    now: Now,
    request_id: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let own = chain_node::Entity::find()
        .filter(chain_node::Column::ContractorId.eq(org))
        .all(txn)
        .await?;
    let mut candidates: Vec<chain_node::Model> = Vec::new();
    for n in &own {
        candidates.extend(
            chain_node::Entity::find()
                .filter(chain_node::Column::ParentId.eq(n.id.as_str()))
                .all(txn)
                .await?,
        );
    }
    candidates.extend(own);
    candidates.sort_by_key(|n| n.tier);
    let mut suspended = Vec::new();
    let grants = system_grants();
    let acting = system_acting(&grants, now, request_id);
    let comment = format!("{} / {}", cause.ja, cause.en);
    let mut policies: BTreeMap<(String, i32), Policy> = BTreeMap::new();
    for n in candidates {
        // Re-read: an earlier cascade in this loop may have suspended it.
        let Some(n) = chain_node::Entity::find_by_id(&n.id).one(txn).await? else {
            continue;
        };
        if n.permission_state != "permitted" || n.tier < 2 {
            continue;
        }
        let Some(t) = application_target::Entity::find()
            .filter(application_target::Column::NodeId.eq(n.id.as_str()))
            .one(txn)
            .await?
        else {
            continue;
        };
        let Some(inst) = workflow_instance::Entity::find_by_id(&t.instance_id)
            .one(txn)
            .await?
        else {
            continue;
        };
        let key = (inst.workflow_id.clone(), inst.workflow_version);
        if !policies.contains_key(&key) {
            let p = policy_of(workflows, &key.0, key.1)?;
            policies.insert(key.clone(), p);
        }
        let Some(policy) = policies.get(&key) else {
            continue;
        };
        let facts = chain_facts(txn, &n.id).await?;
        if policy::evaluate(policy, &facts, now.today).unmet.is_empty() {
            continue;
        }
        suspend_node(txn, workflows, &n.id, &comment, &acting).await?;
        suspended.push(n.id.clone());
        let below = cascade(txn, workflows, &n.id, cause, now, request_id).await?;
        suspended.extend(below);
    }
    Ok(suspended)
}

/// Fires an event on an instance by id: directly ([`instances::fire`], the engine's fast path)
/// unless its kind is managed; then through [`fire_target`] when it decides a chain node. One
/// transaction either way.
pub async fn fire_instance(
    conns: instances::Conns<'_>,
    workflows: &WorkflowSet,
    instance_id: &str,
    row: instances::RowRead,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceView, AppError> {
    match instances::fire_on(conns, workflows, instance_id, row, req, acting).await {
        Err(InstanceError::Managed(_)) => {}
        done => return Ok(done?),
    }
    let txn = conns.db.begin().await?;
    let target = application_target::Entity::find()
        .filter(application_target::Column::InstanceId.eq(instance_id))
        .one(&txn)
        .await?;
    let view = match target {
        Some(t) => {
            fire_target(&txn, workflows, instance_id, &t.node_id, req, acting).await?;
            let facts =
                facts_for(&txn, workflows, instance_id, &t.node_id, acting.now.today).await?;
            instances::get_with_facts(&txn, workflows, instance_id, acting, Some(facts)).await?
        }
        None => {
            instances::fire_in(&txn, workflows, instance_id, req, acting, None)
                .await?
                .0
        }
    };
    txn.commit().await?;
    Ok(view)
}

/// Reads an instance by id, its available events judged with the chain's facts when it decides
/// a chain node.
pub async fn get_instance(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    instance_id: &str,
    acting: &Acting<'_>,
) -> Result<InstanceView, AppError> {
    let target = application_target::Entity::find()
        .filter(application_target::Column::InstanceId.eq(instance_id))
        .one(db)
        .await?;
    let facts = match target {
        Some(t) => Some(facts_for(db, workflows, instance_id, &t.node_id, acting.now.today).await?),
        None => None,
    };
    Ok(instances::get_with_facts(db, workflows, instance_id, acting, facts).await?)
}

/// A correction of an application's fields while it is a draft (before submission, or after a
/// return, 差戻し).
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationUpdate {
    /// The application version the caller saw.
    pub version: i64,
    #[validate(nested)]
    pub fields: ApplicationFields,
}

/// Replaces the fields of an application whose every target is a draft: the application, each
/// target's node, and an `edit` event on each target's instance (its audit record lists the
/// changed fields) — one transaction.
pub async fn update(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    id: &str,
    input: ApplicationUpdate,
    acting: &Acting<'_>,
) -> Result<ApplicationView, AppError> {
    let txn = db.begin().await?;
    let view = load_view(&txn, workflows, viewer, id, acting).await?;
    if !viewer.is_contractor(&view.applicant_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    validation::finish(field_errors(&input, &input.fields))?;
    let app = subcontract_application::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    if app.version != input.version {
        return Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": input.version, "current": app.version }))
            .into());
    }
    let before: Value = serde_json::from_str(&app.fields).unwrap_or_default();
    let after = serde_json::to_value(&input.fields).map_err(ApiError::internal)?;
    let changed: Vec<&String> = after
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let data = json!({ "changed_fields": changed });
    let req = FireRequest {
        event: "edit",
        data: Some(&data),
        ..FireRequest::default()
    };
    for t in &view.targets {
        fire_target(&txn, workflows, &t.instance_id, &t.node_id, &req, acting).await?;
    }
    let now = crate::services::db_time::to_db_precision(acting.now.at);
    let f = &input.fields;
    let own = f.structure_chart.tiers.first();
    let done = subcontract_application::Entity::update_many()
        .col_expr(
            subcontract_application::Column::Fields,
            Expr::value(after.to_string()),
        )
        .col_expr(subcontract_application::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            subcontract_application::Column::Version,
            Expr::value(app.version + 1),
        )
        .filter(subcontract_application::Column::Id.eq(id))
        .filter(subcontract_application::Column::Version.eq(app.version))
        .exec(&txn)
        .await?;
    if done.rows_affected != 1 {
        return Err(InstanceError::Concurrent.into());
    }
    for t in &view.targets {
        chain_node::Entity::update_many()
            .col_expr(
                chain_node::Column::ScopeOfWork,
                Expr::value(f.scope_of_work.clone()),
            )
            .col_expr(
                chain_node::Column::DataScope,
                Expr::value(f.data_scope.clone()),
            )
            .col_expr(chain_node::Column::Reason, Expr::value(f.reason.clone()))
            .col_expr(
                chain_node::Column::Capability,
                Expr::value(f.capability.clone()),
            )
            .col_expr(
                chain_node::Column::InspectionRequirements,
                Expr::value(f.inspection_requirements.clone()),
            )
            .col_expr(
                chain_node::Column::PlannedAmount,
                Expr::value(f.planned_amount),
            )
            .col_expr(
                chain_node::Column::StructureChart,
                Expr::value(serde_json::to_string(&f.structure_chart).unwrap_or_default()),
            )
            .col_expr(
                chain_node::Column::Supervision,
                Expr::value(f.supervision.clone()),
            )
            .col_expr(
                chain_node::Column::ResponsiblePerson,
                Expr::value(own.map(|t| t.responsible_person.clone())),
            )
            .col_expr(
                chain_node::Column::Manager,
                Expr::value(own.map(|t| t.manager.clone())),
            )
            .col_expr(
                chain_node::Column::StaffCount,
                Expr::value(own.map(StructureTier::staff)),
            )
            .col_expr(
                chain_node::Column::WorkLocation,
                Expr::value(own.map(|t| t.work_location.clone())),
            )
            .col_expr(chain_node::Column::PeriodStart, Expr::value(f.period_start))
            .col_expr(chain_node::Column::PeriodEnd, Expr::value(f.period_end))
            .col_expr(
                chain_node::Column::HostsEnvironment,
                Expr::value(f.hosts_environment),
            )
            .col_expr(
                chain_node::Column::ServiceName,
                Expr::value(f.service_name.clone()),
            )
            .col_expr(
                chain_node::Column::AdvancePermission,
                Expr::value(
                    f.advance_permission
                        .as_ref()
                        .and_then(|a| serde_json::to_string(a).ok()),
                ),
            )
            .col_expr(
                chain_node::Column::HandlerBracket,
                Expr::value(f.handler_bracket.map(|b| b.as_str().to_owned())),
            )
            .col_expr(
                chain_node::Column::RecordingMedium,
                Expr::value(f.recording_medium.as_deref().map(|s| s.trim().to_owned())),
            )
            .col_expr(chain_node::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                chain_node::Column::Version,
                Expr::col(chain_node::Column::Version).add(1),
            )
            .filter(chain_node::Column::Id.eq(t.node_id.as_str()))
            .exec(&txn)
            .await?;
    }
    let view = load_view(&txn, workflows, viewer, id, acting).await?;
    txn.commit().await?;
    Ok(view)
}
