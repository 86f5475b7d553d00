//! Behaviour of the pure core: every route convention, every rejection reason, version pinning.

use chrono::{NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};

use super::kinds::subcontract::{self, DecisionFacts, SubcontractContext};
use super::kinds::workload::{self, WorkloadContext};
use super::model::{ActMode, Actor, Deputyship, EventInput, Grant, Instance, Now};
use super::registry::Vocabulary;
use super::{compile, CompiledWorkflow, Kinds, RejectionKind};
use crate::domain::policy::{ChainFacts, EvidenceFact, NodeFacts, Policy};

const SUBCONTRACT: &str = include_str!("../../workflows/subcontract_permission.toml");

fn now() -> Now {
    Now {
        at: Utc
            .with_ymd_and_hms(2026, 4, 10, 1, 0, 0)
            .single()
            .unwrap_or_default(),
        today: NaiveDate::from_ymd_opt(2026, 4, 10).unwrap_or_default(),
    }
}

fn wf() -> CompiledWorkflow<SubcontractContext> {
    match compile(
        "subcontract_permission.toml",
        SUBCONTRACT,
        &subcontract::registry(),
        &Vocabulary::product(),
    ) {
        Ok(wf) => wf,
        Err(e) => panic!("the product definition must compile: {e:?}"),
    }
}

/// A person with roles in organisations.
struct P {
    id: &'static str,
    grants: Vec<Grant>,
    deputy_for: Vec<Deputyship>,
}

fn grant(role: &str, org: &str) -> Grant {
    Grant {
        role: role.to_owned(),
        org: Some(org.to_owned()),
    }
}

impl P {
    fn new(id: &'static str, roles: &[(&str, &str)]) -> Self {
        Self {
            id,
            grants: roles.iter().map(|(r, o)| grant(r, o)).collect(),
            deputy_for: Vec::new(),
        }
    }
    fn actor(&self) -> Actor<'_> {
        Actor {
            id: self.id,
            grants: &self.grants,
            deputy_for: &self.deputy_for,
        }
    }
}

const CITY: &str = "meguro";
const FED: &str = "tokyo_kokuhoren";
const CENTRAL: &str = "kokuho_chuokai";

/// Verified evidence of `org` for every requirement of a non-cloud node, its NDA naming
/// `parent`, valid through the decision date and the node's period.
fn evidence_of(org: &str, parent: &str) -> Vec<EvidenceFact> {
    use crate::domain::evidence::EvidenceKind as K;
    [K::Nda, K::StructureChart, K::Safeguards, K::Iso27001]
        .into_iter()
        .map(|kind| EvidenceFact {
            id: format!("{org}-{}", kind.as_str()),
            kind,
            organisation_id: org.to_owned(),
            node_id: None,
            service_name: None,
            covered_services: Vec::new(),
            counterparty_organisation_id: (kind == K::Nda).then(|| parent.to_owned()),
            valid_from: NaiveDate::from_ymd_opt(2025, 4, 1),
            valid_until: NaiveDate::from_ymd_opt(2028, 3, 31),
            renewal_pending: false,
            verified: true,
            revoked: false,
        })
        .collect()
}

fn node_facts(id: &str, tier: u32, org: &str, parent: &str) -> NodeFacts {
    NodeFacts {
        node_id: id.to_owned(),
        tier,
        organisation_id: org.to_owned(),
        organisation_name: org.to_owned(),
        parent_organisation_id: Some(parent.to_owned()),
        hosts_environment: false,
        cloud_classification: None,
        service_name: None,
        permission_state: if tier == 1 { "permitted" } else { "applying" }.to_owned(),
        period_start: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default(),
        period_end: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap_or_default(),
        evidence: evidence_of(org, parent),
    }
}

/// What the services would load for a chain whose every requirement is met: the new node of
/// `vendor` under `parents` (nearest first, each in force).
fn good_facts(vendor: &str, parents: &[&str]) -> DecisionFacts {
    let mut ancestors = Vec::new();
    for (i, org) in parents.iter().enumerate() {
        let tier = u32::try_from(parents.len() - i).unwrap_or(1);
        let parent = parents.get(i + 1).copied().unwrap_or(CITY);
        let mut n = node_facts(&format!("n{tier}"), tier, org, parent);
        n.permission_state = "permitted".to_owned();
        ancestors.push(n);
    }
    let tier = u32::try_from(parents.len() + 1).unwrap_or(2);
    DecisionFacts {
        chain: ChainFacts {
            node: node_facts(
                "new",
                tier,
                vendor,
                parents.first().copied().unwrap_or(CITY),
            ),
            ancestors,
        },
        policy: Policy::default_policy(),
        significant_changes: Vec::new(),
    }
}

