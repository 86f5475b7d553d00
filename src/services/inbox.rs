//! The inbox: the application targets waiting for the user.
//!
//! A target waits for a user when its instance is in the definition's initial state and the user
//! filed it (to submit, or to resubmit after a return), or when the instance is at a step of an
//! approval route (決裁ルート) whose role the user holds in the step's organisation — the
//! engine's own [`WorkflowRuntime::waiting_for`], the grants its `next_actors` notifications go
//! to, and those of the people the user is the registered deputy of (代決), marked so. Whether
//! a decision would pass its guards today (evidence, permissions above) is for the
//! application's page to tell: a blocked decision still waits for its decider.
//!
//! The database selects the candidates — targets the user may see, in a state that can wait for
//! someone — ordered by how long they have waited; the engine then reads only those.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::Serialize;

use crate::error::ApiError;
use crate::services::access::Viewer;
use crate::services::application_scope::{Scope, Sql};
use crate::services::applications::WORKFLOW;
use crate::workflow::definition::Label;
use crate::workflow::{Actor, Grant, StoredInstance, WorkflowSet};

/// What the user is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Submit a draft, or resubmit a returned application.
    Submit,
    /// Endorse as an intermediate tier (進達).
    Endorse,
    /// Check or decide as the root municipality (審査・決裁).
    Approve,
}

/// One target waiting for the user.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub application_id: String,
    pub number: String,
    pub applicant_name: String,
    pub contractor_name: String,
    pub municipality_name: String,
    pub state: String,
    pub state_label: Option<Label>,
    /// The route step that waits (e.g. 係長決裁), when the state has a route.
    pub step_label: Option<Label>,
    pub task: Task,
    pub filed_at: DateTime<Utc>,
    /// When the instance last moved: how long it has waited.
    pub waiting_since: DateTime<Utc>,
    /// The user it waits for, when it waits for someone this user is the registered deputy
    /// of (代決) rather than for the user.
    pub on_behalf_of: Option<String>,
}

/// The inbox: the first `limit` entries, longest waiting first, and the counts of all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inbox {
    pub entries: Vec<Entry>,
    pub total: usize,
    pub submit: usize,
    pub endorse: usize,
    pub approve: usize,
}

#[derive(Debug, FromQueryResult)]
struct Candidate {
    application_id: String,
    number: String,
    filed_at: DateTime<Utc>,
    applicant_id: String,
    contractor_id: String,
    municipality_id: String,
    workflow_id: String,
    workflow_version: i32,
    state: String,
    submitter: String,
    context: String,
    progress: String,
    updated_at: DateTime<Utc>,
}

/// Per definition, what each state can wait for: the initial state for its submitter, and each
/// route state for the route's event.
fn waiting_states(workflows: &WorkflowSet) -> BTreeMap<(String, i32), BTreeMap<String, Task>> {
    workflows
        .iter()
        .filter(|rt| rt.id() == WORKFLOW)
        .map(|rt| {
            let d = rt.describe();
            let route_event: BTreeMap<&str, &str> = d
                .routes
                .iter()
                .map(|r| (r.id.as_str(), r.event.as_str()))
                .collect();
            let mut states = BTreeMap::from([(d.initial.clone(), Task::Submit)]);
            for s in &d.states {
                let Some(route) = &s.route else { continue };
                let task = match route_event.get(route.as_str()) {
                    Some(&"endorse") => Task::Endorse,
                    _ => Task::Approve,
                };
                states.insert(s.id.clone(), task);
            }
            let version = i32::try_from(rt.version()).unwrap_or(i32::MAX);
            ((rt.id().to_owned(), version), states)
        })
        .collect()
}

