//! What an outbox notification says and to whom: its recipients resolved to e-mail addresses
//! on the day of delivery, and the data its mail template renders.
//!
//! Recipients are the groups a `notify` effect names, or explicit entries:
//! - `submitter`: the instance's submitter;
//! - `applicant_org` / `root_consignor`: the organisation's notification addresses
//!   (`organisations.contacts`) or, when it has none, its members holding `contractor`
//!   (applicant) or `officer` (root consignor);
//! - `next_actors`: holders of the roles of the step the instance waited at when the
//!   notification was written (kept in its payload), in that step's organisation;
//! - `post_reviewers`: the absent approver who owes the 後閲, else the holders of the step's role;
//! - `role_holders`: holders of the effect's `role` in the organisations the instance involves;
//! - `{"user": id}` and `{"role": r, "org": o}`: that user; holders of `r` in `o`;
//! - `{"organisation": o, "fallback_role": r}`: `o`'s notification addresses, or its holders of
//!   `r` when it has none (reminders about evidence and obligations, which have no instance).
//!
//! Role holders are users with a membership in effect on the delivery day and an e-mail address.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use entity::workflow_instance;
use entity::{evidence_record, membership, organisation, outbox, subcontract_application, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::domain::evidence::EvidenceKind;
use crate::services::users::in_effect;
use crate::workflow::{StoredInstance, WorkflowRuntime, WorkflowSet};

/// A notification ready to render and send.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub template: String,
    /// Sorted, without duplicates (compared case-insensitively).
    pub addresses: Vec<String>,
    /// The template's data; `link` is absolute.
    pub data: Value,
}

/// Why a notification cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// Retrying cannot help until someone changes the data (recorded as the row's error).
    #[error("{0}")]
    Unusable(String),
}

fn unusable(message: impl Into<String>) -> PrepareError {
    PrepareError::Unusable(message.into())
}

/// The instance a notification belongs to, with its definition.
struct Subject<'w> {
    row: workflow_instance::Model,
    rt: &'w dyn WorkflowRuntime,
    stored: StoredInstance,
}

/// Resolves the row's recipients on `today` and builds its template data.
pub async fn prepare(
    db: &impl ConnectionTrait,
    workflows: &WorkflowSet,
    row: &outbox::Model,
    today: NaiveDate,
    public_url: &str,
) -> Result<Prepared, PrepareError> {
    let template = row
        .template
        .clone()
        .ok_or_else(|| unusable("the notification names no template"))?;
    let payload: Value =
        serde_json::from_str(&row.payload).map_err(|e| unusable(format!("payload: {e}")))?;
    let recipients: Value =
        serde_json::from_str(&row.recipients).map_err(|e| unusable(format!("recipients: {e}")))?;
    let subject = match &row.instance_id {
        Some(id) => Some(load_subject(db, workflows, id).await?),
        None => None,
    };

    let mut addresses = BTreeSet::new();
    for spec in specs(&recipients) {
        for address in resolve(db, subject.as_ref(), &payload, spec, today).await? {
            addresses.insert(address);
        }
    }
    let data = template_data(db, subject.as_ref(), &payload, public_url).await?;
    Ok(Prepared {
        template,
        addresses: dedup_case_insensitive(addresses),
        data,
    })
}

fn specs(recipients: &Value) -> Vec<&Value> {
    match recipients {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn dedup_case_insensitive(addresses: BTreeSet<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    addresses
        .into_iter()
        .filter(|a| seen.insert(a.to_lowercase()))
        .collect()
}

async fn load_subject<'w>(
    db: &impl ConnectionTrait,
    workflows: &'w WorkflowSet,
    id: &str,
) -> Result<Subject<'w>, PrepareError> {
    let row = workflow_instance::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| unusable(format!("instance {id} does not exist")))?;
    let version = u32::try_from(row.workflow_version).unwrap_or(0);
    let rt = workflows
        .get(&row.workflow_id, version)
        .map(AsRef::as_ref)
        .ok_or_else(|| {
            unusable(format!(
                "definition {} v{} is not loaded",
                row.workflow_id, row.workflow_version
            ))
        })?;
    let parse = |what: &str, text: &str| {
        serde_json::from_str(text).map_err(|e| unusable(format!("instance {what}: {e}")))
    };
    let stored = StoredInstance {
        state: row.state.clone(),
        submitter: row.submitter.clone(),
        context: parse("context", &row.context)?,
        progress: parse("progress", &row.progress)?,
    };
    Ok(Subject { row, rt, stored })
}