fn tier2_app() -> Instance<SubcontractContext> {
    // The federation (tier 1) applies for its subcontractor (tier 2): nobody in between.
    wf().start(
        "fed-clerk",
        SubcontractContext {
            applicant_org: FED.into(),
            root_consignor_org: CITY.into(),
            intermediate_orgs: vec![],
            node_id: None,
            application_id: None,
            facts: Some(good_facts(CENTRAL, &[FED])),
        },
    )
}

fn tier3_app() -> Instance<SubcontractContext> {
    // The central association (tier 2) applies for the cloud provider (tier 3); the federation
    // (tier 1) endorses it on the way up.
    wf().start(
        "central-clerk",
        SubcontractContext {
            applicant_org: CENTRAL.into(),
            root_consignor_org: CITY.into(),
            intermediate_orgs: vec![FED.into()],
            node_id: None,
            application_id: None,
            facts: Some(good_facts("cloud", &[CENTRAL, FED])),
        },
    )
}

fn fire(
    wf: &CompiledWorkflow<SubcontractContext>,
    inst: &mut Instance<SubcontractContext>,
    event: &str,
    who: &P,
) -> Result<String, super::Rejection> {
    fire_with(wf, inst, event, who, EventInput::default())
}

fn fire_with(
    wf: &CompiledWorkflow<SubcontractContext>,
    inst: &mut Instance<SubcontractContext>,
    event: &str,
    who: &P,
    input: EventInput<'_>,
) -> Result<String, super::Rejection> {
    let event = wf
        .event_id(event)
        .unwrap_or_else(|| panic!("unknown event {event}"));
    let input = EventInput { event, ..input };
    wf.fire(inst, &input, &who.actor(), now())
        .map(|o| wf.state_name(o.to).to_owned())
}

fn codes(r: &super::Rejection) -> Vec<&str> {
    r.unmet.iter().map(|u| u.code.as_str()).collect()
}

fn current_step(inst: &Instance<SubcontractContext>) -> Option<String> {
    let rp = inst.progress.route.as_deref()?;
    rp.steps.get(rp.current).map(|s| s.id.clone())
}

struct Cast {
    fed_clerk: P,
    central_clerk: P,
    fed_endorser: P,
    officer: P,
    chief: P,
    manager: P,
    other_city_officer: P,
}

fn cast() -> Cast {
    Cast {
        fed_clerk: P::new("fed-clerk", &[("contractor", FED)]),
        central_clerk: P::new("central-clerk", &[("contractor", CENTRAL)]),
        fed_endorser: P::new("fed-manager", &[("contractor", FED)]),
        officer: P::new("officer", &[("officer", CITY)]),
        chief: P::new("chief", &[("chief", CITY)]),
        manager: P::new("manager", &[("manager", CITY)]),
        other_city_officer: P::new("shinjuku-officer", &[("officer", "shinjuku")]),
    }
}

fn ok(r: Result<String, super::Rejection>) -> String {
    match r {
        Ok(s) => s,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

fn err(r: Result<String, super::Rejection>) -> super::Rejection {
    match r {
        Ok(s) => panic!("expected a rejection, moved to {s}"),
        Err(e) => e,
    }
}

#[test]
fn a_tier2_application_goes_straight_to_the_municipality_and_is_permitted_by_its_route() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    assert_eq!(ok(fire(&wf, &mut app, "submit", &c.fed_clerk)), "decision");
    assert_eq!(current_step(&app).as_deref(), Some("officer_check"));
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.officer)), "decision");
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.chief)), "decision");
    assert_eq!(current_step(&app).as_deref(), Some("manager"));
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.manager)), "permitted");
    assert!(app.progress.route.is_none());
}

