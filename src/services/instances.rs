//! Workflow instances: creating one and applying an event are each one transaction holding the
//! state change, the audit record, the outbox rows and the timer rows — all or nothing.

use chrono::{DateTime, Utc};
use entity::{audit_record, workflow_instance};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqlErr, TransactionTrait,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::services::audit::{self, ChainHead, NewAuditRecord};
use crate::services::db_time::to_db_precision;
use crate::services::group_commit::{GroupCommit, InstanceWrite, RowUpdate};
use crate::services::recent::Recent;
use crate::services::{new_id, outbox, timers};
use crate::workflow::definition::{Label, TimerAction};
use crate::workflow::model::Timer;
use crate::workflow::runtime::{FireError, Fired, StoredInstance, Waiting, WorkflowRuntime};
use crate::workflow::{Actor, EventRequest, Now, Rejection, WorkflowSet};

/// Why an instance operation failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// No such instance, or the actor may not see it (the same answer, on purpose).
    #[error("instance not found")]
    NotFound,
    #[error("unknown workflow {0}")]
    UnknownWorkflow(String),
    #[error("unknown event {event}")]
    UnknownEvent { event: String, known: Vec<String> },
    #[error("the event was refused")]
    Rejected(Rejection),
    /// The caller's version is not the current one.
    #[error("stale version: expected {expected}, current {current}")]
    StaleVersion { expected: i64, current: i64 },
    /// Someone else changed the instance while this request was being applied.
    #[error("concurrent update")]
    Concurrent,
    /// Instances of this kind are started through the domain API, not directly.
    #[error("instances of kind {0} are started through the domain API")]
    Managed(String),
    #[error("cannot correct this instance: {0}")]
    NotCorrectable(&'static str),
    #[error("stored instance is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<FireError> for InstanceError {
    fn from(e: FireError) -> Self {
        match e {
            FireError::UnknownEvent { event, known } => Self::UnknownEvent { event, known },
            FireError::Corrupt { reason } => Self::Corrupt(reason),
            FireError::Rejected(r) => Self::Rejected(r),
        }
    }
}

/// Who is acting, and the request they act in.
#[derive(Debug, Clone, Copy)]
pub struct Acting<'a> {
    pub actor: Actor<'a>,
    pub request_id: Option<&'a str>,
    pub now: Now,
}

/// Where an event's reads and writes go.
#[derive(Clone, Copy, Debug)]
pub struct Conns<'a> {
    /// The pool every write goes to.
    pub db: &'a DatabaseConnection,
    /// Reads that are not part of a write: SQLite's read-only pool, else `db`.
    pub reader: &'a DatabaseConnection,
    /// The group commit task, when the deployment runs one.
    pub group_commit: Option<&'a GroupCommit>,
    /// The rows this replica keeps (see [`crate::services::recent`]): a row written here is
    /// kept, one that may have changed forgotten.
    pub recent: Option<&'a Recent>,
}

impl<'a> Conns<'a> {
    /// Everything on `db`, without group commit.
    pub fn single(db: &'a DatabaseConnection) -> Self {
        Self {
            db,
            reader: db,
            group_commit: None,
            recent: None,
        }
    }
}

/// An instance as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub workflow: String,
    pub workflow_version: i32,
    pub state: String,
    pub state_label: Option<Label>,
    pub version: i64,
    pub submitter: String,
    pub organisation_id: Option<String>,
    pub context: Value,
    pub progress: Value,
    pub corrects_instance_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub audit_seq: i64,
    /// The events the caller may fire now.
    pub available_events: Vec<String>,
    /// The same events with the parameters each may take (the steps a return may go to, the
    /// approvers a proxy decision may be made for).
    pub event_choices: Vec<crate::workflow::EventChoice>,
}

/// A new instance to start.
#[derive(Debug, Clone)]
pub struct NewInstance<'a> {
    pub workflow: &'a str,
    pub context: Value,
    /// The decided instance this one corrects.
    pub corrects: Option<&'a str>,
}

/// An event to apply.
#[derive(Debug, Clone, Default)]
pub struct FireRequest<'a> {
    pub event: &'a str,
    /// The version the caller saw; a different current version is refused as stale.
    pub expected_version: Option<i64>,
    pub comment: Option<&'a str>,
    pub to_step: Option<&'a str>,
    pub on_behalf_of: Option<&'a str>,
    pub data: Option<&'a Value>,
}

fn stored(row: &workflow_instance::Model) -> Result<StoredInstance, InstanceError> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str(text).map_err(|e| InstanceError::Corrupt(format!("{what}: {e}")))
    };
    Ok(StoredInstance {
        state: row.state.clone(),
        submitter: row.submitter.clone(),
        context: parse("context", &row.context)?,
        progress: parse("progress", &row.progress)?,
    })
}

fn runtime<'s>(
    workflows: &'s WorkflowSet,
    row: &workflow_instance::Model,
) -> Result<&'s dyn WorkflowRuntime, InstanceError> {
    let version = u32::try_from(row.workflow_version).unwrap_or(0);
    workflows
        .get(&row.workflow_id, version)
        .map(AsRef::as_ref)
        .ok_or_else(|| {
            InstanceError::Corrupt(format!(
                "definition {} v{} is not loaded",
                row.workflow_id, row.workflow_version
            ))
        })
}

/// May this actor see the instance? The submitter, and members of any organisation it involves;
/// an instance that involves no organisation is visible to every signed-in user.
fn visible(
    rt: &dyn WorkflowRuntime,
    row: &workflow_instance::Model,
    st: &StoredInstance,
    actor: &Actor<'_>,
) -> Result<bool, InstanceError> {
    if row.submitter == actor.id {
        return Ok(true);
    }
    // The system itself (cascades, sweeps) acts on every instance; users' grants always name
    // an organisation, so no user holds this.
    if actor
        .grants
        .iter()
        .any(|g| g.role == "system" && g.org.is_none())
    {
        return Ok(true);
    }
    let mut orgs = rt.organisations(st)?;
    orgs.extend(row.organisation_id.iter().cloned());
    if orgs.is_empty() {
        return Ok(true);
    }
    Ok(actor
        .grants
        .iter()
        .chain(actor.deputy_for.iter().flat_map(|d| d.grants.iter()))
        .any(|g| g.org.as_ref().is_some_and(|o| orgs.contains(o))))
}

