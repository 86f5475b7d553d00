//! Obligations (BRIEF 4, C8): generated from the chains in force, reminded on the business days
//! the policy declares, and closed by a record.
//!
//! - **Generation** ([`generate`]): every permitted node owes its root municipality training
//!   once per 年度 and on-site inspections at its tier's frequency (a cloud node classified
//!   `no_access` is not a tier and owes none). Each row has a UNIQUE `generation_key`
//!   (`training:<node>:<年度>`, `inspection:<node>:<period end>`) and an id derived from it, so
//!   running it again, or on several replicas at once, creates nothing new.
//! - **Reminders** ([`remind_due`]): an obligation that is open or returned carries the day of
//!   its next stage (`next_reminder_on`, indexed), so a pass reads only what is due. It claims a
//!   batch (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: by taking the write lock first), moves
//!   each to its next stage with a compare-and-set on `reminder_stage` and writes the stage's
//!   notification keyed `obligation:<id>:<stage>` in the same transaction: each stage fires
//!   once, however many schedulers race.
//! - **Closing**: the owner's contractors submit the attendance record (training) or the
//!   corrective action (a follow-up) with its file; an officer of the root municipality accepts
//!   it or returns it with a reason. The root municipality's officers record an inspection
//!   report, which closes the inspection; each finding with a follow-up action becomes an
//!   obligation of the contractor. Accepting an attendance record with absentees creates the
//!   follow-up training. Each change writes its history row in the same transaction.
//! - **Who sees what**: the owner's contractors see and act on their organisation's
//!   obligations; the root municipality's staff see theirs (auditors read only); anyone else
//!   gets 404.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use entity::outbox as outbox_entity;
use entity::{
    application_target, chain_node, consignment_item, file, obligation, obligation_event,
    organisation,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use validator::Validate;

use crate::domain::fiscal::FiscalYear;
use crate::domain::obligations::{
    Addressee, ObligationPolicy, COMPLIANCE_REPORT, INSPECTION, INSPECTION_FOLLOWUP, RENEWAL,
    TRAINING, TRAINING_FOLLOWUP,
};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::schedule::calendar::BusinessCalendar;
use crate::services::access::Viewer;
use crate::services::chains::{Page, Paged};
use crate::services::db_time::to_db_precision;
use crate::services::idempotency::keyed_uuid_v7;
use crate::services::instances::{append_note, Acting, InstanceError};
use crate::services::outbox::MAIL_EFFECT;
use crate::validation;
use crate::workflow::definition::Label;
use crate::workflow::{Actor, Now};

/// Rows written per statement while generating.
const INSERT_CHUNK: usize = 500;
/// Obligations claimed per transaction by a reminder pass.
const REMIND_BATCH: u64 = 2_000;
/// Statuses in which the owner still has to act (and is reminded).
const OUTSTANDING: [&str; 2] = ["open", "returned"];

// --- Generation ------------------------------------------------------------------------------

/// One obligation to create.
struct NewObligation {
    key: String,
    kind: &'static str,
    node: chain_node::Model,
    municipality_id: String,
    fiscal_year: FiscalYear,
    due_on: NaiveDate,
    parent_id: Option<String>,
    detail: Value,
}

fn active(
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    o: NewObligation,
    now: DateTime<Utc>,
) -> obligation::ActiveModel {
    let at = to_db_precision(now);
    let first = policy.stage_day(calendar, o.due_on, 0);
    obligation::ActiveModel {
        id: Set(keyed_uuid_v7("obligations", &o.key, at)),
        generation_key: Set(o.key),
        kind: Set(o.kind.to_owned()),
        organisation_id: Set(o.node.contractor_id.clone()),
        municipality_id: Set(o.municipality_id),
        item_id: Set(o.node.item_id.clone()),
        node_id: Set(o.node.id.clone()),
        fiscal_year: Set(o.fiscal_year.year()),
        due_on: Set(o.due_on),
        status: Set("open".to_owned()),
        parent_id: Set(o.parent_id),
        detail: Set(o.detail.to_string()),
        record: Set(None),
        record_file: Set(None),
        record_filename: Set(None),
        submitted_by: Set(None),
        submitted_at: Set(None),
        decided_by: Set(None),
        decided_at: Set(None),
        return_reason: Set(None),
        reminder_stage: Set(0),
        next_reminder_on: Set(first),
        created_at: Set(at),
        updated_at: Set(at),
        version: Set(1),
    }
}

/// Inserts the rows whose generation key is new; returns how many were written.
async fn insert_new(
    conn: &impl ConnectionTrait,
    rows: Vec<obligation::ActiveModel>,
) -> Result<u64, DbErr> {
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        written += obligation::Entity::insert_many(chunk)
            // No conflict target: the id is derived from the key and the time, so two
            // generators racing at the same moment collide on the primary key, at another
            // moment on the key; either way the row exists and nothing is written.
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(written)
}

/// Creates the obligations of the 年度 of `now.today` for every node in force that day (each
/// once, by its generation key); returns how many were new.
pub async fn generate(
    db: &impl ConnectionTrait,
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    now: Now,
) -> Result<u64, DbErr> {
    let fy = FiscalYear::of(now.today);
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::PermissionState.eq("permitted"))
        .filter(chain_node::Column::PeriodStart.lte(fy.end()))
        .filter(chain_node::Column::PeriodEnd.gte(fy.start()))
        .order_by_asc(chain_node::Column::Id)
        .all(db)
        .await?;
    let items: BTreeSet<String> = nodes.iter().map(|n| n.item_id.clone()).collect();
    let municipality_of = municipalities_of_items(db, items).await?;
    let training_due = policy.training_due(calendar, fy);
    let mut rows = Vec::new();
    for node in nodes {
        let Some(municipality) = municipality_of.get(&node.item_id).cloned() else {
            continue;
        };
        rows.push(active(
            policy,
            calendar,
            NewObligation {
                key: format!("{TRAINING}:{}:{}", node.id, fy.year()),
                kind: TRAINING,
                node: node.clone(),
                municipality_id: municipality.clone(),
                fiscal_year: fy,
                due_on: training_due,
                parent_id: None,
                detail: json!({ "title": policy.training.label }),
            },
            now.at,
        ));
        if node.period_end == fy.end() {
            if let (Some(r), Some(due_on)) = (
                &policy.renewal,
                policy.renewal_due(calendar, node.period_end),
            ) {
                rows.push(active(
                    policy,
                    calendar,
                    NewObligation {
                        key: format!("{RENEWAL}:{}:{}", node.id, node.period_end),
                        kind: RENEWAL,
                        node: node.clone(),
                        municipality_id: municipality.clone(),
                        fiscal_year: fy,
                        due_on,
                        parent_id: None,
                        detail: json!({ "title": r.label, "period_end": node.period_end }),
                    },
                    now.at,
                ));
            }
        }
        if node.cloud_classification.as_deref() == Some("no_access") {
            continue;
        }
        let cloud = node.hosts_environment;
        if let Some(c) = &policy.compliance_report {
            let months = policy.compliance_months(node.tier, cloud);
            for end in ObligationPolicy::period_ends(months, fy) {
                let due_on = calendar.on_or_before(end);
                rows.push(active(
                    policy,
                    calendar,
                    NewObligation {
                        key: format!("{COMPLIANCE_REPORT}:{}:{end}", node.id),
                        kind: COMPLIANCE_REPORT,
                        node: node.clone(),
                        municipality_id: municipality.clone(),
                        fiscal_year: fy,
                        due_on,
                        parent_id: None,
                        detail: json!({ "title": c.label, "every_months": months, "period_end": end }),
                    },
                    now.at,
                ));
            }
        }
        let months = policy.inspection_months(node.tier, cloud);
        for end in ObligationPolicy::period_ends(months, fy) {
            let due_on = calendar.on_or_before(end);
            rows.push(active(
                policy,
                calendar,
                NewObligation {
                    key: format!("{INSPECTION}:{}:{end}", node.id),
                    kind: INSPECTION,
                    node: node.clone(),
                    municipality_id: municipality.clone(),
                    fiscal_year: fy,
                    due_on,
                    parent_id: None,
                    detail: json!({ "title": policy.inspection.label, "every_months": months }),
                },
                now.at,
            ));
        }
    }
    insert_new(db, rows).await
}