/// The targets waiting for `actor` (whose visibility is `viewer`).
pub async fn inbox(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    viewer: &Viewer,
    actor: &Actor<'_>,
    limit: usize,
) -> Result<Inbox, ApiError> {
    let by_definition = waiting_states(workflows);
    // Drafts wait for their submitter alone; route states for whoever holds the step.
    let states_of = |wanted: fn(Task) -> bool| -> BTreeSet<String> {
        by_definition
            .values()
            .flat_map(|s| {
                s.iter()
                    .filter(|(_, t)| wanted(**t))
                    .map(|(k, _)| k.clone())
            })
            .collect()
    };
    let drafts = states_of(|t| t == Task::Submit);
    let routes = states_of(|t| t != Task::Submit);
    let scope = Scope::new(viewer);
    let mut sql = Sql::new(db.get_database_backend());
    scope.with(&mut sql);
    sql.push(
        "SELECT a.id AS application_id, a.number AS number, a.created_at AS filed_at, \
         a.applicant_id AS applicant_id, a.contractor_id AS contractor_id, \
         t.municipality_id AS municipality_id, i.workflow_id AS workflow_id, \
         i.workflow_version AS workflow_version, i.state AS state, i.submitter AS submitter, \
         i.context AS context, i.progress AS progress, i.updated_at AS updated_at \
         FROM application_targets t \
         JOIN subcontract_applications a ON a.id = t.application_id \
         JOIN workflow_instances i ON i.id = t.instance_id WHERE ",
    )
    .push("((")
    .in_list("i.state", &drafts)
    .push(" AND i.submitter = ")
    .bind(actor.id.to_owned())
    .push(") OR (")
    .in_list("i.state", &routes)
    .push(" AND ");
    scope.target(&mut sql);
    sql.push(")) ORDER BY i.updated_at, a.number");
    let candidates = Candidate::find_by_statement(sql.statement())
        .all(db)
        .await?;

    let mut inbox = Inbox::default();
    let mut waiting = Vec::new();
    for c in candidates {
        let Some(task) = by_definition
            .get(&(c.workflow_id.clone(), c.workflow_version))
            .and_then(|s| s.get(&c.state))
            .copied()
        else {
            continue;
        };
        let Some(rt) = workflows.get(
            &c.workflow_id,
            u32::try_from(c.workflow_version).unwrap_or(0),
        ) else {
            continue;
        };
        let mut by_proxy = None;
        let step_label = if task == Task::Submit {
            if c.submitter != actor.id {
                continue;
            }
            None
        } else {
            let stored = StoredInstance {
                state: c.state.clone(),
                submitter: c.submitter.clone(),
                context: parse(&c.context)?,
                progress: parse(&c.progress)?,
            };
            let Some(w) = rt
                .waiting_for(&stored)
                .map_err(|e| ApiError::internal(format!("{e:?}")))?
            else {
                continue;
            };
            let holds = |grants: &[Grant]| {
                w.grants.iter().any(|want| {
                    grants
                        .iter()
                        .any(|g| g.role == want.role && (want.org.is_none() || g.org == want.org))
                })
            };
            if holds(actor.grants) {
                by_proxy = None;
            } else if let Some(d) = actor.deputy_for.iter().find(|d| holds(&d.grants)) {
                by_proxy = Some(d.principal.clone());
            } else {
                continue;
            }
            Some(w.label)
        };
        match task {
            Task::Submit => inbox.submit += 1,
            Task::Endorse => inbox.endorse += 1,
            Task::Approve => inbox.approve += 1,
        }
        inbox.total += 1;
        if waiting.len() < limit {
            let state_label = rt.state_label(&c.state);
            waiting.push((c, task, step_label, state_label, by_proxy));
        }
    }
    let names = crate::services::chains::names(
        db,
        waiting.iter().flat_map(|(c, ..)| {
            [
                c.applicant_id.clone(),
                c.contractor_id.clone(),
                c.municipality_id.clone(),
            ]
        }),
    )
    .await?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_default();
    inbox.entries = waiting
        .into_iter()
        .map(|(c, task, step_label, state_label, on_behalf_of)| Entry {
            applicant_name: name(&c.applicant_id),
            contractor_name: name(&c.contractor_id),
            municipality_name: name(&c.municipality_id),
            application_id: c.application_id,
            number: c.number,
            state: c.state,
            state_label,
            step_label,
            task,
            filed_at: c.filed_at,
            waiting_since: c.updated_at,
            on_behalf_of,
        })
        .collect();
    Ok(inbox)
}

fn parse(text: &str) -> Result<serde_json::Value, ApiError> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::internal(format!("a stored instance is not JSON: {e}")))
}