fn view(
    rt: &dyn WorkflowRuntime,
    row: workflow_instance::Model,
    st: &StoredInstance,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    let event_choices = rt.event_choices(st, &acting.actor, acting.now)?;
    let available_events = event_choices.iter().map(|c| c.event.clone()).collect();
    // What the domain told the guards is not part of the instance.
    let mut context = st.context.clone();
    if let Some(ctx) = context.as_object_mut() {
        ctx.remove("facts");
    }
    Ok(InstanceView {
        state_label: rt.state_label(&row.state),
        id: row.id,
        workflow: row.workflow_id,
        workflow_version: row.workflow_version,
        state: row.state,
        version: row.version,
        submitter: row.submitter,
        organisation_id: row.organisation_id,
        context,
        progress: st.progress.clone(),
        corrects_instance_id: row.corrects_instance_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        audit_seq: row.audit_seq,
        available_events,
        event_choices,
    })
}

/// Loads an instance the actor may see.
pub async fn get(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    id: &str,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    get_with_facts(db, workflows, id, acting, None).await
}

/// Loads an instance the actor may see, its available events judged with the domain's facts.
pub async fn get_with_facts(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    id: &str,
    acting: &Acting<'_>,
    facts: Option<Value>,
) -> Result<InstanceView, InstanceError> {
    let (row, rt, mut st) = load_visible(db, workflows, id, &acting.actor).await?;
    if let (Some(facts), Some(ctx)) = (facts, st.context.as_object_mut()) {
        ctx.insert("facts".to_owned(), facts);
    }
    view(rt, row, &st, acting)
}

/// An instance's row with its workflow and what it stores, as the actor may see it.
type Visible<'s> = (
    workflow_instance::Model,
    &'s dyn WorkflowRuntime,
    StoredInstance,
);

/// Reads an instance with its definition, if the actor may see it; otherwise `NotFound`.
async fn load_visible<'s>(
    db: &impl ConnectionTrait,
    workflows: &'s WorkflowSet,
    id: &str,
    actor: &Actor<'_>,
) -> Result<Visible<'s>, InstanceError> {
    let row = workflow_instance::Entity::find_by_id(id).one(db).await?;
    check_visible(row, workflows, actor)
}

/// The row as read, with its workflow and stored instance, if it exists and the actor may see
/// it (else `NotFound`, the same answer for both).
fn check_visible<'s>(
    row: Option<workflow_instance::Model>,
    workflows: &'s WorkflowSet,
    actor: &Actor<'_>,
) -> Result<Visible<'s>, InstanceError> {
    let row = row.ok_or(InstanceError::NotFound)?;
    let rt = runtime(workflows, &row)?;
    let st = stored(&row)?;
    if !visible(rt, &row, &st, actor)? {
        return Err(InstanceError::NotFound);
    }
    Ok((row, rt, st))
}

/// How many instances the database holds.
pub async fn count(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    workflow_instance::Entity::find().count(db).await
}

/// The instance's audit trail, oldest first, if the actor may see the instance.
pub async fn audit_trail(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    id: &str,
    acting: &Acting<'_>,
) -> Result<Vec<audit_record::Model>, InstanceError> {
    get(db, workflows, id, acting).await?;
    Ok(audit_record::Entity::find()
        .filter(audit_record::Column::InstanceId.eq(id))
        .order_by_asc(audit_record::Column::Seq)
        .all(db)
        .await?)
}

/// Starts an instance of the latest version of a workflow, for kinds any client may start
/// (a subcontract application is started by `applications`, which fixes its organisations).
pub async fn create(
    conns: Conns<'_>,
    workflows: &WorkflowSet,
    new: NewInstance<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    let db = conns.db;
    if let Some(rt) = workflows.latest(new.workflow) {
        if MANAGED_KINDS.contains(&rt.context_kind()) {
            return Err(InstanceError::Managed(rt.context_kind().to_owned()));
        }
    }
    // A plain creation writes the instance row and its first audit record only: in the group
    // commit task's next batch, or without one, on PostgreSQL, in one statement without
    // BEGIN/COMMIT.
    let plain = is_plain(workflows, &new);
    if plain {
        if let Some(group) = conns.group_commit {
            let (prepared, sealed) = prepare_create(workflows, new, acting)?;
            let insert = InstanceWrite::Insert {
                row: prepared.row.clone(),
                authz_epoch: None,
            };
            return if group.write(insert, sealed).await? {
                if let Some(recent) = conns.recent {
                    recent.keep_row(prepared.row.clone());
                }
                prepared.view(acting)
            } else {
                Err(InstanceError::Db(DbErr::Custom(
                    "a new instance row was not written".to_owned(),
                )))
            };
        }
    }
    if one_statement_suffices(db, plain) {
        return create_in(db, workflows, new, acting).await;
    }
    let txn = db.begin().await?;
    let view = create_in(&txn, workflows, new, acting).await?;
    txn.commit().await?;
    Ok(view)
}

/// [`create`] decided on the session of `acting` as this replica kept it, read at
/// `authz_epoch` (see [`crate::services::recent`]): the new row is written only if the epoch
/// has not moved since, and only for a plain creation (no correction, no timer, a kind any
/// client may start), in the group commit's batch. `Ok(None)`: nothing was written, because
/// the engine refused, the creation needs more, or the epoch moved; the caller then reads the
/// session and creates as usual, so that the answer is the one it would have been.
pub async fn create_recent(
    conns: Conns<'_>,
    workflows: &WorkflowSet,
    new: NewInstance<'_>,
    authz_epoch: i64,
    acting: &Acting<'_>,
) -> Result<Option<InstanceView>, InstanceError> {
    let (Some(group), Some(recent)) = (conns.group_commit, conns.recent) else {
        return Ok(None);
    };
    let managed = workflows
        .latest(new.workflow)
        .is_some_and(|rt| MANAGED_KINDS.contains(&rt.context_kind()));
    if managed || !is_plain(workflows, &new) {
        return Ok(None);
    }
    let Ok((prepared, sealed)) = prepare_create(workflows, new, acting) else {
        return Ok(None);
    };
    let insert = InstanceWrite::Insert {
        row: prepared.row.clone(),
        authz_epoch: Some(authz_epoch),
    };
    if !group.write(insert, sealed).await? {
        return Ok(None);
    }
    recent.keep_row(prepared.row.clone());
    prepared.view(acting).map(Some)
}