#[test]
fn a_tier3_application_must_be_endorsed_by_the_intermediate_tier_first() {
    let (wf, c) = (wf(), cast());
    let mut app = tier3_app();
    assert_eq!(
        ok(fire(&wf, &mut app, "submit", &c.central_clerk)),
        "endorsement"
    );
    // The municipality cannot act while the federation has not endorsed.
    let r = err(fire(&wf, &mut app, "approve", &c.officer));
    assert_eq!(r.kind, RejectionKind::NotApplicable);
    // Another tier's contractor cannot endorse in the federation's place.
    let r = err(fire(&wf, &mut app, "endorse", &c.central_clerk));
    assert!(codes(&r).contains(&"step_role_required"), "{r:?}");
    assert_eq!(
        ok(fire(&wf, &mut app, "endorse", &c.fed_endorser)),
        "decision"
    );
    assert_eq!(current_step(&app).as_deref(), Some("officer_check"));
}

#[test]
fn the_intermediate_tier_is_involved_before_during_and_after_its_endorsement() {
    let (wf, c) = (wf(), cast());
    let mut app = tier3_app();
    let expected = [CENTRAL, CITY, FED];
    assert_eq!(wf.organisations(&app), expected, "in draft");
    ok(fire(&wf, &mut app, "submit", &c.central_clerk));
    ok(fire(&wf, &mut app, "endorse", &c.fed_endorser));
    assert_eq!(wf.organisations(&app), expected, "under decision");
    for who in [&c.officer, &c.chief, &c.manager] {
        ok(fire(&wf, &mut app, "approve", who));
    }
    assert_eq!(wf.organisations(&app), expected, "permitted");
}

#[test]
fn a_refusal_lists_every_unmet_requirement_and_changes_nothing() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    let before = app.clone();
    // Wrong person and wrong organisation at once.
    let r = err(fire(&wf, &mut app, "submit", &c.central_clerk));
    assert_eq!(r.kind, RejectionKind::Forbidden);
    assert!(codes(&r).contains(&"role_not_permitted"), "{r:?}");
    assert!(codes(&r).contains(&"not_submitter"), "{r:?}");
    assert_eq!(app, before);
    let r = err(fire(&wf, &mut app, "approve", &c.manager));
    assert_eq!(r.kind, RejectionKind::NotApplicable);
    assert_eq!(codes(&r), ["event_not_applicable"]);
    assert!(r.unmet[0].message.ja.contains("下書き"));
    assert_eq!(app, before);
}

#[test]
fn a_refusal_reports_the_closest_transition_not_the_routing_conditions_of_the_others() {
    let (wf, c) = (wf(), cast());
    // submit has two transitions told apart by has_intermediate_tiers / no_intermediate_tiers;
    // the wrong person submitting a tier-2 application is told only what they can fix.
    let mut app = tier2_app();
    let impostor = P::new("impostor", &[("contractor", FED)]);
    let r = err(fire(&wf, &mut app, "submit", &impostor));
    assert_eq!(codes(&r), ["not_submitter"]);
    assert_eq!(r.unmet[0].guard.as_deref(), Some("actor_is_submitter"));
    // Someone of another organisation: both their problems, still without the routing guard.
    let r = err(fire(&wf, &mut app, "submit", &c.central_clerk));
    assert_eq!(codes(&r), ["role_not_permitted", "not_submitter"]);
}

#[test]
fn creation_needs_the_role_in_the_applicant_organisation() {
    let (wf, c) = (wf(), cast());
    let app = tier2_app();
    assert!(wf.may_create(&c.fed_clerk.actor(), &app.ctx).is_ok());
    let r = match wf.may_create(&c.central_clerk.actor(), &app.ctx) {
        Err(r) => r,
        Ok(()) => panic!("another organisation's contractor may not file for the federation"),
    };
    assert_eq!(
        (r.kind, codes(&r)),
        (RejectionKind::Forbidden, vec!["role_not_permitted"])
    );
}

#[test]
fn a_proxy_decision_must_name_the_absent_approver() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    let r = err(fire(&wf, &mut app, "proxy", &c.chief));
    assert_eq!(
        (r.kind, codes(&r)),
        (RejectionKind::InvalidInput, vec!["on_behalf_of_required"])
    );
}