/// The root municipality of each consignment item.
pub(crate) async fn municipalities_of_items(
    db: &impl ConnectionTrait,
    items: BTreeSet<String>,
) -> Result<BTreeMap<String, String>, DbErr> {
    if items.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(consignment_item::Entity::find()
        .filter(consignment_item::Column::Id.is_in(items))
        .all(db)
        .await?
        .into_iter()
        .map(|i| (i.id, i.municipality_id))
        .collect())
}

// --- Reminders -------------------------------------------------------------------------------

/// A reminder stage a pass fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredStage {
    pub obligation_id: String,
    pub stage: String,
    pub due_on: NaiveDate,
}

/// Fires every reminder stage due on or before `now.today` (only the latest one reached per
/// obligation); returns those this caller fired.
pub async fn remind_due(
    db: &DatabaseConnection,
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    now: Now,
) -> Result<Vec<FiredStage>, DbErr> {
    let mut fired = Vec::new();
    loop {
        let txn = db.begin().await?;
        let batch = claim_batch(&txn, now.today).await?;
        if batch.is_empty() {
            txn.rollback().await?;
            return Ok(fired);
        }
        let names =
            organisation_names(&txn, batch.iter().map(|o| o.organisation_id.clone())).await?;
        // (old stage, new stage, next day) → ids, so a batch is a few updates.
        let mut moves: BTreeMap<(i32, i32, Option<NaiveDate>), Vec<String>> = BTreeMap::new();
        let mut mails = Vec::new();
        let mut done = Vec::new();
        for o in batch {
            let from = usize::try_from(o.reminder_stage).unwrap_or(0);
            let due_stage = policy.stage_due(calendar, o.due_on, from, now.today);
            let next = due_stage.map_or(from, |ix| ix + 1);
            let next_day = policy.stage_day(calendar, o.due_on, next);
            let next_i32 = i32::try_from(next).unwrap_or(i32::MAX);
            moves
                .entry((o.reminder_stage, next_i32, next_day))
                .or_default()
                .push(o.id.clone());
            let Some(stage) = due_stage.and_then(|ix| policy.reminders.get(ix)) else {
                continue;
            };
            let owner = names.get(&o.organisation_id).cloned().unwrap_or_default();
            mails.push(reminder_row(&o, stage, &owner, now.at));
            done.push(FiredStage {
                obligation_id: o.id,
                stage: stage.stage.clone(),
                due_on: o.due_on,
            });
        }
        let at = to_db_precision(now.at);
        for ((old, new, day), ids) in moves {
            obligation::Entity::update_many()
                .col_expr(obligation::Column::ReminderStage, Expr::value(new))
                .col_expr(obligation::Column::NextReminderOn, Expr::value(day))
                .col_expr(obligation::Column::UpdatedAt, Expr::value(at))
                .filter(obligation::Column::Id.is_in(ids))
                .filter(obligation::Column::ReminderStage.eq(old))
                .exec(&txn)
                .await?;
        }
        if !mails.is_empty() {
            outbox_entity::Entity::insert_many(mails)
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        fired.append(&mut done);
    }
}

/// The next batch of outstanding obligations with a stage due, held for this transaction.
async fn claim_batch(
    txn: &impl ConnectionTrait,
    today: NaiveDate,
) -> Result<Vec<obligation::Model>, DbErr> {
    match txn.get_database_backend() {
        DbBackend::Postgres => {
            let sql = format!(
                "SELECT * FROM obligations WHERE next_reminder_on <= $1 \
                 AND status IN ('open', 'returned') ORDER BY next_reminder_on, id \
                 LIMIT {REMIND_BATCH} FOR UPDATE SKIP LOCKED"
            );
            obligation::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [today.into()],
                ))
                .all(txn)
                .await
        }
        _ => {
            take_sqlite_write_lock(txn, "obligations").await?;
            obligation::Entity::find()
                .filter(obligation::Column::NextReminderOn.lte(today))
                .filter(obligation::Column::Status.is_in(OUTSTANDING))
                .order_by_asc(obligation::Column::NextReminderOn)
                .order_by_asc(obligation::Column::Id)
                .limit(REMIND_BATCH)
                .all(txn)
                .await
        }
    }
}

/// SQLite has no row locks: a write first takes the database's write lock, so the rows a
/// transaction reads next are current and no other scheduler changes them before it commits.
/// The statement changes nothing (`table`, a constant of the caller, has an `id` column).
pub(crate) async fn take_sqlite_write_lock(
    txn: &impl ConnectionTrait,
    table: &str,
) -> Result<(), DbErr> {
    txn.execute(Statement::from_string(
        DbBackend::Sqlite,
        format!("UPDATE {table} SET id = id WHERE 0"),
    ))
    .await?;
    Ok(())
}

/// The outbox row of one reminder stage.
fn reminder_row(
    o: &obligation::Model,
    stage: &crate::domain::obligations::ReminderStage,
    owner_name: &str,
    now: DateTime<Utc>,
) -> outbox_entity::ActiveModel {
    let recipients: Vec<Value> = stage
        .to
        .iter()
        .map(|a| match a {
            Addressee::Group(g) if g == "owner" => owner_recipient(o),
            Addressee::Group(_) => json!({ "role": "officer", "org": o.municipality_id }),
            Addressee::Role { role } => json!({ "role": role, "org": o.municipality_id }),
        })
        .collect();
    mail_row(
        o,
        MailRow {
            key: format!("obligation:{}:{}", o.id, stage.stage),
            template: &stage.template,
            recipients,
            stage: &stage.stage,
            owner_name,
            comment: None,
        },
        now,
    )
}