/// Whether `new` is a plain creation: no correction to check, no timer to start, so that it
/// writes the instance row and its first audit record only.
fn is_plain(workflows: &WorkflowSet, new: &NewInstance<'_>) -> bool {
    workflows
        .latest(new.workflow)
        .is_some_and(|rt| new.corrects.is_none() && rt.initial_timers().is_empty())
}

/// Context kinds whose instances only the domain services start.
pub const MANAGED_KINDS: &[&str] = &["subcontract"];

/// Starts an instance on `conn`: inside the caller's transaction, or (see [`create`]) alone
/// when one statement writes it all.
pub async fn create_in(
    conn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    new: NewInstance<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    let corrects = new.corrects;
    let (prepared, sealed) = prepare_create(workflows, new, acting)?;
    if let Some(corrected) = corrects {
        check_correctable(conn, workflows, prepared.rt, corrected, &acting.actor).await?;
    }
    let insert = InstanceWrite::insert_statement(&prepared.row);
    write_with_row(conn, insert, sealed).await?;
    let (id, seq) = (&prepared.row.id, prepared.row.audit_seq);
    start_timers(
        conn,
        id,
        seq,
        &prepared.rt.initial_timers(),
        prepared.row.created_at,
    )
    .await?;
    prepared.view(acting)
}

/// A new instance, decided and sealed but not written yet.
struct Created<'s> {
    row: workflow_instance::Model,
    rt: &'s dyn WorkflowRuntime,
    st: StoredInstance,
}

impl Created<'_> {
    /// The creator is the submitter, who may always see it: the answer comes from what was
    /// written.
    fn view(self, acting: &Acting<'_>) -> Result<InstanceView, InstanceError> {
        view(self.rt, self.row, &self.st, acting)
    }
}

/// Lets the engine start the instance and seals its first audit record; returns the new
/// instance (its row not written yet) and the record.
fn prepare_create<'s>(
    workflows: &'s WorkflowSet,
    new: NewInstance<'_>,
    acting: &Acting<'_>,
) -> Result<(Created<'s>, audit::SealedRecord), InstanceError> {
    let rt = workflows
        .latest(new.workflow)
        .ok_or_else(|| InstanceError::UnknownWorkflow(new.workflow.to_owned()))?
        .as_ref();
    let created = rt.create(acting.actor.id, &acting.actor, new.context)?;
    let now = to_db_precision(acting.now.at);
    let id = new_id(now);
    let sealed = audit::seal(
        ChainHead::genesis(),
        NewAuditRecord {
            instance_id: id.clone(),
            at: now,
            actor_id: acting.actor.id.to_owned(),
            on_behalf_of: None,
            event: "create".to_owned(),
            from_state: None,
            to_state: created.state.clone(),
            step: None,
            comment: None,
            request_id: acting.request_id.map(str::to_owned),
            details: json!({
                "workflow": rt.id(),
                "workflow_version": rt.version(),
                "corrects": new.corrects,
            }),
        },
    )?;
    let st = StoredInstance {
        state: created.state,
        submitter: acting.actor.id.to_owned(),
        context: created.context,
        progress: created.progress,
    };
    let (waiting_org, waiting_roles) = waiting_columns(rt.waiting_for(&st)?.as_ref());
    let row = workflow_instance::Model {
        id,
        workflow_id: rt.id().to_owned(),
        workflow_version: i32::try_from(rt.version()).unwrap_or(i32::MAX),
        state: st.state.clone(),
        version: 1,
        submitter: st.submitter.clone(),
        organisation_id: created.owner.clone(),
        context: st.context.to_string(),
        progress: st.progress.to_string(),
        corrects_instance_id: new.corrects.map(str::to_owned),
        created_at: now,
        updated_at: now,
        // The record is sealed already, so the row carries its head from the start.
        audit_seq: sealed.head().seq,
        audit_head: sealed.head().hash.clone(),
        waiting_org,
        waiting_roles,
    };
    Ok((Created { row, rt, st }, sealed))
}

/// Applies an event: the state, the audit record, the outbox and timers are written all or
/// nothing, and only if the instance still has the version that was read (else `Concurrent`).
///
/// Instances of a managed kind ([`MANAGED_KINDS`]) are refused with `Managed` before anything
/// is written: their guards need the domain's facts, so they fire through
/// `applications::fire_instance`, which tries this first and falls back to the domain path.
///
/// With a group commit task (the server runs one), the instance is read beside the writer
/// (SQLite's read-only pool) and a transition without effects is written in the task's next
/// batch; with effects, the write is one transaction. Without one, on PostgreSQL a transition
/// without effects is written in one statement, without `BEGIN`/`COMMIT`; on SQLite, which
/// serialises writers on one connection, the read and the write share one transaction and the
/// connection is taken once.
pub async fn fire(
    conns: Conns<'_>,
    workflows: &WorkflowSet,
    id: &str,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    fire_on(conns, workflows, id, RowRead::Pending, req, acting).await
}

/// The instance row an event decides on: still to be read, or read by the caller already,
/// after the request arrived (the API reads it with the session check, in one statement).
#[derive(Debug)]
pub enum RowRead {
    /// [`fire_on`] reads it.
    Pending,
    /// The instance's row, or `None` when there is no such instance.
    Done(Option<Box<workflow_instance::Model>>),
}