#[test]
fn an_event_id_outside_the_definition_is_refused_as_invalid_input() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    let input = EventInput {
        event: u16::MAX,
        ..EventInput::default()
    };
    let r = match wf.fire(&mut app, &input, &c.fed_clerk.actor(), now()) {
        Err(r) => r,
        Ok(_) => panic!("must refuse"),
    };
    assert_eq!(
        (r.kind, codes(&r)),
        (RejectionKind::InvalidInput, vec!["unknown_event"])
    );
}

#[test]
fn a_context_that_does_not_fit_the_kind_is_refused_at_creation() {
    let kinds = Kinds::product();
    let Ok(rt) = kinds.compile("s.toml", SUBCONTRACT) else {
        panic!("compiles");
    };
    let c = cast();
    let bad = serde_json::json!({"applicant_org": FED, "root_consignor_org": CITY, "mayor": "x"});
    match rt.create("fed-clerk", &c.fed_clerk.actor(), bad) {
        Err(super::FireError::Rejected(r)) => {
            assert_eq!(
                (r.kind, codes(&r)),
                (RejectionKind::InvalidInput, vec!["invalid_context"])
            );
            assert!(r.unmet[0].message.en.contains("mayor"), "{:?}", r.unmet[0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_root_municipality_decides() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    let r = err(fire(&wf, &mut app, "approve", &c.other_city_officer));
    assert_eq!(codes(&r), ["step_role_required"]);
    let r = err(fire(&wf, &mut app, "approve", &c.fed_clerk));
    assert!(codes(&r).contains(&"submitter_cannot_approve"), "{r:?}");
}

#[test]
fn four_eyes_one_person_may_not_act_at_two_steps() {
    let (wf, c) = (wf(), cast());
    let both = P::new("both", &[("officer", CITY), ("chief", CITY)]);
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &both));
    let r = err(fire(&wf, &mut app, "approve", &both));
    assert_eq!(codes(&r), ["four_eyes"]);
    assert_eq!(current_step(&app).as_deref(), Some("chief"));
}

#[test]
fn the_submitter_may_never_approve_even_holding_the_role() {
    let wf = wf();
    let clerk_and_officer = P::new("fed-clerk", &[("contractor", FED), ("officer", CITY)]);
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &clerk_and_officer));
    let r = err(fire(&wf, &mut app, "approve", &clerk_and_officer));
    assert_eq!(codes(&r), ["submitter_cannot_approve"]);
}

#[test]
fn return_to_the_applicant_needs_a_comment_and_goes_back_to_draft() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    let r = err(fire(&wf, &mut app, "return", &c.chief));
    assert_eq!(codes(&r), ["comment_required"]);
    // Someone not at the current step cannot return it.
    let r = err(fire_with(
        &wf,
        &mut app,
        "return",
        &c.officer,
        EventInput {
            comment: Some("不備あり"),
            ..EventInput::default()
        },
    ));
    assert!(codes(&r).contains(&"not_current_step_actor"), "{r:?}");
    let to = ok(fire_with(
        &wf,
        &mut app,
        "return",
        &c.chief,
        EventInput {
            comment: Some("体制図に監督者の記載がありません"),
            ..EventInput::default()
        },
    ));
    assert_eq!(to, "draft");
    // Resubmitted, the route starts afresh.
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    assert_eq!(current_step(&app).as_deref(), Some("officer_check"));
}

#[test]
fn return_to_an_earlier_step_clears_the_approvals_from_there() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    let back = |step: &'static str| EventInput {
        to_step: Some(step),
        comment: Some("再確認を"),
        ..EventInput::default()
    };
    let r = err(fire_with(
        &wf,
        &mut app,
        "return",
        &c.manager,
        back("manager"),
    ));
    assert_eq!(codes(&r), ["not_an_earlier_step"]);
    let r = err(fire_with(
        &wf,
        &mut app,
        "return",
        &c.manager,
        back("nowhere"),
    ));
    assert_eq!(codes(&r), ["unknown_step"]);
    assert_eq!(
        ok(fire_with(
            &wf,
            &mut app,
            "return",
            &c.manager,
            back("officer_check")
        )),
        "decision"
    );
    assert_eq!(current_step(&app).as_deref(), Some("officer_check"));
    // The officer and the chief act again; the route completes as before.
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.manager)), "permitted");
}