/// The owner's notification addresses, else its contractors.
fn owner_recipient(o: &obligation::Model) -> Value {
    json!({ "organisation": o.organisation_id, "fallback_role": "contractor" })
}

/// What a mail about an obligation says besides the obligation itself.
struct MailRow<'a> {
    key: String,
    template: &'a str,
    recipients: Vec<Value>,
    stage: &'a str,
    owner_name: &'a str,
    comment: Option<String>,
}

/// An outbox row about an obligation, linking to its screen, where the recipient acts on it.
fn mail_row(
    o: &obligation::Model,
    m: MailRow<'_>,
    now: DateTime<Utc>,
) -> outbox_entity::ActiveModel {
    let at = to_db_precision(now);
    let detail: Value = serde_json::from_str(&o.detail).unwrap_or(Value::Null);
    outbox_entity::ActiveModel {
        id: Set(keyed_uuid_v7("outbox", &m.key, at)),
        idempotency_key: Set(m.key),
        instance_id: Set(None),
        effect: Set(MAIL_EFFECT.to_owned()),
        template: Set(Some(m.template.to_owned())),
        recipients: Set(Value::Array(m.recipients).to_string()),
        payload: Set(json!({
            "path": format!("/obligations/{}", o.id),
            "event": { "comment": m.comment },
            "obligation": {
                "id": o.id,
                "kind": o.kind,
                "stage": m.stage,
                "title": detail.get("title").cloned().unwrap_or(Value::Null),
                "organisation": m.owner_name,
                "due": o.due_on.to_string(),
            },
        })
        .to_string()),
        status: Set(outbox_entity::OutboxStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(at),
        last_error: Set(None),
        created_at: Set(at),
        sent_at: Set(None),
        delivered_to: Set(None),
    }
}

/// A change of an obligation someone is told of by mail.
enum Notice {
    /// The owner submitted its record: the root municipality's officers decide it.
    Submitted,
    /// An officer accepted it: the owner learns it is closed.
    Accepted,
    /// An officer returned it: the owner corrects it.
    Returned { reason: String },
}

/// Writes the change's mail in the change's transaction, keyed by the obligation and the
/// version the change gave it, so each change is told once.
async fn notify(
    txn: &impl ConnectionTrait,
    o: &obligation::Model,
    notice: Notice,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (event, template, recipients, comment) = match notice {
        Notice::Submitted => (
            "submitted",
            "obligation_submitted",
            vec![json!({ "role": "officer", "org": o.municipality_id })],
            None,
        ),
        Notice::Accepted => (
            "accepted",
            "obligation_accepted",
            vec![owner_recipient(o)],
            None,
        ),
        Notice::Returned { reason } => (
            "returned",
            "obligation_returned",
            vec![owner_recipient(o)],
            Some(reason),
        ),
    };
    let names = organisation_names(txn, [o.organisation_id.clone()]).await?;
    let owner = names.get(&o.organisation_id).cloned().unwrap_or_default();
    let row = mail_row(
        o,
        MailRow {
            key: format!("obligation:{}:{event}:{}", o.id, o.version + 1),
            template,
            recipients,
            stage: event,
            owner_name: &owner,
            comment,
        },
        now,
    );
    outbox_entity::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Writes the renewal on the node under the version read, and a `record_renewal` entry in
/// the audit chain of the permission instance that decided the node (a tier-1 node has none:
/// the obligation's history records it). Returns where it was audited.
async fn renew_node(
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    node: &chain_node::Model,
    r: &RenewalRecord,
    now: Now,
) -> Result<Value, ApiError> {
    if r.node_version.is_some_and(|v| v != node.version) {
        return Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": r.node_version, "current": node.version })));
    }
    let at = to_db_precision(now.at);
    let updated = chain_node::Entity::update_many()
        .col_expr(chain_node::Column::PeriodEnd, Expr::value(r.new_period_end))
        .col_expr(chain_node::Column::UpdatedAt, Expr::value(at))
        .col_expr(chain_node::Column::Version, Expr::value(node.version + 1))
        .filter(chain_node::Column::Id.eq(node.id.as_str()))
        .filter(chain_node::Column::Version.eq(node.version))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    let Some(target) = application_target::Entity::find()
        .filter(application_target::Column::NodeId.eq(node.id.as_str()))
        .one(txn)
        .await?
    else {
        return Ok(Value::Null);
    };
    let acting = Acting {
        actor: Actor {
            id: &viewer.user_id,
            grants: &[],
            deputy_for: &[],
        },
        request_id: None,
        now,
    };
    let seq = append_note(
        txn,
        &target.instance_id,
        "record_renewal",
        r.note.as_deref(),
        json!({
            "node_id": node.id,
            "period_end_before": node.period_end,
            "period_end_after": r.new_period_end,
            "signed_on": r.signed_on,
        }),
        &acting,
    )
    .await
    .map_err(|e| match e {
        InstanceError::Concurrent => ApiError::new(ErrorCode::ConcurrentUpdate),
        other => ApiError::internal(other.to_string()),
    })?;
    Ok(json!({ "instance_id": target.instance_id, "seq": seq }))
}

async fn organisation_names(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, DbErr> {
    let ids: BTreeSet<String> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(organisation::Entity::find()
        .filter(organisation::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name_ja))
        .collect())
}

// --- Reading ---------------------------------------------------------------------------------

/// An obligation as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObligationView {
    pub id: String,
    /// `training`, `training_followup`, `inspection`, `inspection_followup`.
    pub kind: String,
    pub title: Label,
    pub organisation_id: String,
    pub organisation_name: String,
    pub municipality_id: String,
    pub item_id: String,
    pub node_id: String,
    /// The 年度 (its starting year).
    pub fiscal_year: i32,
    pub due_on: NaiveDate,
    /// `open`, `submitted`, `returned`, `closed`.
    pub status: String,
    /// Outstanding past its due day on the day asked.
    pub overdue: bool,
    pub parent_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
    #[schema(value_type = Option<Object>)]
    pub record: Option<Value>,
    pub record_file: Option<String>,
    pub record_filename: Option<String>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub return_reason: Option<String>,
    pub version: i64,
}

/// `GET /obligations` filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ObligationFilter {
    /// `open`, `submitted`, `returned`, `closed`, or `outstanding` (open or returned).
    pub status: Option<String>,
    pub kind: Option<String>,
    pub organisation: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// What the viewer may see: their contractor organisations' obligations and their
/// municipalities' (municipal staff, auditors included).
fn visible_to(viewer: &Viewer) -> Condition {
    crate::services::sql::any_in([
        (
            obligation::Column::OrganisationId,
            viewer.contractor.iter().cloned().collect(),
        ),
        (
            obligation::Column::MunicipalityId,
            viewer.municipal.iter().cloned().collect(),
        ),
    ])
}

fn view(o: obligation::Model, owner_name: String, today: NaiveDate) -> ObligationView {
    let detail: Value = serde_json::from_str(&o.detail).unwrap_or(Value::Null);
    let title = serde_json::from_value(detail.get("title").cloned().unwrap_or(Value::Null))
        .unwrap_or_default();
    ObligationView {
        overdue: OUTSTANDING.contains(&o.status.as_str()) && o.due_on < today,
        id: o.id,
        kind: o.kind,
        title,
        organisation_id: o.organisation_id,
        organisation_name: owner_name,
        municipality_id: o.municipality_id,
        item_id: o.item_id,
        node_id: o.node_id,
        fiscal_year: o.fiscal_year,
        due_on: o.due_on,
        status: o.status,
        parent_id: o.parent_id,
        detail,
        record: o.record.and_then(|r| serde_json::from_str(&r).ok()),
        record_file: o.record_file,
        record_filename: o.record_filename,
        submitted_by: o.submitted_by,
        submitted_at: o.submitted_at,
        decided_by: o.decided_by,
        decided_at: o.decided_at,
        return_reason: o.return_reason,
        version: o.version,
    }
}

async fn views(
    conn: &impl ConnectionTrait,
    rows: Vec<obligation::Model>,
    today: NaiveDate,
) -> Result<Vec<ObligationView>, DbErr> {
    let names = organisation_names(conn, rows.iter().map(|o| o.organisation_id.clone())).await?;
    Ok(rows
        .into_iter()
        .map(|o| {
            let name = names
                .get(&o.organisation_id)
                .cloned()
                .unwrap_or_else(|| o.organisation_id.clone());
            view(o, name, today)
        })
        .collect())
}

/// The obligations the viewer may see, earliest due first.
pub async fn list(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    filter: &ObligationFilter,
    today: NaiveDate,
) -> Result<Paged<ObligationView>, ApiError> {
    let mut query = obligation::Entity::find().filter(visible_to(viewer));
    match filter.status.as_deref() {
        None => {}
        Some("outstanding") => query = query.filter(obligation::Column::Status.is_in(OUTSTANDING)),
        Some(s @ ("open" | "submitted" | "returned" | "closed")) => {
            query = query.filter(obligation::Column::Status.eq(s));
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "open・submitted・returned・closed・outstanding のいずれかを指定してください。",
                "Use open, submitted, returned, closed or outstanding.",
            ))
        }
    }
    if let Some(k) = &filter.kind {
        query = query.filter(obligation::Column::Kind.eq(k.as_str()));
    }
    if let Some(org) = &filter.organisation {
        query = query.filter(obligation::Column::OrganisationId.eq(org.as_str()));
    }
    let page = Page {
        page: filter.page,
        per_page: filter.per_page,
    };
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_asc(obligation::Column::DueOn)
        .order_by_asc(obligation::Column::Id)
        .offset(page.offset())
        .limit(page.limit())
        .all(db)
        .await?;
    Ok(Paged::new(views(db, rows, today).await?, total, page))
}