/// [`fire`], deciding on `row` when it has been read. Without a group commit task the read
/// belongs to the write's transaction, so a row read before is not used.
pub async fn fire_on(
    conns: Conns<'_>,
    workflows: &WorkflowSet,
    id: &str,
    row: RowRead,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<InstanceView, InstanceError> {
    let db = conns.db;
    let transition = if let Some(group) = conns.group_commit {
        // Read beside the writer; the version condition of the write catches a racing writer.
        let row = match row {
            RowRead::Done(row) => row.map(|row| *row),
            RowRead::Pending => {
                workflow_instance::Entity::find_by_id(id)
                    .one(conns.reader)
                    .await?
            }
        };
        let (transition, sealed) = decide_on(row, workflows, req, acting, Facts::RefuseManaged)?;
        if writes_effects(&transition.fired) {
            let txn = db.begin().await?;
            write_transition(&txn, &transition, sealed, req).await?;
            txn.commit().await.map_err(conflict_on_unique)?;
        } else if !group
            .write(InstanceWrite::Update(row_update(&transition)), sealed)
            .await
            .map_err(conflict_on_unique)?
        {
            if let Some(recent) = conns.recent {
                recent.forget_row(id);
            }
            return Err(InstanceError::Concurrent);
        }
        transition
    } else if db.get_database_backend() == DbBackend::Sqlite {
        let txn = db.begin().await?;
        let (transition, sealed) =
            decide(&txn, workflows, id, req, acting, Facts::RefuseManaged).await?;
        write_transition(&txn, &transition, sealed, req).await?;
        txn.commit().await.map_err(conflict_on_unique)?;
        transition
    } else {
        let (transition, sealed) =
            decide(db, workflows, id, req, acting, Facts::RefuseManaged).await?;
        if one_statement_suffices(db, !writes_effects(&transition.fired)) {
            write_transition(db, &transition, sealed, req).await?;
        } else {
            let txn = db.begin().await?;
            write_transition(&txn, &transition, sealed, req).await?;
            txn.commit().await.map_err(conflict_on_unique)?;
        }
        transition
    };
    let (row, view) = transition.finish(acting)?;
    if let Some(recent) = conns.recent {
        recent.keep_row(row);
    }
    Ok(view)
}

/// [`fire_on`] decided on what this replica kept from earlier requests, the instance's `row`
/// and the session of `acting` (read at `authz_epoch`), instead of reading them again: see
/// [`crate::services::recent`]. The transition is written only if neither changed since, and
/// only when it writes no more than its row and its record (in the group commit's batch).
/// `Ok(None)`: nothing was written, because the decision was refused, needed more, or found
/// them changed; the caller then reads both and fires as usual, so that the answer is the one
/// it would have been.
pub async fn fire_recent(
    conns: Conns<'_>,
    workflows: &WorkflowSet,
    row: workflow_instance::Model,
    authz_epoch: i64,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
) -> Result<Option<InstanceView>, InstanceError> {
    let (Some(group), Some(recent)) = (conns.group_commit, conns.recent) else {
        return Ok(None);
    };
    let id = row.id.clone();
    let Ok((transition, sealed)) =
        decide_on(Some(row), workflows, req, acting, Facts::RefuseManaged)
    else {
        return Ok(None);
    };
    if writes_effects(&transition.fired) {
        return Ok(None);
    }
    let update = RowUpdate {
        authz_epoch: Some(authz_epoch),
        ..row_update(&transition)
    };
    if !group
        .write(InstanceWrite::Update(update), sealed)
        .await
        .map_err(conflict_on_unique)?
    {
        recent.forget_row(&id);
        return Ok(None);
    }
    let (row, view) = transition.finish(acting)?;
    recent.keep_row(row);
    Ok(Some(view))
}

/// Applies an event inside the caller's transaction. `facts`, when given, is set as the
/// context's `facts` for the guards to read (what the domain knows of the chain on the
/// decision date); it is never stored.
pub async fn fire_in(
    txn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    id: &str,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
    facts: Option<Value>,
) -> Result<(InstanceView, Fired), InstanceError> {
    let facts = facts.map_or(Facts::None, Facts::Given);
    let (transition, sealed) = decide(txn, workflows, id, req, acting, facts).await?;
    write_transition(txn, &transition, sealed, req).await?;
    let fired = transition.fired.clone();
    Ok((transition.view(acting)?, fired))
}

/// An event the engine accepted, with the instance as it was read; not written yet.
struct Transition<'s> {
    row: workflow_instance::Model,
    rt: &'s dyn WorkflowRuntime,
    st: StoredInstance,
    fired: Fired,
    /// Who the instance waits for once the transition is written: kept on its row for the
    /// inbox, and with its notifications so that they go to the people of that step even when
    /// they are delivered after it moved on.
    waiting: Option<Waiting>,
    /// The audit chain head once the transition's record is written.
    head: ChainHead,
    now: DateTime<Utc>,
}

impl Transition<'_> {
    /// The instance as the transition leaves it.
    fn view(self, acting: &Acting<'_>) -> Result<InstanceView, InstanceError> {
        self.finish(acting).map(|(_, view)| view)
    }

    /// The instance's row as the transition writes it, and the instance as the API shows it.
    fn finish(
        self,
        acting: &Acting<'_>,
    ) -> Result<(workflow_instance::Model, InstanceView), InstanceError> {
        let Self {
            mut row,
            rt,
            st,
            fired,
            waiting,
            head,
            now,
        } = self;
        row.state.clone_from(&fired.to);
        (row.waiting_org, row.waiting_roles) = waiting_columns(waiting.as_ref());
        row.progress = fired.progress.to_string();
        row.version += 1;
        row.updated_at = now;
        row.audit_seq = head.seq;
        row.audit_head = head.hash;
        let st = StoredInstance {
            state: fired.to,
            progress: fired.progress,
            ..st
        };
        Ok((row.clone(), view(rt, row, &st, acting)?))
    }
}

/// What the domain tells the guards of a transition.
enum Facts {
    /// The chain's facts on the decision date, set as the context's `facts`.
    Given(Value),
    /// Nothing (the guards that need facts refuse).
    None,
    /// Nothing, and an instance of a managed kind is refused with `Managed`.
    RefuseManaged,
}

/// Reads the instance, checks the caller's version and lets the engine decide; seals the audit
/// record of the transition.
async fn decide<'s>(
    conn: &impl ConnectionTrait,
    workflows: &'s WorkflowSet,
    id: &str,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
    facts: Facts,
) -> Result<(Transition<'s>, audit::SealedRecord), InstanceError> {
    let row = workflow_instance::Entity::find_by_id(id).one(conn).await?;
    decide_on(row, workflows, req, acting, facts)
}