#[test]
fn recall_works_only_for_the_last_actor_before_the_next_person_acts() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    // The officer is no longer the last to have acted.
    let r = err(fire(&wf, &mut app, "recall", &c.officer));
    assert_eq!(codes(&r), ["recall_not_allowed"]);
    ok(fire(&wf, &mut app, "recall", &c.chief));
    assert_eq!(current_step(&app).as_deref(), Some("chief"));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.manager)), "permitted");
    // Decided: nothing to recall.
    let r = err(fire(&wf, &mut app, "recall", &c.manager));
    assert_eq!(r.kind, RejectionKind::NotApplicable);
}

#[test]
fn withdraw_by_the_applicant_before_a_decision_only() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    let r = err(fire(&wf, &mut app, "withdraw", &c.officer));
    assert!(codes(&r).contains(&"role_not_permitted"));
    assert_eq!(
        ok(fire(&wf, &mut app, "withdraw", &c.fed_clerk)),
        "withdrawn"
    );
    let r = err(fire(&wf, &mut app, "submit", &c.fed_clerk));
    assert_eq!(r.kind, RejectionKind::NotApplicable);
}

#[test]
fn proxy_decision_records_both_names_and_owes_the_absent_approver_a_review() {
    let (wf, c) = (wf(), cast());
    let mut deputy = P::new("deputy", &[("chief", CITY)]);
    deputy.deputy_for = vec![Deputyship {
        principal: "manager".into(),
        grants: vec![grant("manager", CITY)],
    }];
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    // Not a deputy of the officer.
    let r = err(fire_with(
        &wf,
        &mut app,
        "proxy",
        &deputy,
        EventInput {
            on_behalf_of: Some("officer"),
            ..EventInput::default()
        },
    ));
    assert_eq!(codes(&r), ["not_a_deputy"]);
    let ev = wf.event_id("proxy").unwrap_or_default();
    let out = wf.fire(
        &mut app,
        &EventInput {
            event: ev,
            on_behalf_of: Some("manager"),
            ..EventInput::default()
        },
        &deputy.actor(),
        now(),
    );
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(wf.state_name(out.to), "permitted");
    match &out.action {
        super::Action::Transition {
            by_step: Some(a), ..
        } => {
            assert_eq!(a.mode, ActMode::Proxy);
            assert_eq!(a.on_behalf_of.as_deref(), Some("manager"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.progress.post_reviews.len(), 1);
    assert_eq!(
        app.progress.post_reviews[0].principal.as_deref(),
        Some("manager")
    );
    // The absent manager reviews after the fact (後閲); nobody else can do it for them.
    let r = err(fire(&wf, &mut app, "acknowledge", &c.chief));
    assert_eq!(codes(&r), ["no_post_review_pending"]);
    ok(fire(&wf, &mut app, "acknowledge", &c.manager));
    assert_eq!(
        app.progress.post_reviews[0].done_by.as_deref(),
        Some("manager")
    );
    let r = err(fire(&wf, &mut app, "acknowledge", &c.manager));
    assert_eq!(codes(&r), ["no_post_review_pending"]);
}

#[test]
fn a_deputy_who_already_acted_may_not_decide_for_another_step() {
    let (wf, c) = (wf(), cast());
    let mut chief_deputy = P::new("chief", &[("chief", CITY)]);
    chief_deputy.deputy_for = vec![Deputyship {
        principal: "manager".into(),
        grants: vec![grant("manager", CITY)],
    }];
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &chief_deputy));
    let r = err(fire_with(
        &wf,
        &mut app,
        "proxy",
        &chief_deputy,
        EventInput {
            on_behalf_of: Some("manager"),
            ..EventInput::default()
        },
    ));
    assert_eq!(codes(&r), ["four_eyes"]);
}

#[test]
fn skipping_an_absent_chief_needs_a_skippable_step_and_creates_a_post_review() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    // The officer step is not skippable.
    let r = err(fire(&wf, &mut app, "skip", &c.manager));
    assert_eq!(codes(&r), ["skip_not_allowed"]);
    ok(fire(&wf, &mut app, "approve", &c.officer));
    // Someone without a later step's role cannot skip.
    let r = err(fire(&wf, &mut app, "skip", &c.officer));
    assert_eq!(codes(&r), ["not_a_later_approver"]);
    assert_eq!(ok(fire(&wf, &mut app, "skip", &c.manager)), "permitted");
    let pr = &app.progress.post_reviews;
    assert_eq!(pr.len(), 1);
    assert_eq!(
        (pr[0].step.as_str(), pr[0].reason),
        ("chief", ActMode::Skipped)
    );
    assert_eq!(pr[0].org.as_deref(), Some(CITY));
    ok(fire(&wf, &mut app, "acknowledge", &c.chief));
}

