//! Evidence-expiry reminders (BRIEF 4): the owner organisation and the root municipality's
//! officers are reminded `evidence_reminder_days` days before a verified record's `valid_until`
//! (90, 30 and 7 by default), and told when it expired (written by the evidence sweep, beside
//! the cascade it runs).
//!
//! Each (record, stage) is one outbox row keyed `evidence:<id>:expiring:<days>`, UNIQUE, so any
//! number of schedulers racing write it once. A pass sends only the nearest stage reached: a
//! record first seen 20 days before expiry gets the 30-day reminder, not the 90-day one too.
//! A record stops being reminded once it lapsed, was revoked, or is superseded by a verified
//! record of the same kind that lasts longer; an ISMAP registration whose renewal is pending
//! (更新申請中) stays valid, so it is not reminded either.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use entity::{chain_node, evidence_record};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::{json, Value};

use crate::services::db_time::to_db_precision;
use crate::services::idempotency::Insertion;
use crate::services::outbox::{self, OutboxRow, MAIL_EFFECT};
use crate::workflow::Now;

/// Node states in which a chain still relies on its contractor's evidence.
const LIVE_NODE_STATES: &[&str] = &["applying", "permitted", "suspended"];

/// A reminder this pass wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceReminder {
    pub evidence_id: String,
    pub organisation_id: String,
    pub kind: String,
    /// The stage: days before `valid_until`.
    pub stage_days: u32,
    pub valid_until: NaiveDate,
}

/// The stage a record `days_left` days from expiry is in: the smallest configured number of
/// days not below `days_left` (none when it is further away than every stage).
pub fn stage_for(stages: &[u32], days_left: i64) -> Option<u32> {
    stages
        .iter()
        .copied()
        .filter(|s| i64::from(*s) >= days_left)
        .min()
}

/// Writes the expiry reminder of every verified record whose next stage is reached on
/// `now.today`; returns those written by this call (a row another scheduler wrote first, or
/// one written on an earlier day, is not repeated).
pub async fn remind_expiring_evidence(
    db: &impl ConnectionTrait,
    stages: &[u32],
    now: Now,
) -> Result<Vec<EvidenceReminder>, DbErr> {
    let Some(furthest) = stages.iter().copied().max() else {
        return Ok(Vec::new());
    };
    let horizon = now
        .today
        .checked_add_days(chrono::Days::new(u64::from(furthest)))
        .unwrap_or(now.today);
    let candidates = evidence_record::Entity::find()
        .filter(evidence_record::Column::VerifiedAt.is_not_null())
        .filter(evidence_record::Column::RevokedAt.is_null())
        .filter(evidence_record::Column::LapseHandledOn.is_null())
        .filter(evidence_record::Column::ValidUntil.gte(now.today))
        .filter(evidence_record::Column::ValidUntil.lte(horizon))
        .filter(
            Condition::any()
                .add(evidence_record::Column::Kind.ne("ismap"))
                .add(evidence_record::Column::RenewalPending.eq(false)),
        )
        .all(db)
        .await?;
    let mut written = Vec::new();
    for r in candidates {
        let Some(until) = r.valid_until else { continue };
        let Some(stage) = stage_for(stages, (until - now.today).num_days()) else {
            continue;
        };
        if superseded(db, &r, until).await? {
            continue;
        }
        let row = OutboxRow {
            idempotency_key: format!("evidence:{}:expiring:{stage}", r.id),
            instance_id: None,
            effect: MAIL_EFFECT.to_owned(),
            template: Some("evidence_expiring".to_owned()),
            recipients: recipients(db, &r).await?,
            payload: json!({ "evidence_id": r.id, "stage_days": stage }),
            now: to_db_precision(now.at),
        };
        if let Insertion::Inserted { .. } = outbox::enqueue(db, row).await? {
            written.push(EvidenceReminder {
                evidence_id: r.id,
                organisation_id: r.organisation_id,
                kind: r.kind,
                stage_days: stage,
                valid_until: until,
            });
        }
    }
    Ok(written)
}