/// [`decide`] on the instance's row as read (`None`: there is no such instance).
fn decide_on<'s>(
    row: Option<workflow_instance::Model>,
    workflows: &'s WorkflowSet,
    req: &FireRequest<'_>,
    acting: &Acting<'_>,
    facts: Facts,
) -> Result<(Transition<'s>, audit::SealedRecord), InstanceError> {
    let now = to_db_precision(acting.now.at);
    let (row, rt, mut st) = check_visible(row, workflows, &acting.actor)?;
    match facts {
        Facts::Given(facts) => {
            if let Some(ctx) = st.context.as_object_mut() {
                ctx.insert("facts".to_owned(), facts);
            }
        }
        Facts::RefuseManaged if MANAGED_KINDS.contains(&rt.context_kind()) => {
            return Err(InstanceError::Managed(rt.context_kind().to_owned()));
        }
        Facts::None | Facts::RefuseManaged => {}
    }
    if let Some(expected) = req.expected_version {
        if expected != row.version {
            return Err(InstanceError::StaleVersion {
                expected,
                current: row.version,
            });
        }
    }
    let request = EventRequest {
        event: req.event,
        comment: req.comment,
        to_step: req.to_step,
        on_behalf_of: req.on_behalf_of,
        data: req.data,
    };
    let fired = rt.fire(&st, &request, &acting.actor, acting.now)?;
    let sealed = audit::seal(
        ChainHead {
            seq: row.audit_seq,
            hash: row.audit_head.clone(),
        },
        NewAuditRecord {
            instance_id: row.id.clone(),
            at: now,
            actor_id: acting.actor.id.to_owned(),
            on_behalf_of: fired.on_behalf_of.clone(),
            event: fired.event.clone(),
            from_state: Some(fired.from.clone()),
            to_state: fired.to.clone(),
            step: fired.step.clone(),
            comment: req.comment.map(str::to_owned),
            request_id: acting.request_id.map(str::to_owned),
            details: audit_details(&fired, req),
        },
    )?;
    let after = StoredInstance {
        state: fired.to.clone(),
        progress: fired.progress.clone(),
        ..st.clone()
    };
    let waiting = rt.waiting_for(&after)?;
    let transition = Transition {
        head: sealed.head().clone(),
        row,
        rt,
        st,
        fired,
        waiting,
        now,
    };
    Ok((transition, sealed))
}

/// Writes a decided transition: the instance row under its version, the audit record, and the
/// effects' outbox and timer rows (which need `conn` to be a transaction).
async fn write_transition(
    conn: &impl ConnectionTrait,
    t: &Transition<'_>,
    sealed: audit::SealedRecord,
    req: &FireRequest<'_>,
) -> Result<(), InstanceError> {
    write_with_row(conn, row_update(t).statement(), sealed).await?;
    run_effects(
        conn,
        &t.row,
        t.head.seq,
        &t.fired,
        req,
        t.waiting.as_ref(),
        t.now,
    )
    .await?;
    Ok(())
}

/// The update of the instance row a transition makes, under the version it was decided on.
fn row_update(t: &Transition<'_>) -> RowUpdate {
    let (waiting_org, waiting_roles) = waiting_columns(t.waiting.as_ref());
    RowUpdate {
        id: t.row.id.clone(),
        version: t.row.version,
        state: t.fired.to.clone(),
        progress: t.fired.progress.to_string(),
        updated_at: t.now,
        audit_seq: t.head.seq,
        audit_head: t.head.hash.clone(),
        waiting_org,
        waiting_roles,
        authz_epoch: None,
    }
}

/// The row's `waiting_org` and `waiting_roles` for who an instance waits for: the step's
/// organisation (empty when the step names none: the role from anywhere), and its roles each
/// between spaces (` officer `), so that a role is found with `LIKE '% officer %'`. Both are
/// none when it waits at no step, so an index on `waiting_org` holds only what waits.
pub fn waiting_columns(waiting: Option<&Waiting>) -> (Option<String>, Option<String>) {
    let Some(w) = waiting else {
        return (None, None);
    };
    let org = w
        .grants
        .iter()
        .find_map(|g| g.org.clone())
        .unwrap_or_default();
    let mut roles = String::from(" ");
    for g in &w.grants {
        if !roles.contains(&format!(" {} ", g.role)) {
            roles.push_str(&g.role);
            roles.push(' ');
        }
    }
    (Some(org), Some(roles))
}

/// Fills in `waiting_org` and `waiting_roles` on the rows that stand at a route step without
/// them: rows written before those columns existed. Returns how many rows it filled. Run at
/// start-up after the definitions are loaded; replicas starting at once write the same values.
pub async fn index_waiting(
    db: &DatabaseConnection,
    workflows: &WorkflowSet,
) -> Result<u64, InstanceError> {
    use workflow_instance::Column as I;
    const BATCH: u64 = 500;
    let mut filled = 0;
    for rt in workflows.iter() {
        let routed: Vec<String> = rt
            .describe()
            .states
            .into_iter()
            .filter(|s| s.route.is_some())
            .map(|s| s.id)
            .collect();
        if routed.is_empty() {
            continue;
        }
        let version = i32::try_from(rt.version()).unwrap_or(i32::MAX);
        let mut after = String::new();
        loop {
            let rows = workflow_instance::Entity::find()
                .filter(I::WorkflowId.eq(rt.id()))
                .filter(I::WorkflowVersion.eq(version))
                .filter(I::State.is_in(routed.iter().map(String::as_str)))
                .filter(I::WaitingRoles.is_null())
                .filter(I::Id.gt(after.as_str()))
                .order_by_asc(I::Id)
                .limit(BATCH)
                .all(db)
                .await?;
            let Some(last) = rows.last() else { break };
            after.clone_from(&last.id);
            for row in &rows {
                let (org, roles) = waiting_columns(rt.waiting_for(&stored(row)?)?.as_ref());
                if roles.is_none() {
                    continue;
                }
                workflow_instance::Entity::update_many()
                    .col_expr(I::WaitingOrg, Expr::value(org))
                    .col_expr(I::WaitingRoles, Expr::value(roles))
                    .filter(I::Id.eq(row.id.as_str()))
                    .filter(I::Version.eq(row.version))
                    .exec(db)
                    .await?;
                filled += 1;
            }
        }
    }
    Ok(filled)
}

