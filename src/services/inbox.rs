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
//! Each instance row carries who it waits for (`waiting_org`, `waiting_roles`, written with
//! every transition), so the database counts the targets waiting for the user and returns the
//! first page of them, longest waiting first, with one indexed query each; the engine then
//! reads only that page, for the step's label.

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
    waiting_org: Option<String>,
    waiting_roles: Option<String>,
}

#[derive(Debug, FromQueryResult)]
struct StateCount {
    workflow_id: String,
    workflow_version: i32,
    state: String,
    n: i64,
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

/// What a state of a definition waits for, if anything.
fn task_of(
    by_definition: &BTreeMap<(String, i32), BTreeMap<String, Task>>,
    workflow: &str,
    version: i32,
    state: &str,
) -> Option<Task> {
    by_definition
        .get(&(workflow.to_owned(), version))
        .and_then(|s| s.get(state))
        .copied()
}

/// `LIKE` pattern of a role in `waiting_roles` (see [`instances::waiting_columns`]).
fn role_pattern(role: &str) -> String {
    let escaped = role
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("% {escaped} %")
}

/// Whether a step waiting for `roles` in `org` (empty: in no organisation) waits for a holder
/// of `grants`: the engine's rule (a step in no organisation takes the role from anywhere).
fn holds(grants: &[Grant], org: &str, roles: &str) -> bool {
    grants.iter().any(|g| {
        roles.split(' ').any(|r| !r.is_empty() && r == g.role)
            && (org.is_empty() || g.org.as_deref() == Some(org))
    })
}

/// The condition for a row `i` waiting for a holder of one of `grants` (see [`holds`]): first
/// the organisations, which the index on `waiting_org` serves, then the roles.
fn waits_for(sql: &mut Sql, grants: &[&Grant]) {
    if grants.is_empty() {
        sql.push("1 = 0");
        return;
    }
    let orgs: BTreeSet<String> = grants
        .iter()
        .filter_map(|g| g.org.clone())
        .chain([String::new()])
        .collect();
    sql.in_list("i.waiting_org", &orgs).push(" AND (");
    for (ix, g) in grants.iter().enumerate() {
        if ix > 0 {
            sql.push(" OR ");
        }
        sql.push("(i.waiting_roles LIKE ")
            .bind(role_pattern(&g.role))
            .push(" ESCAPE '\\' AND (i.waiting_org = ''");
        if let Some(org) = &g.org {
            sql.push(" OR i.waiting_org = ").bind(org.clone());
        }
        sql.push("))");
    }
    sql.push(")");
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
    let drafts: BTreeSet<String> = by_definition
        .values()
        .flat_map(|s| {
            s.iter()
                .filter(|(_, t)| **t == Task::Submit)
                .map(|(k, _)| k.clone())
        })
        .collect();
    // The user's grants and those of the people the user may decide for (代決).
    let grants: Vec<&Grant> = actor
        .grants
        .iter()
        .chain(actor.deputy_for.iter().flat_map(|d| d.grants.iter()))
        .collect();
    let scope = Scope::new(viewer);
    // Drafts wait for their submitter alone; a route step for whoever holds its roles in its
    // organisation, as its row says. Both among the targets the user may see.
    let filter = |sql: &mut Sql| {
        sql.push(
            " FROM application_targets t \
             JOIN subcontract_applications a ON a.id = t.application_id \
             JOIN workflow_instances i ON i.id = t.instance_id WHERE ((",
        )
        .in_list("i.state", &drafts)
        .push(" AND i.submitter = ")
        .bind(actor.id.to_owned())
        .push(") OR (");
        waits_for(sql, &grants);
        sql.push(" AND ");
        scope.target(sql);
        sql.push("))");
    };
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    scope.with(&mut sql);
    sql.push(
        "SELECT i.workflow_id AS workflow_id, i.workflow_version AS workflow_version, \
         i.state AS state, COUNT(*) AS n",
    );
    filter(&mut sql);
    sql.push(" GROUP BY i.workflow_id, i.workflow_version, i.state");
    let counts = StateCount::find_by_statement(sql.statement())
        .all(db)
        .await?;
    let mut inbox = Inbox::default();
    for c in counts {
        let Some(task) = task_of(&by_definition, &c.workflow_id, c.workflow_version, &c.state)
        else {
            continue;
        };
        let n = usize::try_from(c.n).unwrap_or(0);
        match task {
            Task::Submit => inbox.submit += n,
            Task::Endorse => inbox.endorse += n,
            Task::Approve => inbox.approve += n,
        }
        inbox.total += n;
    }

    let mut sql = Sql::new(backend);
    scope.with(&mut sql);
    sql.push(
        "SELECT a.id AS application_id, a.number AS number, a.created_at AS filed_at, \
         a.applicant_id AS applicant_id, a.contractor_id AS contractor_id, \
         t.municipality_id AS municipality_id, i.workflow_id AS workflow_id, \
         i.workflow_version AS workflow_version, i.state AS state, i.submitter AS submitter, \
         i.context AS context, i.progress AS progress, i.updated_at AS updated_at, \
         i.waiting_org AS waiting_org, i.waiting_roles AS waiting_roles",
    );
    filter(&mut sql);
    sql.push(" ORDER BY i.updated_at, a.number LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let candidates = Candidate::find_by_statement(sql.statement())
        .all(db)
        .await?;

    let mut waiting = Vec::new();
    for c in candidates {
        let Some(task) = task_of(&by_definition, &c.workflow_id, c.workflow_version, &c.state)
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
        let step_label = match &c.waiting_roles {
            Some(roles) if task != Task::Submit => {
                let org = c.waiting_org.as_deref().unwrap_or_default();
                if !holds(actor.grants, org, roles) {
                    by_proxy = actor
                        .deputy_for
                        .iter()
                        .find(|d| holds(&d.grants, org, roles))
                        .map(|d| d.principal.clone());
                }
                let stored = StoredInstance {
                    state: c.state.clone(),
                    submitter: c.submitter.clone(),
                    context: parse(&c.context)?,
                    progress: parse(&c.progress)?,
                };
                rt.waiting_for(&stored)
                    .map_err(|e| ApiError::internal(format!("{e:?}")))?
                    .map(|w| w.label)
            }
            _ => None,
        };
        let state_label = rt.state_label(&c.state);
        waiting.push((c, task, step_label, state_label, by_proxy));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: &str, org: Option<&str>) -> Grant {
        Grant {
            role: role.to_owned(),
            org: org.map(str::to_owned),
        }
    }

    #[test]
    fn a_step_waits_for_its_roles_in_its_organisation_only() {
        let officer = [grant("officer", Some("meguro"))];
        assert!(holds(&officer, "meguro", " officer "));
        assert!(holds(&officer, "meguro", " chief officer "));
        assert!(!holds(&officer, "setagaya", " officer "));
        assert!(!holds(&officer, "meguro", " chief "));
        assert!(!holds(&officer, "meguro", " officers "));
        // A step in no organisation takes the role from anywhere.
        assert!(holds(&officer, "", " officer "));
        assert!(!holds(&[grant("officer", None)], "meguro", " officer "));
        assert!(!holds(&officer, "meguro", " "));
    }

    #[test]
    fn a_role_pattern_matches_the_role_alone() {
        assert_eq!(role_pattern("officer"), "% officer %");
        // `_` and `%` in a role name are literal, not wildcards.
        assert_eq!(role_pattern("cs_gold"), "% cs\\_gold %");
        assert_eq!(role_pattern("a%b"), "% a\\%b %");
    }
}