fn scope(subject: Option<&Subject<'_>>, name: &str) -> Result<Option<String>, PrepareError> {
    let Some(s) = subject else {
        return Ok(None);
    };
    s.rt.scope_organisation(&s.stored, name)
        .map_err(|e| unusable(format!("{e:?}")))
}

async fn resolve(
    db: &impl ConnectionTrait,
    subject: Option<&Subject<'_>>,
    payload: &Value,
    spec: &Value,
    today: NaiveDate,
) -> Result<Vec<String>, PrepareError> {
    let need_instance = || unusable(format!("recipient {spec} needs an instance"));
    match spec {
        Value::String(group) => match group.as_str() {
            "submitter" => {
                let s = subject.ok_or_else(need_instance)?;
                user_addresses(db, [s.row.submitter.clone()]).await
            }
            "applicant_org" => match scope(subject, "applicant")? {
                Some(org) => organisation_addresses(db, &org, "contractor", today).await,
                None => Ok(Vec::new()),
            },
            "root_consignor" => match scope(subject, "root_consignor")? {
                Some(org) => organisation_addresses(db, &org, "officer", today).await,
                None => Ok(Vec::new()),
            },
            "next_actors" => {
                let waiting = match payload.pointer("/event/waiting").or(payload.get("waiting")) {
                    Some(w) if !w.is_null() => Some(w.clone()),
                    _ => match subject {
                        Some(s) => {
                            s.rt.waiting_for(&s.stored)
                                .map_err(|e| unusable(format!("{e:?}")))?
                                .map(|w| json!(w))
                        }
                        None => None,
                    },
                };
                let grants = waiting
                    .as_ref()
                    .and_then(|w| w.get("grants"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut out = Vec::new();
                for g in &grants {
                    out.extend(grant_addresses(db, g, today).await?);
                }
                Ok(out)
            }
            "post_reviewers" => {
                let pr = payload.get("post_review").unwrap_or(&Value::Null);
                match pr.get("principal").and_then(Value::as_str) {
                    Some(principal) => user_addresses(db, [principal.to_owned()]).await,
                    None => grant_addresses(db, pr, today).await,
                }
            }
            "role_holders" => {
                let s = subject.ok_or_else(need_instance)?;
                let role = payload
                    .pointer("/params/role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unusable("role_holders needs a role"))?;
                let orgs =
                    s.rt.organisations(&s.stored)
                        .map_err(|e| unusable(format!("{e:?}")))?;
                let mut out = Vec::new();
                for org in orgs {
                    out.extend(role_holders(db, role, Some(&org), today).await?);
                }
                Ok(out)
            }
            other => Err(unusable(format!("unknown recipient group {other}"))),
        },
        Value::Object(entry) => {
            if let Some(user_id) = entry.get("user").and_then(Value::as_str) {
                return user_addresses(db, [user_id.to_owned()]).await;
            }
            if let Some(org) = entry.get("organisation").and_then(Value::as_str) {
                let fallback = entry
                    .get("fallback_role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unusable(format!("recipient {spec} names no fallback_role")))?;
                return organisation_addresses(db, org, fallback, today).await;
            }
            grant_addresses(db, spec, today).await
        }
        other => Err(unusable(format!("recipient {other} is not understood"))),
    }
}

/// `{"role": r, "org": o?}` → the holders' addresses.
async fn grant_addresses(
    db: &impl ConnectionTrait,
    grant: &Value,
    today: NaiveDate,
) -> Result<Vec<String>, PrepareError> {
    let Some(role) = grant.get("role").and_then(Value::as_str) else {
        return Err(unusable(format!("recipient {grant} names no role")));
    };
    let org = grant.get("org").and_then(Value::as_str);
    role_holders(db, role, org, today).await
}

/// Addresses of the users holding `role` (in `org`, when given) on `day`.
pub async fn role_holders(
    db: &impl ConnectionTrait,
    role: &str,
    org: Option<&str>,
    day: NaiveDate,
) -> Result<Vec<String>, PrepareError> {
    let mut query = membership::Entity::find()
        .filter(membership::Column::Role.eq(role))
        .filter(in_effect(
            membership::Column::ValidFrom,
            membership::Column::ValidUntil,
            day,
        ));
    if let Some(org) = org {
        query = query.filter(membership::Column::OrganisationId.eq(org));
    }
    let users: BTreeSet<String> = query
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    user_addresses(db, users).await
}

async fn user_addresses(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = String>,
) -> Result<Vec<String>, PrepareError> {
    let ids: Vec<String> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|u| u.email)
        .filter(|e| !e.trim().is_empty())
        .collect())
}

/// The organisation's notification addresses, or its holders of `fallback_role` when it
/// declares none.
async fn organisation_addresses(
    db: &impl ConnectionTrait,
    org: &str,
    fallback_role: &str,
    day: NaiveDate,
) -> Result<Vec<String>, PrepareError> {
    let contacts: Vec<String> = organisation::Entity::find_by_id(org)
        .one(db)
        .await?
        .and_then(|o| serde_json::from_str(&o.contacts).ok())
        .unwrap_or_default();
    if contacts.is_empty() {
        role_holders(db, fallback_role, Some(org), day).await
    } else {
        Ok(contacts)
    }
}

async fn organisation_name(db: &impl ConnectionTrait, id: &str) -> Result<String, DbErr> {
    Ok(organisation::Entity::find_by_id(id)
        .one(db)
        .await?
        .map_or_else(|| id.to_owned(), |o| o.name_ja))
}

/// The data every template may read (see `frontend/templates/mail/`); fields that do not
/// apply are `null`.
async fn template_data(
    db: &impl ConnectionTrait,
    subject: Option<&Subject<'_>>,
    payload: &Value,
    public_url: &str,
) -> Result<Value, PrepareError> {
    let event = payload.get("event").unwrap_or(&Value::Null);
    let mut path = "/".to_owned();
    let mut application = Value::Null;
    let mut state = Value::Null;
    if let Some(s) = subject {
        path = format!("/instances/{}", s.row.id);
        let shown_state = event
            .get("to")
            .and_then(Value::as_str)
            .unwrap_or(&s.row.state);
        state = json!(s.rt.state_label(shown_state));
        if let Some(id) = s
            .stored
            .context
            .get("application_id")
            .and_then(Value::as_str)
        {
            if let Some(a) = subcontract_application::Entity::find_by_id(id)
                .one(db)
                .await?
            {
                path = format!("/applications/{}", a.id);
                let root = scope(subject, "root_consignor")?.unwrap_or_default();
                application = json!({
                    "id": a.id,
                    "number": a.number,
                    "applicant": organisation_name(db, &a.applicant_id).await?,
                    "contractor": organisation_name(db, &a.contractor_id).await?,
                    "root_consignor": organisation_name(db, &root).await?,
                });
            }
        }
    }
    // Notifications without an instance name their screen (e.g. obligations: the inbox).
    if let Some(p) = payload.get("path").and_then(Value::as_str) {
        if p.starts_with('/') {
            path = p.to_owned();
        }
    }
    let step = step_label(subject, payload);
    let mut evidence = Value::Null;
    let evidence_id = payload
        .pointer("/warning/detail/evidence_id")
        .or_else(|| payload.get("evidence_id"))
        .and_then(Value::as_str);
    if let Some(id) = evidence_id {
        if let Some(e) = evidence_record::Entity::find_by_id(id).one(db).await? {
            path = format!("/evidence/{}", e.id);
            let kind = EvidenceKind::parse(&e.kind).map(EvidenceKind::label);
            evidence = json!({
                "id": e.id,
                "kind": kind.unwrap_or_else(|| crate::workflow::definition::Label {
                    ja: e.kind.clone(),
                    en: e.kind.clone(),
                }),
                "organisation": organisation_name(db, &e.organisation_id).await?,
                "valid_until": e.valid_until.map(|d| d.to_string()),
            });
        }
    }
    Ok(json!({
        "link": format!("{}{path}", public_url.trim_end_matches('/')),
        "application": application,
        "state": state,
        "step": step,
        "comment": event.get("comment").cloned().unwrap_or(Value::Null),
        "timer": payload.get("timer").cloned().unwrap_or(Value::Null),
        "evidence": evidence,
        "obligation": payload.get("obligation").cloned().unwrap_or(Value::Null),
        "digest": payload.get("digest").cloned().unwrap_or(Value::Null),
    }))
}

/// The label of the step the notification is about: the one waited at, or the one a 後閲
/// concerns (looked up in the instance's route; its id when the route has moved on).
fn step_label(subject: Option<&Subject<'_>>, payload: &Value) -> Value {
    if let Some(label) = payload
        .pointer("/event/waiting/label")
        .or_else(|| payload.pointer("/waiting/label"))
        .filter(|l| !l.is_null())
    {
        return label.clone();
    }
    let Some(step) = payload.pointer("/post_review/step").and_then(Value::as_str) else {
        return Value::Null;
    };
    subject
        .and_then(|s| s.stored.progress.pointer("/route/steps"))
        .and_then(Value::as_array)
        .and_then(|steps| steps.iter().find(|s| s["id"] == step))
        .map(|s| s["label"].clone())
        .unwrap_or_else(|| json!({ "ja": step, "en": step }))
}