#[test]
fn recalling_a_skip_brings_the_skipped_step_back() {
    let wf = wf();
    let c = cast();
    // A route where the skip does not complete it: add a fourth step by using the endorsement of
    // a tier-3 application, then checking the decision route after the skip.
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    // Pull-up keeps the route open, so recall can be tested on it.
    ok(fire(&wf, &mut app, "pull_up", &c.manager));
    assert_eq!(current_step(&app).as_deref(), Some("manager"));
    ok(fire(&wf, &mut app, "recall", &c.manager));
    assert_eq!(current_step(&app).as_deref(), Some("chief"));
    assert!(app.progress.post_reviews.is_empty());
}

#[test]
fn pull_up_lets_the_manager_act_for_a_stalled_chief_and_is_recorded_as_such() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    assert_eq!(ok(fire(&wf, &mut app, "pull_up", &c.manager)), "decision");
    let rp = app.progress.route.as_deref().map(|r| r.records.clone());
    let last = rp.and_then(|r| r.last().cloned());
    assert_eq!(
        last.map(|r| (r.actor, r.mode)),
        Some(("manager".into(), ActMode::PullUp))
    );
    // The chief step is done; the manager now decides at their own step.
    assert_eq!(ok(fire(&wf, &mut app, "approve", &c.manager)), "permitted");
}

#[test]
fn pull_up_is_refused_on_a_step_that_does_not_allow_it() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    let r = err(fire(&wf, &mut app, "pull_up", &c.manager));
    assert_eq!(codes(&r), ["pull_up_not_allowed"]);
}

#[test]
fn reject_needs_the_current_approver_and_a_reason() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    let r = err(fire(&wf, &mut app, "reject", &c.manager));
    assert_eq!(codes(&r), ["comment_required", "not_current_step_actor"]);
    let to = ok(fire_with(
        &wf,
        &mut app,
        "reject",
        &c.officer,
        EventInput {
            comment: Some("ISMAP 登録がありません"),
            ..EventInput::default()
        },
    ));
    assert_eq!(to, "rejected");
}

#[test]
fn a_permission_can_be_suspended_reinstated_and_terminated_only_with_a_deletion_certificate() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    ok(fire(&wf, &mut app, "approve", &c.officer));
    ok(fire(&wf, &mut app, "approve", &c.chief));
    ok(fire(&wf, &mut app, "approve", &c.manager));
    let why = EventInput {
        comment: Some("証跡の期限切れ"),
        ..EventInput::default()
    };
    assert_eq!(
        ok(fire_with(&wf, &mut app, "suspend", &c.officer, why)),
        "suspended"
    );
    let r = err(fire_with(&wf, &mut app, "reinstate", &c.officer, why));
    assert_eq!(codes(&r), ["role_not_permitted"]);
    assert_eq!(
        ok(fire_with(&wf, &mut app, "reinstate", &c.manager, why)),
        "permitted"
    );
    let r = err(fire(&wf, &mut app, "terminate", &c.manager));
    assert_eq!(codes(&r), ["deletion_certificate_missing"]);
    assert_eq!(
        r.unmet[0].guard.as_deref(),
        Some("deletion_certificate_recorded")
    );
    if let Some(f) = app.ctx.facts.as_mut() {
        let mut cert = evidence_of("vendor", FED).remove(0);
        cert.kind = crate::domain::evidence::EvidenceKind::DeletionCertificate;
        f.chain.node.evidence.push(cert);
    }
    assert_eq!(
        ok(fire(&wf, &mut app, "terminate", &c.manager)),
        "terminated"
    );
}