/// The outstanding and submitted obligations the viewer may see, earliest due first (the inbox).
pub async fn inbox(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    today: NaiveDate,
    limit: u64,
) -> Result<Vec<ObligationView>, DbErr> {
    let rows = obligation::Entity::find()
        .filter(visible_to(viewer))
        .filter(obligation::Column::Status.ne("closed"))
        .order_by_asc(obligation::Column::DueOn)
        .order_by_asc(obligation::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    views(db, rows, today).await
}

async fn visible(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<obligation::Model, ApiError> {
    obligation::Entity::find_by_id(id)
        .filter(visible_to(viewer))
        .one(db)
        .await?
        .ok_or_else(|| ErrorCode::NotFound.into())
}

/// One obligation, if the viewer may see it.
pub async fn get(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    today: NaiveDate,
) -> Result<ObligationView, ApiError> {
    let o = visible(db, viewer, id).await?;
    Ok(views(db, vec![o], today).await?.remove(0))
}

/// The obligations the viewer may see due between `from` and `to` (both included), whatever
/// their status, earliest first (the calendar).
pub async fn due_between(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<ObligationView>, DbErr> {
    let rows = obligation::Entity::find()
        .filter(visible_to(viewer))
        .filter(obligation::Column::DueOn.between(from, to))
        .order_by_asc(obligation::Column::DueOn)
        .order_by_asc(obligation::Column::Id)
        .all(db)
        .await?;
    views(db, rows, today).await
}

/// One change in an obligation's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor_id: String,
    /// `attach_file`, `submit_record`, `accept`, `return`, `report_inspection`,
    /// `record_renewal`.
    pub event: String,
    pub from_status: Option<String>,
    pub to_status: String,
    /// The reason of a return, the note of a renewal.
    pub comment: Option<String>,
    pub details: Value,
}

/// A reminder stage written for an obligation, and what became of its mail.
#[derive(Debug, Clone, Serialize)]
pub struct ReminderSent {
    /// The policy's stage (`due`, `overdue`, `escalated`).
    pub stage: String,
    pub written_at: DateTime<Utc>,
    /// `pending`, `sent` or `failed`.
    pub mail_status: String,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<obligation_event::Model> for HistoryEntry {
    fn from(e: obligation_event::Model) -> Self {
        Self {
            details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
            at: e.at,
            actor_id: e.actor_id,
            event: e.event,
            from_status: e.from_status,
            to_status: e.to_status,
            comment: e.comment,
        }
    }
}

impl From<outbox_entity::Model> for ReminderSent {
    /// The row of a stage, keyed `obligation:<id>:<stage>`.
    fn from(r: outbox_entity::Model) -> Self {
        let status = match r.status {
            outbox_entity::OutboxStatus::Pending => "pending",
            outbox_entity::OutboxStatus::Sent => "sent",
            outbox_entity::OutboxStatus::Failed => "failed",
        };
        Self {
            stage: r
                .idempotency_key
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned(),
            written_at: r.created_at,
            mail_status: status.to_owned(),
            sent_at: r.sent_at,
        }
    }
}

/// An obligation with what its screen shows besides: where it belongs, its history, the
/// reminders written and what the viewer may do.
#[derive(Debug, Clone, Serialize)]
pub struct ObligationDetail {
    pub obligation: ObligationView,
    pub municipality_name: String,
    pub item_title: String,
    pub node_tier: i32,
    /// The due day the policy declares, when it was moved to the business day before.
    pub moved_from: Option<NaiveDate>,
    /// The day of the next reminder stage, while one is to come.
    pub next_reminder_on: Option<NaiveDate>,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
    /// Oldest first.
    pub reminders: Vec<ReminderSent>,
    /// The owner's contractor may submit the record (with its file) now.
    pub may_submit: bool,
    /// The root municipality's staff may record what closes it (an inspection, a renewal).
    pub may_record: bool,
    /// The root municipality's staff may accept or return the submitted record.
    pub may_decide: bool,
}

/// The day the policy declares before a move to a business day: training's day of the 年度,
/// an inspection's or compliance report's period end (the last part of its key).
fn declared_due(policy: &ObligationPolicy, o: &obligation::Model) -> Option<NaiveDate> {
    match o.kind.as_str() {
        TRAINING => Some(policy.training_day(FiscalYear::new(o.fiscal_year))),
        INSPECTION | COMPLIANCE_REPORT => o
            .generation_key
            .rsplit(':')
            .next()
            .and_then(|d| d.parse().ok()),
        _ => None,
    }
}

/// One obligation with its screen's details, if the viewer may see it.
pub async fn detail(
    db: &impl ConnectionTrait,
    policy: &ObligationPolicy,
    viewer: &Viewer,
    id: &str,
    today: NaiveDate,
) -> Result<ObligationDetail, ApiError> {
    let o = visible(db, viewer, id).await?;
    let history = obligation_event::Entity::find()
        .filter(obligation_event::Column::ObligationId.eq(id))
        .order_by_asc(obligation_event::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(HistoryEntry::from)
        .collect();
    let keys: Vec<String> = policy
        .reminders
        .iter()
        .map(|r| format!("obligation:{id}:{}", r.stage))
        .collect();
    let reminders: Vec<ReminderSent> = outbox_entity::Entity::find()
        .filter(outbox_entity::Column::IdempotencyKey.is_in(keys))
        .order_by_asc(outbox_entity::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(ReminderSent::from)
        .collect();
    let item = consignment_item::Entity::find_by_id(o.item_id.as_str())
        .one(db)
        .await?;
    let node = chain_node::Entity::find_by_id(o.node_id.as_str())
        .one(db)
        .await?;
    let municipality_name = organisation_names(db, [o.municipality_id.clone()])
        .await?
        .remove(&o.municipality_id)
        .unwrap_or_else(|| o.municipality_id.clone());
    let municipality_records = o.kind == INSPECTION || o.kind == RENEWAL;
    let outstanding = OUTSTANDING.contains(&o.status.as_str());
    let moved_from = declared_due(policy, &o).filter(|d| *d != o.due_on);
    Ok(ObligationDetail {
        municipality_name,
        item_title: item.map(|i| i.title).unwrap_or_default(),
        node_tier: node.map_or(0, |n| n.tier),
        moved_from,
        next_reminder_on: if outstanding {
            o.next_reminder_on
        } else {
            None
        },
        history,
        reminders,
        may_submit: !municipality_records
            && outstanding
            && viewer.is_contractor(&o.organisation_id),
        may_record: municipality_records
            && o.status != "closed"
            && viewer.writes_for(&o.municipality_id),
        may_decide: o.status == "submitted" && viewer.writes_for(&o.municipality_id),
        obligation: get(db, viewer, id, today).await?,
    })
}

// --- Closing ---------------------------------------------------------------------------------

/// The record that closes an obligation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClosingRecord {
    /// 受講記録: closes training and its follow-up; its list file must be attached first.
    Attendance(AttendanceRecord),
    /// 立入調査報告: closes an inspection (recorded by the root municipality).
    Inspection(InspectionReport),
    /// 是正報告: closes an inspection finding's follow-up.
    CorrectiveAction(CorrectiveAction),
    /// 契約更新: closes a contract renewal (recorded by the root municipality); the new period
    /// end is written on the node under its version.
    Renewal(RenewalRecord),
    /// 遵守状況報告: closes a compliance report; its file must be attached first.
    ComplianceReport(ComplianceReportRecord),
}

/// 契約更新の記録.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalRecord {
    /// The day the renewed contract was signed.
    pub signed_on: NaiveDate,
    /// The renewed contract's last day; later than the node's current period end.
    pub new_period_end: NaiveDate,
    /// The node's version as read (guards against a lost update of the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_version: Option<i64>,
    #[validate(length(max = 2000))]
    #[serde(default)]
    pub note: Option<String>,
}

/// 遵守状況報告.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceReportRecord {
    pub date: NaiveDate,
    #[validate(
        length(min = 1, max = 2000),
        custom(function = "validation::not_blank")
    )]
    pub summary: String,
}

