//! The `subcontract` kind: a subcontract application (再委託申請) travelling up its chain.
//!
//! The application is prepared by the parent tier's contractor, endorsed by every intermediate
//! tier on the way up and decided by the root consignor (番号法 art. 10; BRIEF C2, C3).

use serde::{Deserialize, Serialize};

use crate::domain::policy::{self, ChainFacts, Policy};
use crate::workflow::definition::Label;
use crate::workflow::model::{OrgScope, Step, StepKind};
use crate::workflow::registry::{GuardInput, Registry, Unmet, WorkflowContext};

/// The context of one subcontract application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubcontractContext {
    /// The organisation that files the application (the parent tier's contractor).
    pub applicant_org: String,
    /// The municipality at the top of the chain; it alone gives permission.
    pub root_consignor_org: String,
    /// Tiers between the applicant and the root that endorse it, nearest to the applicant first.
    #[serde(default)]
    pub intermediate_orgs: Vec<String>,
    /// The chain node applied for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The application (one per target municipality shares it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// What the domain knows of the chain on the decision date, given to the guards for one
    /// event and never stored.
    #[serde(default, skip_serializing)]
    pub facts: Option<DecisionFacts>,
}

/// The chain's facts and the requirement policy of the definition, as the services load them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionFacts {
    pub chain: ChainFacts,
    pub policy: Policy,
    /// Significant changes (重要な変更) the node would make without the assessment recorded in
    /// advance; `requirements_met` reports each beside the evidence requirements.
    #[serde(default)]
    pub significant_changes: Vec<Unmet>,
}

fn facts_missing() -> Unmet {
    Unmet::new(
        "chain_facts_unavailable",
        "委託の連鎖の情報を確認できないため判断できません",
        "The chain's facts are not available, so this cannot be decided",
    )
}

impl WorkflowContext for SubcontractContext {
    fn organisation(&self, scope: &str) -> Option<&str> {
        match scope {
            "root_consignor" => Some(&self.root_consignor_org),
            "applicant" => Some(&self.applicant_org),
            _ => None,
        }
    }

    /// The intermediate tiers prepare, endorse and supervise the application (BRIEF C3, C8),
    /// so they follow it before, during and after their own endorsement.
    fn further_organisations(&self) -> &[String] {
        &self.intermediate_orgs
    }
}

/// One endorsement step per intermediate tier, nearest to the applicant first.
fn intermediate_tiers(ctx: &SubcontractContext) -> Vec<Step> {
    ctx.intermediate_orgs
        .iter()
        .enumerate()
        .map(|(i, org)| Step {
            id: format!("endorse_{}", i + 1),
            label: Label {
                ja: format!("中間委託先の進達 ({org})"),
                en: format!("Endorsement by intermediate tier ({org})"),
            },
            kind: StepKind::Single {
                role: "contractor".to_owned(),
            },
            org: Some(OrgScope::Fixed(org.clone())),
            skippable: false,
            pull_up: false,
        })
        .collect()
}

/// The registry of the `subcontract` kind.
pub fn registry() -> Registry<SubcontractContext> {
    type In<'a> = GuardInput<'a, SubcontractContext>;
    let mut r = Registry::new("subcontract");
    r.org_scope("root_consignor").org_scope("applicant");
    r.step_provider("intermediate_tiers", intermediate_tiers);
    r.simple_guard(
        "has_intermediate_tiers",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| {
            if i.instance.ctx.intermediate_orgs.is_empty() {
                unmet.push(Unmet::new(
                    "no_intermediate_tiers",
                    "進達する中間の委託先がありません",
                    "There is no intermediate tier to endorse",
                ));
            }
        },
    );
    r.simple_guard(
        "no_intermediate_tiers",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| {
            if !i.instance.ctx.intermediate_orgs.is_empty() {
                unmet.push(Unmet::new(
                    "endorsement_required",
                    "中間の委託先の進達が必要です",
                    "The intermediate tiers must endorse first",
                ));
            }
        },
    );
    r.simple_guard(
        "deletion_certificate_recorded",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| {
            let Some(f) = &i.instance.ctx.facts else {
                unmet.push(facts_missing());
                return;
            };
            let recorded = f.chain.node.evidence.iter().any(|e| {
                e.kind == crate::domain::evidence::EvidenceKind::DeletionCertificate
                    && e.verified
                    && !e.revoked
            });
            if !recorded {
                unmet.push(Unmet::new(
                    "deletion_certificate_missing",
                    "廃棄証明(または返却の記録)が確認されていません",
                    "No verified deletion or return certificate is recorded",
                ));
            }
        },
    );
    r.simple_guard(
        "chain_in_force",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| match &i.instance.ctx.facts {
            Some(f) => unmet.extend(policy::chain_in_force(&f.chain, i.now.today)),
            None => unmet.push(facts_missing()),
        },
    );
    r.guard(
        "requirements_met",
        Box::new(|params: &toml::Table| {
            // With requirements: the policy is declared here. Without: the policy declared on
            // the decision applies (the services load it from this file into the facts).
            let declared = if params.is_empty() {
                None
            } else {
                Some(Policy::from_params(params)?)
            };
            Ok(Box::new(move |i: &In<'_>, unmet: &mut Vec<Unmet>| {
                let Some(f) = &i.instance.ctx.facts else {
                    unmet.push(facts_missing());
                    return;
                };
                let policy = declared.as_ref().unwrap_or(&f.policy);
                unmet.extend(policy::evaluate(policy, &f.chain, i.now.today).unmet);
                unmet.extend(f.significant_changes.iter().cloned());
            })
                as Box<
                    dyn crate::workflow::registry::Guard<SubcontractContext>,
                >)
        }),
    );
    r
}