/// Whether the instance row and its audit record can be written without a transaction: on
/// PostgreSQL they are one statement, and when nothing else is written that is the whole
/// transition (fewer round trips, no `BEGIN`/`COMMIT`). Elsewhere a transaction holds them.
fn one_statement_suffices(db: &DatabaseConnection, nothing_else: bool) -> bool {
    nothing_else && db.get_database_backend() == DbBackend::Postgres
}

/// Writes the instance row and its audit record (see [`audit::write_with_row`]); a version
/// condition that matched no row means a racing writer won.
async fn write_with_row(
    conn: &impl ConnectionTrait,
    row_write: impl audit::RowWrite,
    sealed: audit::SealedRecord,
) -> Result<(), InstanceError> {
    if audit::write_with_row(conn, row_write, sealed)
        .await
        .map_err(conflict_on_unique)?
    {
        Ok(())
    } else {
        Err(InstanceError::Concurrent)
    }
}

/// Does the transition write outbox or timer rows besides its audit record?
fn writes_effects(fired: &Fired) -> bool {
    !(fired.effects.is_empty()
        && fired.post_reviews.is_empty()
        && fired.timers_cancelled.is_empty()
        && fired.timers_started.is_empty())
}

/// The instance a new one corrects must be visible, of the same workflow and decided.
async fn check_correctable(
    conn: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    rt: &dyn WorkflowRuntime,
    corrected: &str,
    actor: &Actor<'_>,
) -> Result<(), InstanceError> {
    let old = workflow_instance::Entity::find_by_id(corrected)
        .one(conn)
        .await?
        .ok_or(InstanceError::NotFound)?;
    let old_rt = runtime(workflows, &old)?;
    if !visible(old_rt, &old, &stored(&old)?, actor)? {
        return Err(InstanceError::NotFound);
    }
    if old.workflow_id != rt.id() {
        return Err(InstanceError::NotCorrectable("it runs on another workflow"));
    }
    if !old_rt.is_decided(&old.state) {
        return Err(InstanceError::NotCorrectable("it has not been decided yet"));
    }
    Ok(())
}

/// A racing transaction that appended the same audit seq first: the caller lost the race.
fn conflict_on_unique(e: DbErr) -> InstanceError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => InstanceError::Concurrent,
        _ => InstanceError::Db(e),
    }
}

fn audit_details(fired: &Fired, req: &FireRequest<'_>) -> Value {
    let mut d = json!({ "action": fired.action });
    if !fired.post_reviews.is_empty() {
        d["post_reviews"] = json!(fired.post_reviews);
    }
    if let Some(to_step) = req.to_step {
        d["to_step"] = json!(to_step);
    }
    if let Some(data) = req.data {
        d["data"] = data.clone();
    }
    d
}

/// Writes the transition's effects: outbox rows (notifications, documents) and timers. Keys
/// name the instance, the audit seq of the transition and the effect, so a retried transaction
/// never doubles a message.
async fn run_effects(
    txn: &impl ConnectionTrait,
    row: &workflow_instance::Model,
    seq: i64,
    fired: &Fired,
    req: &FireRequest<'_>,
    waiting: Option<&Waiting>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let payload = json!({
        "waiting": waiting,
        "workflow": row.workflow_id,
        "workflow_version": row.workflow_version,
        "instance": row.id,
        "event": fired.event,
        "from": fired.from,
        "to": fired.to,
        "step": fired.step,
        "comment": req.comment,
    });
    for (ix, effect) in fired.effects.iter().enumerate() {
        // Timer effects are resolved by the runtime into `timers_started` / `timers_cancelled`.
        if matches!(effect.name.as_str(), "start_timer" | "cancel_timer") {
            continue;
        }
        outbox::enqueue(
            txn,
            outbox::OutboxRow {
                idempotency_key: format!("{}:{seq}:{ix}", row.id),
                instance_id: Some(row.id.clone()),
                effect: effect.name.clone(),
                template: effect.params["template"].as_str().map(str::to_owned),
                recipients: effect.params.get("to").cloned().unwrap_or(Value::Null),
                payload: json!({ "params": effect.params, "event": payload }),
                now,
            },
        )
        .await?;
    }
    for (k, pr) in fired.post_reviews.iter().enumerate() {
        outbox::enqueue(
            txn,
            outbox::OutboxRow {
                idempotency_key: format!("{}:{seq}:post_review:{k}", row.id),
                instance_id: Some(row.id.clone()),
                effect: "notify".to_owned(),
                template: Some("post_review_requested".to_owned()),
                recipients: json!(["post_reviewers"]),
                payload: json!({ "post_review": pr, "event": payload }),
                now,
            },
        )
        .await?;
    }
    for name in &fired.timers_cancelled {
        timers::cancel(txn, &row.id, name, now).await?;
    }
    start_timers(txn, &row.id, seq, &fired.timers_started, now).await
}

async fn start_timers(
    txn: &impl ConnectionTrait,
    instance_id: &str,
    seq: i64,
    list: &[Timer],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for t in list {
        timers::start(
            txn,
            timers::NewTimer {
                idempotency_key: format!("{instance_id}:{seq}:timer:{}", t.id),
                instance_id: instance_id.to_owned(),
                timer: t.id.clone(),
                action: match t.action {
                    TimerAction::Remind => "remind",
                    TimerAction::Escalate => "escalate",
                }
                .to_owned(),
                role: t.role.clone(),
                template: t.template.clone(),
                business_days: i32::try_from(t.after_business_days).unwrap_or(i32::MAX),
                started_at: now,
            },
        )
        .await?;
    }
    Ok(())
}