/// The `evidence_expired` notification of a record that lapsed, in the caller's transaction
/// (the sweep's, beside the cascade). Keyed per record, so it is written once; nothing for a
/// record already superseded by its renewal. Returns whether it was written.
pub async fn notify_expired(
    txn: &impl ConnectionTrait,
    r: &evidence_record::Model,
    now: Now,
) -> Result<bool, DbErr> {
    if let Some(until) = r.valid_until {
        if superseded(txn, r, until).await? {
            return Ok(false);
        }
    }
    let row = OutboxRow {
        idempotency_key: format!("evidence:{}:expired", r.id),
        instance_id: None,
        effect: MAIL_EFFECT.to_owned(),
        template: Some("evidence_expired".to_owned()),
        recipients: recipients(txn, r).await?,
        payload: json!({ "evidence_id": r.id }),
        now: to_db_precision(now.at),
    };
    Ok(matches!(
        outbox::enqueue(txn, row).await?,
        Insertion::Inserted { .. }
    ))
}

/// Whether a verified, unrevoked record of the same organisation, kind, service and node lasts
/// longer (the renewal that replaces it).
async fn superseded(
    db: &impl ConnectionTrait,
    r: &evidence_record::Model,
    until: NaiveDate,
) -> Result<bool, DbErr> {
    let mut query = evidence_record::Entity::find()
        .filter(evidence_record::Column::OrganisationId.eq(r.organisation_id.as_str()))
        .filter(evidence_record::Column::Kind.eq(r.kind.as_str()))
        .filter(evidence_record::Column::Id.ne(r.id.as_str()))
        .filter(evidence_record::Column::VerifiedAt.is_not_null())
        .filter(evidence_record::Column::RevokedAt.is_null())
        .filter(evidence_record::Column::ValidUntil.gt(until));
    query = match &r.node_id {
        Some(n) => query.filter(evidence_record::Column::NodeId.eq(n.as_str())),
        None => query.filter(evidence_record::Column::NodeId.is_null()),
    };
    query = match &r.service_name {
        Some(s) => query.filter(evidence_record::Column::ServiceName.eq(s.as_str())),
        None => query,
    };
    Ok(query.one(db).await?.is_some())
}

/// The owner organisation (its addresses, else its contractors) and the officers of every
/// municipality whose chain relies on the record (the node's, when it is about one node).
async fn recipients(db: &impl ConnectionTrait, r: &evidence_record::Model) -> Result<Value, DbErr> {
    let mut nodes = chain_node::Entity::find()
        .filter(chain_node::Column::PermissionState.is_in(LIVE_NODE_STATES.iter().copied()));
    nodes = match &r.node_id {
        Some(n) => nodes.filter(chain_node::Column::Id.eq(n.as_str())),
        None => nodes.filter(chain_node::Column::ContractorId.eq(r.organisation_id.as_str())),
    };
    let items: BTreeSet<String> = nodes
        .all(db)
        .await?
        .into_iter()
        .map(|n| n.item_id)
        .collect();
    let municipalities: BTreeSet<String> =
        crate::services::obligations::municipalities_of_items(db, items)
            .await?
            .into_values()
            .collect();
    let mut out = vec![json!({ "organisation": r.organisation_id, "fallback_role": "contractor" })];
    out.extend(
        municipalities
            .into_iter()
            .map(|m| json!({ "role": "officer", "org": m })),
    );
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_stage_reached_is_the_one_sent() {
        let stages = [90, 30, 7];
        assert_eq!(stage_for(&stages, 91), None);
        assert_eq!(stage_for(&stages, 90), Some(90));
        assert_eq!(stage_for(&stages, 31), Some(90));
        assert_eq!(stage_for(&stages, 30), Some(30));
        assert_eq!(stage_for(&stages, 8), Some(30));
        assert_eq!(stage_for(&stages, 7), Some(7));
        assert_eq!(stage_for(&stages, 0), Some(7));
    }
}