/// 受講記録.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceRecord {
    pub date: NaiveDate,
    #[validate(length(min = 1, max = 300), custom(function = "validation::not_blank"))]
    pub topic: String,
    #[validate(range(min = 1, max = 100_000))]
    pub attendee_count: u32,
    /// Staff who missed it; more than 0 creates a follow-up training when accepted.
    #[validate(range(max = 100_000))]
    #[serde(default)]
    pub absent_count: u32,
}

/// 立入調査報告.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectionReport {
    pub date: NaiveDate,
    /// `on_site` or `remote` (video, photos: Q3-1-4).
    #[validate(custom(function = "inspection_mode"))]
    pub mode: String,
    #[validate(length(min = 1, max = 20))]
    pub inspectors: Vec<String>,
    #[validate(length(max = 100), nested)]
    pub findings: Vec<Finding>,
}

/// One finding of an inspection.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    #[validate(
        length(min = 1, max = 2000),
        custom(function = "validation::not_blank")
    )]
    pub description: String,
    /// The follow-up action the contractor owes, if any; each becomes an obligation.
    #[validate(length(max = 2000))]
    pub follow_up: Option<String>,
}

/// 是正報告.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectiveAction {
    pub date: NaiveDate,
    #[validate(
        length(min = 1, max = 2000),
        custom(function = "validation::not_blank")
    )]
    pub description: String,
}

fn inspection_mode(mode: &str) -> Result<(), validator::ValidationError> {
    match mode {
        "on_site" | "remote" => Ok(()),
        _ => Err(validation::invalid(
            "inspection_mode",
            "on_site(実地)か remote(遠隔)を指定してください。",
            "Use on_site or remote.",
        )),
    }
}

/// `POST /obligations/{id}/record`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    pub record: ClosingRecord,
    pub version: Option<i64>,
}

/// `POST /obligations/{id}/accept` and `/return`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub version: Option<i64>,
    /// Required to return.
    pub reason: Option<String>,
}

fn conflict(ja: &str, en: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new("status", ja, en)])
}