/// Appends a record to an instance's audit chain without a transition (the state stays): an
/// action on the instance's subject that must be in its trail, such as the municipality
/// recording the assessment (特定個人情報保護評価) a significant change needs before permission.
/// The row's version moves on, so a decision prepared before it must be reloaded. Returns the
/// record's seq.
pub async fn append_note(
    conn: &impl ConnectionTrait,
    id: &str,
    event: &str,
    comment: Option<&str>,
    details: Value,
    acting: &Acting<'_>,
) -> Result<i64, InstanceError> {
    use workflow_instance::Column as I;
    let now = to_db_precision(acting.now.at);
    let row = workflow_instance::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(InstanceError::NotFound)?;
    let sealed = audit::seal(
        ChainHead {
            seq: row.audit_seq,
            hash: row.audit_head.clone(),
        },
        NewAuditRecord {
            instance_id: row.id.clone(),
            at: now,
            actor_id: acting.actor.id.to_owned(),
            on_behalf_of: None,
            event: event.to_owned(),
            from_state: Some(row.state.clone()),
            to_state: row.state.clone(),
            step: None,
            comment: comment.map(str::to_owned),
            request_id: acting.request_id.map(str::to_owned),
            details,
        },
    )?;
    let head = sealed.head().clone();
    let update = workflow_instance::Entity::update_many()
        .col_expr(I::Version, Expr::value(row.version + 1))
        .col_expr(I::UpdatedAt, Expr::value(now))
        .col_expr(I::AuditSeq, Expr::value(head.seq))
        .col_expr(I::AuditHead, Expr::value(head.hash.clone()))
        .filter(I::Id.eq(row.id.as_str()))
        .filter(I::Version.eq(row.version))
        .into_query();
    write_with_row(conn, update, sealed).await?;
    Ok(head.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_db::{backend_tests, Backend, TestDb, TestResult};
    use crate::workflow::kinds::workload::{self, WorkloadContext};
    use crate::workflow::{Grant, Kinds};

    #[test]
    fn who_a_step_waits_for_is_its_organisation_and_its_roles_between_spaces() {
        let waiting = |roles: &[&str], org: Option<&str>| Waiting {
            step: "check".to_owned(),
            label: Label {
                ja: "審査".to_owned(),
                en: "Check".to_owned(),
            },
            grants: roles
                .iter()
                .map(|r| Grant {
                    role: (*r).to_owned(),
                    org: org.map(str::to_owned),
                })
                .collect(),
        };
        assert_eq!(waiting_columns(None), (None, None));
        assert_eq!(
            waiting_columns(Some(&waiting(&["officer"], Some("meguro")))),
            (Some("meguro".to_owned()), Some(" officer ".to_owned()))
        );
        assert_eq!(
            waiting_columns(Some(&waiting(&["chief", "officer", "chief"], None))),
            (Some(String::new()), Some(" chief officer ".to_owned()))
        );
        // Every slot taken: it waits for no one (no role matches).
        assert_eq!(
            waiting_columns(Some(&waiting(&[], Some("meguro")))),
            (Some(String::new()), Some(" ".to_owned()))
        );
    }

    async fn deployed_workload(db: &DatabaseConnection) -> Result<WorkflowSet, String> {
        let mut kinds = Kinds::product();
        kinds.add(workload::registry);
        kinds.vocabulary = kinds.vocabulary.with_roles(&["staff"]);
        let rt = kinds
            .compile("workload.toml", workload::DEFINITION)
            .map_err(|e| format!("{e:?}"))?;
        let mut set = WorkflowSet::default();
        set.insert(rt)?;
        crate::services::definitions::deploy(db, &mut set, &kinds, workload_now().at)
            .await
            .map_err(|e| e.to_string())?;
        Ok(set)
    }

    fn workload_now() -> Now {
        Now {
            at: workload::today()
                .and_hms_opt(1, 2, 3)
                .unwrap_or_default()
                .and_utc(),
            today: workload::today(),
        }
    }

    fn grants(role: &str) -> Vec<Grant> {
        vec![Grant {
            role: role.to_owned(),
            org: Some("bench".to_owned()),
        }]
    }

    fn acting<'a>(id: &'a str, grants: &'a [Grant]) -> Acting<'a> {
        Acting {
            actor: Actor {
                id,
                grants,
                deputy_for: &[],
            },
            request_id: Some("r1"),
            now: workload_now(),
        }
    }

    /// Everything but `available_events`, which depends on who asks.
    fn comparable(mut view: InstanceView) -> Value {
        view.available_events.clear();
        view.event_choices.clear();
        serde_json::to_value(view).unwrap_or_default()
    }

    async fn what_create_and_fire_answer_is_what_a_read_then_finds(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let set = deployed_workload(&db.conn).await?;
        let (staff, system) = (grants("staff"), grants("system"));
        let submitter = acting("user-7", &staff);
        let context = serde_json::to_value(WorkloadContext::for_instance(7))?;
        let new = NewInstance {
            workflow: "bench_workload",
            context,
            corrects: None,
        };
        let created = create(Conns::single(&db.conn), &set, new, &submitter).await?;
        assert_eq!(created.state, "draft");
        assert_eq!(created.audit_seq, 1);
        assert_eq!(created.available_events, ["submit"]);
        let read = get(&db.conn, &set, &created.id, &submitter).await?;
        assert_eq!(comparable(created.clone()), comparable(read));

        let submit = FireRequest {
            event: "submit",
            expected_version: Some(1),
            ..FireRequest::default()
        };
        let submitted = fire(
            Conns::single(&db.conn),
            &set,
            &created.id,
            &submit,
            &submitter,
        )
        .await?;
        let read = get(&db.conn, &set, &created.id, &acting("system", &system)).await?;
        assert_eq!((submitted.version, submitted.audit_seq), (2, 2));
        assert_eq!(comparable(submitted), comparable(read));

        let report = audit::verify(&db.conn).await?;
        assert_eq!((report.instances, report.records), (1, 2));
        assert!(report.is_clean(), "{:?}", report.first_problem);
        db.close().await
    }

    backend_tests!(
        what_create_and_fire_answer_is_what_a_read_then_finds,
        group_commit_keeps_each_transition_on_its_own,
        an_event_on_a_kept_row_is_written_only_under_its_version_and_epoch
    );

    /// A creation decided on a kept session is written only while the session holds, and a
    /// transition decided on a kept row and a kept session only while both hold; the row then
    /// kept is the row as a read finds it.
    async fn an_event_on_a_kept_row_is_written_only_under_its_version_and_epoch(
        backend: Backend,
    ) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let set = deployed_workload(&db.conn).await?;
        let group = GroupCommit::start(db.conn.clone());
        let recent = Recent::default();
        let conns = Conns {
            db: &db.conn,
            reader: &db.conn,
            group_commit: Some(&group),
            recent: Some(&recent),
        };
        let staff = grants("staff");
        let submitter = acting("user-1", &staff);
        let new = NewInstance {
            workflow: "bench_workload",
            context: serde_json::to_value(WorkloadContext::for_instance(1))?,
            corrects: None,
        };
        let epoch = crate::services::recent::current_epoch(&db.conn).await?;
        let moved = create_recent(conns, &set, new.clone(), epoch + 1, &submitter).await?;
        assert!(moved.is_none(), "{moved:?}");
        assert_eq!(count(&db.conn).await?, 0);
        let created = create_recent(conns, &set, new, epoch, &submitter)
            .await?
            .ok_or("not created")?;
        let read = || workflow_instance::Entity::find_by_id(created.id.as_str()).one(&db.conn);
        let kept = recent.row(&created.id).ok_or("the new row was not kept")?;
        assert_eq!(Some(kept.as_ref().clone()), read().await?);
        let submit = FireRequest {
            event: "submit",
            ..FireRequest::default()
        };
        let on = |row: &workflow_instance::Model, epoch: i64| {
            fire_recent(conns, &set, row.clone(), epoch, &submit, &submitter)
        };

        // The authorisation epoch moved since the session was read: nothing is written, and
        // the row is no longer kept.
        assert!(on(&kept, epoch + 1).await?.is_none());
        assert!(recent.row(&created.id).is_none());
        assert_eq!(Some(kept.as_ref().clone()), read().await?);

        // Both hold: written, and the row kept is the row written.
        let fired = on(&kept, epoch).await?.ok_or("not written")?;
        assert_eq!((fired.state.as_str(), fired.version), ("submitted", 2));
        let written = recent
            .row(&created.id)
            .ok_or("the written row was not kept")?;
        assert_eq!(Some(written.as_ref().clone()), read().await?);

        // The row kept before the write (version 1) no longer holds; on the current row the
        // engine refuses a second submit. Neither writes anything.
        assert!(on(&kept, epoch).await?.is_none());
        assert!(on(&written, epoch).await?.is_none());
        assert_eq!(Some(written.as_ref().clone()), read().await?);
        let report = audit::verify(&db.conn).await?;
        assert_eq!(report.records, 2);
        assert!(report.is_clean(), "{:?}", report.first_problem);
        db.close().await
    }

    /// Transitions queued together share one transaction, yet each is written or refused as
    /// it would be alone: of two racing on the same version exactly one wins, and a write that
    /// fails fails only itself.
    async fn group_commit_keeps_each_transition_on_its_own(backend: Backend) -> TestResult {
        let db = TestDb::fresh(backend).await?;
        let set = deployed_workload(&db.conn).await?;
        let group = GroupCommit::start(db.conn.clone());
        let conns = Conns {
            db: &db.conn,
            reader: &db.conn,
            group_commit: Some(&group),
            recent: None,
        };
        let staff = grants("staff");
        let mut ids = Vec::new();
        for i in 0..6 {
            let submitter = format!("user-{i}");
            let context = serde_json::to_value(WorkloadContext::for_instance(i))?;
            let new = NewInstance {
                workflow: "bench_workload",
                context,
                corrects: None,
            };
            let view = create(conns, &set, new, &acting(&submitter, &staff)).await?;
            ids.push((submitter, view.id));
        }
        let submit = FireRequest {
            event: "submit",
            expected_version: Some(1),
            ..FireRequest::default()
        };
        // Six instances, the first submitted twice: seven transitions at once. One submit of
        // the first loses, as a stale version if it read after the winner's commit, else as a
        // concurrent write refused by the version condition (in the next batch: one batch
        // never holds two writes of an instance).
        let mut queued: Vec<_> = ids
            .iter()
            .map(|(submitter, id)| (submitter.clone(), id.clone()))
            .collect();
        queued.push(ids[0].clone());
        let answers = futures_util::future::join_all(queued.iter().map(|(submitter, id)| {
            let acting = acting(submitter, &staff);
            let (set, submit) = (&set, &submit);
            async move { fire(conns, set, id, submit, &acting).await }
        }))
        .await;
        let won = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(won, 6, "{answers:?}");
        let (winner, loser) = if answers[0].is_ok() {
            (&answers[0], &answers[6])
        } else {
            (&answers[6], &answers[0])
        };
        assert!(winner.is_ok(), "{winner:?}");
        assert!(
            matches!(
                loser,
                Err(InstanceError::Concurrent | InstanceError::StaleVersion { .. })
            ),
            "{loser:?}"
        );

        // A write that fails (here: a new instance of a workflow that was never deployed, which
        // its foreign key refuses) queued with a good one: the batch is rolled back and each
        // written alone.
        let (submitter, id) = &ids[1];
        let check = FireRequest {
            event: "check_evidence",
            expected_version: Some(2),
            ..FireRequest::default()
        };
        let system = grants("system");
        let (transition, sealed) = decide(
            &db.conn,
            &set,
            id,
            &check,
            &acting("system", &system),
            Facts::None,
        )
        .await?;
        let new = NewInstance {
            workflow: "bench_workload",
            context: serde_json::to_value(WorkloadContext::for_instance(6))?,
            corrects: None,
        };
        let (mut orphan, orphan_record) = prepare_create(&set, new, &acting("user-6", &staff))?;
        orphan.row.workflow_id = "never_deployed".to_owned();
        let (broken, good) = futures_util::future::join(
            group.write(
                InstanceWrite::Insert {
                    row: orphan.row,
                    authz_epoch: None,
                },
                orphan_record,
            ),
            group.write(InstanceWrite::Update(row_update(&transition)), sealed),
        )
        .await;
        assert!(broken.is_err(), "{broken:?}");
        assert!(good?, "the good write was not written");
        let read = get(&db.conn, &set, id, &acting(submitter, &staff)).await?;
        assert_eq!((read.state.as_str(), read.version), ("evidence_ok", 3));

        let report = audit::verify(&db.conn).await?;
        assert_eq!(report.records, 6 + 6 + 1);
        assert!(report.is_clean(), "{:?}", report.first_problem);
        db.close().await
    }
}