#[test]
fn available_events_are_exactly_what_the_actor_may_do() {
    let (wf, c) = (wf(), cast());
    let mut app = tier2_app();
    let list = |app: &Instance<SubcontractContext>, p: &P| {
        let mut v: Vec<String> = wf
            .available_events(app, &p.actor(), now())
            .into_iter()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(&app, &c.fed_clerk), ["edit", "submit", "withdraw"]);
    assert!(list(&app, &c.officer).is_empty());
    ok(fire(&wf, &mut app, "submit", &c.fed_clerk));
    assert_eq!(list(&app, &c.officer), ["approve", "reject", "return"]);
    // The officer's step can be neither skipped nor pulled up.
    assert!(list(&app, &c.manager).is_empty());
    assert_eq!(list(&app, &c.fed_clerk), ["withdraw"]);
    ok(fire(&wf, &mut app, "approve", &c.officer));
    assert_eq!(list(&app, &c.manager), ["pull_up", "skip"]);
    assert_eq!(list(&app, &c.chief), ["approve", "reject", "return"]);
    assert_eq!(list(&app, &c.officer), ["recall"]);
}

const COREVIEW: &str = r#"
id = "coreview_demo"
version = 1
context = "generic"
title = { ja = "合議の例", en = "Co-review example" }
create_roles = ["officer"]

[[states]]
id = "draft"
initial = true
label = { ja = "下書き", en = "Draft" }

[[states]]
id = "review"
route = "r"
label = { ja = "審査中", en = "In review" }

[[states]]
id = "done"
terminal = true
label = { ja = "完了", en = "Done" }

[[routes]]
id = "r"
event = "approve"
label = { ja = "決裁", en = "Decision" }

[[routes.steps]]
id = "coreview"
kind = "parallel"
reviewers = ["reviewer", "reviewer", "auditor"]
require = 2
label = { ja = "合議", en = "Co-review" }

[[routes.steps]]
id = "manager"
role = "manager"
label = { ja = "課長", en = "Manager" }

[[transitions]]
event = "submit"
from = ["draft"]
to = "review"
roles = ["officer"]
label = { ja = "提出", en = "Submit" }

[[transitions]]
event = "approve"
from = ["review"]
to = "done"
label = { ja = "決裁", en = "Approve" }
"#;

#[test]
fn a_co_review_needs_n_distinct_reviewers_before_the_next_step() {
    let wf = match compile(
        "coreview.toml",
        COREVIEW,
        &super::kinds::generic::registry(),
        &Vocabulary::product(),
    ) {
        Ok(w) => w,
        Err(e) => panic!("{e:?}"),
    };
    let unscoped = |id: &'static str, role: &str| P {
        id,
        grants: vec![Grant {
            role: role.into(),
            org: None,
        }],
        deputy_for: vec![],
    };
    let (officer, r1, r2, manager) = (
        unscoped("o", "officer"),
        unscoped("r1", "reviewer"),
        unscoped("r2", "reviewer"),
        unscoped("m", "manager"),
    );
    let mut inst = wf.start("o", serde_json::json!({}));
    let go = |inst: &mut Instance<serde_json::Value>, ev: &str, p: &P| {
        let event = wf.event_id(ev).unwrap_or_default();
        wf.fire(
            inst,
            &EventInput {
                event,
                ..EventInput::default()
            },
            &p.actor(),
            now(),
        )
        .map(|o| wf.state_name(o.to).to_owned())
    };
    assert!(go(&mut inst, "submit", &officer).is_ok());
    assert!(go(&mut inst, "approve", &manager).is_err());
    assert!(go(&mut inst, "approve", &r1).is_ok());
    // The same reviewer cannot fill the second slot.
    let r = go(&mut inst, "approve", &r1)
        .err()
        .map(|r| codes(&r).join(","));
    assert_eq!(r.as_deref(), Some("four_eyes"));
    assert!(go(&mut inst, "approve", &r2).is_ok());
    let rp = inst.progress.route.as_deref().map(|r| r.current);
    assert_eq!(rp, Some(1), "two of three is enough");
    assert_eq!(
        go(&mut inst, "approve", &manager).ok().as_deref(),
        Some("done")
    );
}