fn check_version(o: &obligation::Model, expected: Option<i64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != o.version => Err(ApiError::new(ErrorCode::StaleVersion)
            .with_details(json!({ "expected": v, "current": o.version }))),
        _ => Ok(()),
    }
}

/// What one change writes besides the row's new columns.
struct Change<'a> {
    event: &'a str,
    to_status: &'a str,
    comment: Option<String>,
    details: Value,
}

/// Updates the row under its version and appends the history record, in `txn`.
async fn apply(
    txn: &impl ConnectionTrait,
    o: &obligation::Model,
    viewer: &Viewer,
    change: Change<'_>,
    mut update: sea_orm::UpdateMany<obligation::Entity>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let at = to_db_precision(now);
    update = update
        .col_expr(obligation::Column::Status, Expr::value(change.to_status))
        .col_expr(obligation::Column::UpdatedAt, Expr::value(at))
        .col_expr(obligation::Column::Version, Expr::value(o.version + 1))
        .filter(obligation::Column::Id.eq(o.id.as_str()))
        .filter(obligation::Column::Version.eq(o.version));
    if change.to_status == "closed" {
        update = update.col_expr(
            obligation::Column::NextReminderOn,
            Expr::value(Option::<NaiveDate>::None),
        );
    }
    if update.exec(txn).await?.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    obligation_event::Entity::insert(obligation_event::ActiveModel {
        obligation_id: Set(o.id.clone()),
        at: Set(at),
        actor_id: Set(viewer.user_id.clone()),
        event: Set(change.event.to_owned()),
        from_status: Set(Some(o.status.clone())),
        to_status: Set(change.to_status.to_owned()),
        comment: Set(change.comment),
        details: Set(change.details.to_string()),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Attaches the record's file (PDF, PNG or JPEG by content) for the owner's contractors, while
/// the obligation waits for them; stored once per SHA-256 in `files`.
pub async fn attach(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: &str,
    filename: &str,
    bytes: Vec<u8>,
    max_bytes: usize,
    now: Now,
) -> Result<ObligationView, ApiError> {
    let file = RecordFile::inspect(filename, bytes, max_bytes)
        .map_err(|(code, error)| ApiError::new(code).with_details(vec![error]))?;
    let txn = db.begin().await?;
    let o = visible(&txn, viewer, id).await?;
    owner_may_act(viewer, &o)?;
    attach_in(&txn, viewer, &o, file, now).await?;
    let out = get(&txn, viewer, id, now.today).await?;
    txn.commit().await?;
    Ok(out)
}

/// A record's file, its content checked: PDF, PNG or JPEG, within the upload limit.
pub struct RecordFile {
    filename: String,
    bytes: Vec<u8>,
    kind: crate::domain::files::MediaType,
}

impl RecordFile {
    /// Checks an upload's content; a refusal is its error code and the `file` field's reason.
    pub fn inspect(
        filename: &str,
        bytes: Vec<u8>,
        max_bytes: usize,
    ) -> Result<Self, (ErrorCode, FieldError)> {
        match crate::domain::files::inspect(&bytes, max_bytes) {
            Ok(kind) => Ok(Self {
                filename: filename.to_owned(),
                bytes,
                kind,
            }),
            Err(refusal) => {
                let code = match refusal {
                    crate::domain::files::FileRefusal::TooLarge { .. } => {
                        ErrorCode::PayloadTooLarge
                    }
                    _ => ErrorCode::UnsupportedFileType,
                };
                Err((code, refusal.field_error("file")))
            }
        }
    }
}

/// Stores the file and attaches it to `o` (read in `txn`, the owner allowed to act), with its
/// history row; returns the obligation as changed.
async fn attach_in(
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    o: &obligation::Model,
    file: RecordFile,
    now: Now,
) -> Result<obligation::Model, ApiError> {
    let sha =
        crate::services::evidence::store_file(txn, file.bytes, file.kind, to_db_precision(now.at))
            .await?;
    let shown = crate::domain::files::safe_display_filename(&file.filename, file.kind);
    let update = obligation::Entity::update_many()
        .col_expr(obligation::Column::RecordFile, Expr::value(sha.clone()))
        .col_expr(
            obligation::Column::RecordFilename,
            Expr::value(shown.clone()),
        );
    let change = Change {
        event: "attach_file",
        to_status: &o.status,
        comment: None,
        details: json!({ "sha256": sha, "filename": shown }),
    };
    apply(txn, o, viewer, change, update, now.at).await?;
    visible(txn, viewer, &o.id).await
}

/// A file of an obligation the viewer may see.
pub async fn download(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<(file::Model, String), ApiError> {
    let o = visible(db, viewer, id).await?;
    let (Some(sha), Some(name)) = (o.record_file, o.record_filename) else {
        return Err(ErrorCode::NotFound.into());
    };
    let content = file::Entity::find_by_id(sha)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok((content, name))
}

/// The owner's contractors act on training and follow-ups while they are open or returned.
fn owner_may_act(viewer: &Viewer, o: &obligation::Model) -> Result<(), ApiError> {
    let municipality_records = o.kind == INSPECTION || o.kind == RENEWAL;
    if municipality_records || !viewer.is_contractor(&o.organisation_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    if !OUTSTANDING.contains(&o.status.as_str()) {
        return Err(conflict(
            "この義務は提出済みか完了しています。",
            "This obligation is already submitted or closed.",
        ));
    }
    Ok(())
}

/// Records the closing record: the owner submits an attendance record or a corrective action
/// (then an officer accepts it); the root municipality's staff record an inspection report,
/// which closes the inspection and turns each finding with a follow-up into an obligation.
pub async fn record(
    db: &DatabaseConnection,
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    viewer: &Viewer,
    id: &str,
    input: RecordInput,
    now: Now,
) -> Result<ObligationView, ApiError> {
    submit(db, policy, calendar, viewer, id, input, None, now).await
}

/// [`record`], with the owner's file uploaded beside it (the screen's one form): the file is
/// checked with the record's fields, every problem named at once, and attached in the
/// record's transaction, so a refusal stores nothing.
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    db: &DatabaseConnection,
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    viewer: &Viewer,
    id: &str,
    input: RecordInput,
    file: Option<Result<RecordFile, (ErrorCode, FieldError)>>,
    now: Now,
) -> Result<ObligationView, ApiError> {
    let (file, refused) = match file {
        Some(Ok(f)) => (Some(f), None),
        Some(Err((_, error))) => (None, Some(error)),
        None => (None, None),
    };
    let txn = db.begin().await?;
    let mut o = visible(&txn, viewer, id).await?;
    let upload = RecordUpload {
        given: file.is_some(),
        refused,
    };
    let (errors, renewal) = record_errors(&txn, viewer, &o, &input, upload, now.today).await?;
    validation::finish(errors)?;
    let mut record = serde_json::to_value(&input.record).unwrap_or(Value::Null);
    let at = to_db_precision(now.at);
    if o.kind == RENEWAL {
        municipality_may_record(
            viewer,
            &o,
            input.version,
            (
                "この契約更新は記録済みです。",
                "This renewal is already recorded.",
            ),
        )?;
        let Some((r, node)) = renewal else {
            return Err(ErrorCode::Internal.into());
        };
        let audit = renew_node(&txn, viewer, &node, &r, now).await?;
        if let Some(object) = record.as_object_mut() {
            object.insert("period_end_before".to_owned(), json!(node.period_end));
            object.insert("node_version".to_owned(), json!(node.version + 1));
            object.insert("audit".to_owned(), audit);
        }
        let update = recorded_and_decided(&record, viewer, at);
        let change = Change {
            event: "record_renewal",
            to_status: "closed",
            comment: r.note.clone(),
            details: record.clone(),
        };
        apply(&txn, &o, viewer, change, update, now.at).await?;
    } else if o.kind == INSPECTION {
        municipality_may_record(
            viewer,
            &o,
            input.version,
            (
                "この立入調査は報告済みです。",
                "This inspection is already reported.",
            ),
        )?;
        let update = recorded_and_decided(&record, viewer, at);
        let change = Change {
            event: "report_inspection",
            to_status: "closed",
            comment: None,
            details: record.clone(),
        };
        apply(&txn, &o, viewer, change, update, now.at).await?;
        if let ClosingRecord::Inspection(report) = &input.record {
            let node = node_of(&txn, &o).await?;
            let due =
                calendar.add_business_days(now.today, policy.inspection.followup_business_days);
            let rows = report
                .findings
                .iter()
                .enumerate()
                .filter_map(|(ix, f)| f.follow_up.as_ref().map(|action| (ix, f, action)))
                .filter(|(_, _, action)| !action.trim().is_empty())
                .map(|(ix, f, action)| {
                    active(
                        policy,
                        calendar,
                        NewObligation {
                            key: format!("{INSPECTION_FOLLOWUP}:{}:{ix}", o.id),
                            kind: INSPECTION_FOLLOWUP,
                            node: node.clone(),
                            municipality_id: o.municipality_id.clone(),
                            fiscal_year: FiscalYear::of(due),
                            due_on: due,
                            parent_id: Some(o.id.clone()),
                            detail: json!({
                                "title": policy.inspection.followup_label,
                                "finding": f.description,
                                "follow_up": action,
                            }),
                        },
                        now.at,
                    )
                })
                .collect();
            insert_new(&txn, rows).await?;
        }
    } else {
        owner_may_act(viewer, &o)?;
        check_version(&o, input.version)?;
        if let Some(file) = file {
            o = attach_in(&txn, viewer, &o, file, now).await?;
        }
        let update = obligation::Entity::update_many()
            .col_expr(obligation::Column::Record, Expr::value(record.to_string()))
            .col_expr(
                obligation::Column::SubmittedBy,
                Expr::value(viewer.user_id.clone()),
            )
            .col_expr(obligation::Column::SubmittedAt, Expr::value(at));
        let change = Change {
            event: "submit_record",
            to_status: "submitted",
            comment: None,
            details: record,
        };
        apply(&txn, &o, viewer, change, update, now.at).await?;
        notify(&txn, &o, Notice::Submitted, now.at).await?;
    }
    let out = get(&txn, viewer, id, now.today).await?;
    txn.commit().await?;
    Ok(out)
}

/// What the form says of the record's file.
#[derive(Debug, Default)]
pub struct RecordUpload {
    /// A file came with the record and passed its checks.
    pub given: bool,
    /// The file came and was refused, with the reason.
    pub refused: Option<FieldError>,
}

/// Every problem of `input` as the record of `o`, before anything is written; with the node
/// of a renewal.
async fn record_errors(
    conn: &impl ConnectionTrait,
    viewer: &Viewer,
    o: &obligation::Model,
    input: &RecordInput,
    upload: RecordUpload,
    today: NaiveDate,
) -> Result<(Vec<FieldError>, Option<(RenewalRecord, chain_node::Model)>), ApiError> {
    let mut errors = validation::no_individual_numbers(input);
    errors.extend(upload.refused.clone());
    let wanted = match &input.record {
        ClosingRecord::Attendance(r) => {
            errors.extend(prefixed(validation::errors_of(r)));
            TRAINING
        }
        ClosingRecord::Inspection(r) => {
            errors.extend(prefixed(validation::errors_of(r)));
            if r.inspectors.iter().any(|i| i.trim().is_empty()) {
                errors.push(FieldError::new(
                    "record.inspectors",
                    "調査員の氏名を入力してください。",
                    "Name every inspector.",
                ));
            }
            INSPECTION
        }
        ClosingRecord::CorrectiveAction(r) => {
            errors.extend(prefixed(validation::errors_of(r)));
            INSPECTION_FOLLOWUP
        }
        ClosingRecord::Renewal(r) => {
            errors.extend(prefixed(validation::errors_of(r)));
            RENEWAL
        }
        ClosingRecord::ComplianceReport(r) => {
            errors.extend(prefixed(validation::errors_of(r)));
            COMPLIANCE_REPORT
        }
    };
    let record_date = match &input.record {
        ClosingRecord::Attendance(r) => r.date,
        ClosingRecord::Inspection(r) => r.date,
        ClosingRecord::CorrectiveAction(r) => r.date,
        ClosingRecord::Renewal(r) => r.signed_on,
        ClosingRecord::ComplianceReport(r) => r.date,
    };
    if record_date > today {
        let field = match &input.record {
            ClosingRecord::Renewal(_) => "record.signed_on",
            _ => "record.date",
        };
        errors.push(FieldError::new(
            field,
            "未来の日付は指定できません。",
            "The date cannot be in the future.",
        ));
    }
    let owner_records = o.kind != INSPECTION && o.kind != RENEWAL;
    let needs_file = matches!(
        input.record,
        ClosingRecord::Attendance(_) | ClosingRecord::ComplianceReport(_)
    );
    if owner_records
        && needs_file
        && viewer.is_contractor(&o.organisation_id)
        && o.record_file.is_none()
        && !upload.given
        && upload.refused.is_none()
    {
        errors.push(file_first(&input.record));
    }
    if !owner_records && upload.given {
        errors.push(FieldError::new(
            "file",
            "この記録にはファイルを添付できません。",
            "This record takes no file.",
        ));
    }
    let fits = o.kind == wanted || (o.kind == TRAINING_FOLLOWUP && wanted == TRAINING);
    if !fits {
        errors.push(FieldError::new(
            "record.kind",
            "この義務の種類には使えない記録です。",
            "This kind of record does not close this kind of obligation.",
        ));
    }
    let renewal = match (&input.record, fits) {
        (ClosingRecord::Renewal(r), true) => {
            let node = node_of(conn, o).await?;
            if r.new_period_end <= node.period_end {
                errors.push(FieldError::new(
                    "record.new_period_end",
                    format!(
                        "更新後の期間の末日は現在の末日({})より後の日付にしてください。",
                        node.period_end
                    ),
                    format!(
                        "The new period end must be after the current one ({}).",
                        node.period_end
                    ),
                ));
            }
            Some((r.clone(), node))
        }
        _ => None,
    };
    Ok((errors, renewal))
}

/// Every problem of a record the screen's form would submit, without writing anything (so a
/// form that did not parse everywhere still shows the services' other reasons).
pub async fn check_record(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    input: &RecordInput,
    upload: RecordUpload,
    today: NaiveDate,
) -> Result<Vec<FieldError>, ApiError> {
    let o = visible(db, viewer, id).await?;
    Ok(record_errors(db, viewer, &o, input, upload, today).await?.0)
}

/// The record needs its file (the attendance list, the compliance report) first.
fn file_first(record: &ClosingRecord) -> FieldError {
    match record {
        ClosingRecord::ComplianceReport(_) => FieldError::new(
            "file",
            "遵守状況報告書のファイルを先に登録してください。",
            "Attach the compliance report file first.",
        ),
        _ => FieldError::new(
            "file",
            "受講者名簿のファイルを先に登録してください。",
            "Attach the attendance list file first.",
        ),
    }
}

/// The root municipality's officers (chiefs, managers) record what closes an inspection or a
/// renewal, once, at the version they read.
fn municipality_may_record(
    viewer: &Viewer,
    o: &obligation::Model,
    version: Option<i64>,
    (ja, en): (&str, &str),
) -> Result<(), ApiError> {
    if !viewer.writes_for(&o.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    if o.status == "closed" {
        return Err(conflict(ja, en));
    }
    check_version(o, version)
}

/// The update of a record the root municipality makes, which closes the obligation at once
/// (an inspection report, a renewal): recorded and decided by the same person.
fn recorded_and_decided(
    record: &Value,
    viewer: &Viewer,
    at: DateTime<Utc>,
) -> sea_orm::UpdateMany<obligation::Entity> {
    obligation::Entity::update_many()
        .col_expr(obligation::Column::Record, Expr::value(record.to_string()))
        .col_expr(
            obligation::Column::SubmittedBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(obligation::Column::SubmittedAt, Expr::value(at))
        .col_expr(
            obligation::Column::DecidedBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(obligation::Column::DecidedAt, Expr::value(at))
}

fn prefixed(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|mut e| {
            e.field = format!("record.{}", e.field);
            e
        })
        .collect()
}

async fn node_of(
    conn: &impl ConnectionTrait,
    o: &obligation::Model,
) -> Result<chain_node::Model, ApiError> {
    chain_node::Entity::find_by_id(o.node_id.as_str())
        .one(conn)
        .await?
        .ok_or_else(|| ApiError::from(ErrorCode::NotFound))
}

/// An officer of the root municipality accepts a submitted record: the obligation is closed;
/// an attendance record with absentees gives the follow-up training.
pub async fn accept(
    db: &DatabaseConnection,
    policy: &ObligationPolicy,
    calendar: &mut BusinessCalendar,
    viewer: &Viewer,
    id: &str,
    input: DecisionInput,
    now: Now,
) -> Result<ObligationView, ApiError> {
    let txn = db.begin().await?;
    let o = decidable(&txn, viewer, id, input.version).await?;
    let at = to_db_precision(now.at);
    let update = obligation::Entity::update_many()
        .col_expr(
            obligation::Column::DecidedBy,
            Expr::value(viewer.user_id.clone()),
        )
        .col_expr(obligation::Column::DecidedAt, Expr::value(at));
    let change = Change {
        event: "accept",
        to_status: "closed",
        comment: None,
        details: Value::Null,
    };
    apply(&txn, &o, viewer, change, update, now.at).await?;
    let record: Value = o
        .record
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let absent = record
        .get("absent_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if o.kind == TRAINING && absent > 0 {
        let node = node_of(&txn, &o).await?;
        let due = calendar.add_business_days(now.today, policy.training.followup_business_days);
        let row = active(
            policy,
            calendar,
            NewObligation {
                key: format!("{TRAINING_FOLLOWUP}:{}", o.id),
                kind: TRAINING_FOLLOWUP,
                node,
                municipality_id: o.municipality_id.clone(),
                fiscal_year: FiscalYear::new(o.fiscal_year),
                due_on: due,
                parent_id: Some(o.id.clone()),
                detail: json!({ "title": policy.training.followup_label, "absent_count": absent }),
            },
            now.at,
        );
        insert_new(&txn, vec![row]).await?;
    }
    notify(&txn, &o, Notice::Accepted, now.at).await?;
    let out = get(&txn, viewer, id, now.today).await?;
    txn.commit().await?;
    Ok(out)
}

/// An officer of the root municipality returns a submitted record with a reason; the owner
/// corrects and submits again (reminders continue meanwhile).
pub async fn return_record(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: &str,
    input: DecisionInput,
    now: Now,
) -> Result<ObligationView, ApiError> {
    let reason = input.reason.clone().unwrap_or_default();
    let mut errors = validation::no_individual_numbers(&input);
    if reason.trim().is_empty() || reason.chars().count() > 2000 {
        errors.push(FieldError::new(
            "reason",
            "差戻しの理由を2000文字以内で入力してください。",
            "Give the reason for returning it (at most 2,000 characters).",
        ));
    }
    validation::finish(errors)?;
    let txn = db.begin().await?;
    let o = decidable(&txn, viewer, id, input.version).await?;
    let update = obligation::Entity::update_many().col_expr(
        obligation::Column::ReturnReason,
        Expr::value(reason.clone()),
    );
    let change = Change {
        event: "return",
        to_status: "returned",
        comment: Some(reason.clone()),
        details: Value::Null,
    };
    apply(&txn, &o, viewer, change, update, now.at).await?;
    notify(&txn, &o, Notice::Returned { reason }, now.at).await?;
    let out = get(&txn, viewer, id, now.today).await?;
    txn.commit().await?;
    Ok(out)
}

/// The obligation, when the viewer may decide it now: a submitted record, an officer (chief,
/// manager) of its root municipality.
async fn decidable(
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    version: Option<i64>,
) -> Result<obligation::Model, ApiError> {
    let o = visible(txn, viewer, id).await?;
    if !viewer.writes_for(&o.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    if o.status != "submitted" {
        return Err(conflict(
            "提出された記録がありません。",
            "There is no submitted record to decide.",
        ));
    }
    check_version(&o, version)?;
    Ok(o)
}