#[test]
fn instances_keep_running_on_the_version_they_started_on() {
    let kinds = Kinds::product();
    let v1 = match kinds.compile("v1.toml", SUBCONTRACT) {
        Ok(v) => v,
        Err(e) => panic!("{e:?}"),
    };
    // Version 2 drops the chief from the route.
    let v2_src = SUBCONTRACT
        .replace("version = 1", "version = 2")
        .replace(
            "[[routes.steps]]\nid = \"chief\"\nrole = \"chief\"\norg = \"root_consignor\"\nskippable = true\npull_up = true\nlabel = { ja = \"係長決裁\", en = \"Chief\" }\n\n",
            "",
        );
    assert_ne!(v2_src, SUBCONTRACT.replace("version = 1", "version = 2"));
    let v2 = match kinds.compile("v2.toml", &v2_src) {
        Ok(v) => v,
        Err(e) => panic!("{e:?}"),
    };
    let mut set = super::WorkflowSet::default();
    assert!(set.insert(v1).is_ok());
    assert!(set.insert(v2).is_ok());
    assert_eq!(
        set.latest("subcontract_permission").map(|w| w.version()),
        Some(2)
    );
    let c = cast();
    let ctx = serde_json::json!({"applicant_org": FED, "root_consignor_org": CITY});
    let run = |version: u32| -> Vec<String> {
        let Some(rt) = set.get("subcontract_permission", version) else {
            panic!("version {version} missing");
        };
        let created = match rt.create("fed-clerk", &c.fed_clerk.actor(), ctx.clone()) {
            Ok(c) => c,
            Err(e) => panic!("{e:?}"),
        };
        let mut stored = super::StoredInstance {
            state: created.state,
            submitter: "fed-clerk".into(),
            context: created.context,
            progress: created.progress,
        };
        // What the services give the guards on each event.
        stored.context["facts"] =
            serde_json::to_value(good_facts(CENTRAL, &[FED])).unwrap_or_default();
        let mut states = Vec::new();
        for (ev, who) in [
            ("submit", &c.fed_clerk),
            ("approve", &c.officer),
            ("approve", &c.manager),
        ] {
            let req = super::EventRequest {
                event: ev,
                ..super::EventRequest::default()
            };
            match rt.fire(&stored, &req, &who.actor(), now()) {
                Ok(f) => {
                    stored.state = f.to.clone();
                    stored.progress = f.progress;
                    states.push(f.to);
                }
                Err(e) => states.push(format!("refused: {e:?}").chars().take(40).collect()),
            }
        }
        states
    };
    // On v1 the manager cannot act at the chief's step; on v2 there is no chief step.
    let v1_states = run(1);
    assert_eq!(v1_states[..2], ["decision", "decision"]);
    assert!(v1_states[2].starts_with("refused"), "{v1_states:?}");
    assert_eq!(run(2), ["decision", "decision", "permitted"]);
}

#[test]
fn a_changed_definition_under_the_same_version_is_refused() {
    let kinds = Kinds::product();
    let (Ok(a), Ok(b)) = (
        kinds.compile("a.toml", SUBCONTRACT),
        kinds.compile("b.toml", &SUBCONTRACT.replace("進達中", "進達待ち")),
    ) else {
        panic!("both compile");
    };
    let mut set = super::WorkflowSet::default();
    assert!(set.insert(a).is_ok());
    assert_eq!(
        set.insert(b).err().as_deref(),
        Some("workflow \"subcontract_permission\" version 1 was changed without a version bump")
    );
}

#[test]
fn the_workload_contexts_match_the_published_digest() {
    let mut h = Sha256::new();
    for i in 0..100_000 {
        let line = serde_json::to_string(&WorkloadContext::for_instance(i)).unwrap_or_default();
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    assert_eq!(
        hex::encode(h.finalize()),
        "b8fef8328d184ed70a1aa9638bf974cccab7907939f723f2872f9da20e014f07"
    );
    assert_eq!(
        serde_json::to_string(&WorkloadContext::for_instance(0)).unwrap_or_default(),
        r#"{"id":0,"submitter":"user-0","evidence":{"ismap":"2026-01-01","iso27017_or_csgold":"2026-02-02","iso27018":"2026-03-03","domestic_storage":"2026-04-04","nda":"2026-05-05","shared_responsibility_doc":"2026-06-06"}}"#
    );
}

#[test]
fn the_workload_guard_checks_pass_and_every_instance_is_approved() {
    let w = match workload::Workload::new() {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(w.guard_checks(), Ok(()));
    for i in 0..2_000 {
        assert!(w.is_approved(&w.run_instance(i)), "instance {i}");
    }
}
