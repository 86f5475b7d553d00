//! The pure core: given a definition, an instance, an event, the actor and the time, either apply
//! the transition or refuse it with every unmet requirement. No I/O; the clock is a parameter.

use super::model::{
    builtin, ActMode, Actor, CompiledWorkflow, EffectSpec, EventId, EventInput, Grant, Instance,
    Now, OrgScope, PostReview, Progress, RouteProgress, StateId, Step, StepKind, StepRecord,
};
use super::registry::{GuardInput, Unmet, WorkflowContext};

/// Why an event was refused; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The event does not apply in the current state.
    NotApplicable,
    /// The actor may not fire it (role, organisation, four-eyes, deputyship).
    Forbidden,
    /// Conditions are unmet (guards, missing comment, …).
    Unmet,
    /// The event's parameters are wrong (unknown step, …).
    InvalidInput,
}

/// A refused event: nothing changed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub unmet: Vec<Unmet>,
}

impl Rejection {
    fn one(kind: RejectionKind, unmet: Unmet) -> Self {
        Self {
            kind,
            unmet: vec![unmet],
        }
    }
}

/// What happened, for the audit record and the services that run effects.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A declared transition; `by_step` when completing the route's last step fired it.
    Transition {
        transition: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        by_step: Option<StepAct>,
    },
    /// A route step was acted on without leaving the state.
    Step(StepAct),
    /// Sent back to an earlier step of the route (差戻し).
    ReturnedToStep { step: String },
    /// The actor took back their own step action (引戻し).
    Recalled { step: String },
    /// An after-the-fact review was done (後閲).
    Acknowledged { step: String },
}

/// One action at a route step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepAct {
    pub step: String,
    pub mode: ActMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Steps skipped on the way (後閲 owed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The result of an applied event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'w> {
    pub from: StateId,
    pub to: StateId,
    pub action: Action,
    /// The step the actor acted at, if any (for the audit record).
    pub step: Option<String>,
    /// The declared effects to run in the same transaction.
    pub effects: &'w [EffectSpec],
    /// After-the-fact reviews created by this event.
    pub post_reviews: Vec<PostReview>,
}

impl<C: WorkflowContext> CompiledWorkflow<C> {
    /// A new instance in the initial state.
    pub fn start(&self, submitter: impl Into<String>, ctx: C) -> Instance<C> {
        Instance {
            state: self.initial,
            submitter: submitter.into(),
            progress: Progress::default(),
            ctx,
        }
    }

    /// Every organisation the instance involves: those its context names (in its scopes and
    /// beyond them) and those of the steps of its running route. Members of these
    /// organisations may see it.
    pub fn organisations(&self, inst: &Instance<C>) -> Vec<String> {
        let mut orgs: Vec<String> = self
            .org_scopes
            .iter()
            .filter_map(|s| inst.ctx.organisation(s))
            .map(str::to_owned)
            .chain(inst.ctx.further_organisations().iter().cloned())
            .collect();
        if let Some(rp) = inst.progress.route.as_deref() {
            for step in &rp.steps {
                if let Some(OrgScope::Fixed(org)) = &step.org {
                    orgs.push(org.clone());
                }
            }
        }
        orgs.sort();
        orgs.dedup();
        orgs
    }

    /// The organisation that owns a new instance: where its creator's role is required.
    pub fn owner_organisation(&self, ctx: &C) -> Option<String> {
        match self.create_org.as_ref()? {
            OrgScope::Named(s) => ctx.organisation(s).map(str::to_owned),
            OrgScope::Fixed(org) => Some(org.clone()),
        }
    }

    /// May this actor start an instance?
    pub fn may_create(&self, actor: &Actor<'_>, ctx: &C) -> Result<(), Rejection> {
        if self.create_roles.is_empty()
            || holds_any(
                actor.grants,
                &self.create_roles,
                self.create_org.as_ref(),
                ctx,
            )
        {
            Ok(())
        } else {
            Err(Rejection::one(
                RejectionKind::Forbidden,
                role_unmet(&self.create_roles),
            ))
        }
    }

    /// Applies `input` to `inst`, or refuses it with every unmet requirement; on refusal `inst`
    /// is unchanged.
    pub fn fire(
        &self,
        inst: &mut Instance<C>,
        input: &EventInput<'_>,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Outcome<'_>, Rejection> {
        let ev = input.event;
        if usize::from(ev) >= self.events.len() {
            return Err(Rejection::one(
                RejectionKind::InvalidInput,
                Unmet::new("unknown_event", "不明なイベントです", "Unknown event"),
            ));
        }
        let b = self.builtin;
        if Some(ev) == b.acknowledge {
            return self.acknowledge(inst, actor);
        }
        let state = &self.states[usize::from(inst.state)];
        if let (Some(route_ix), Some(_)) = (state.route, inst.progress.route.as_ref()) {
            let route = &self.routes[usize::from(route_ix)];
            let mode = if ev == route.event {
                Some(ActKind::Own)
            } else if Some(ev) == b.proxy {
                Some(ActKind::Proxy)
            } else if Some(ev) == b.pull_up {
                Some(ActKind::PullUp)
            } else if Some(ev) == b.skip {
                Some(ActKind::Skip)
            } else {
                None
            };
            if let Some(mode) = mode {
                return self.step_act(inst, route_ix, mode, input, actor, now);
            }
            if Some(ev) == b.recall {
                return self.recall(inst, actor);
            }
            if Some(ev) == b.return_ && input.to_step.is_some() {
                return self.return_to_step(inst, input, actor);
            }
        }
        self.declared(inst, input, actor, now, None)
    }

    /// Fires a declared transition for the event; `route_done` carries the progress that
    /// completed the route when the transition is a route completion.
    fn declared(
        &self,
        inst: &mut Instance<C>,
        input: &EventInput<'_>,
        actor: &Actor<'_>,
        now: Now,
        route_done: Option<StepDone>,
    ) -> Result<Outcome<'_>, Rejection> {
        let cands = self.candidates(inst.state, input.event);
        if cands.is_empty() {
            return Err(Rejection::one(
                RejectionKind::NotApplicable,
                Unmet::new(
                    "event_not_applicable",
                    format!(
                        "「{}」は現在の状態「{}」では実行できません",
                        self.event_name(input.event),
                        self.states[usize::from(inst.state)].label.ja
                    ),
                    format!(
                        "\"{}\" does not apply in the current state \"{}\"",
                        self.event_name(input.event),
                        self.state_name(inst.state)
                    ),
                ),
            ));
        }
        // Where several transitions compete for the event (told apart by guards), report the
        // one that came closest: its unmet requirements are what the actor must fix, while
        // the others' routing conditions (e.g. "has intermediate tiers") are not.
        let mut best: Option<(Vec<Unmet>, bool)> = None;
        let mut considered = false;
        for &t_ix in cands {
            let t = &self.transitions[usize::from(t_ix)];
            if t.completes_route != route_done.is_some() {
                continue;
            }
            let mut unmet = Vec::new();
            let role_ok =
                t.roles.is_empty() || holds_any(actor.grants, &t.roles, t.org.as_ref(), &inst.ctx);
            if !role_ok {
                unmet.push(role_unmet(&t.roles));
            }
            if t.require_comment && input.comment.is_none_or(|c| c.trim().is_empty()) {
                unmet.push(Unmet::new(
                    "comment_required",
                    "コメント(理由)を入力してください",
                    "A comment (the reason) is required",
                ));
            }
            let gi = GuardInput {
                instance: inst,
                actor,
                event: input,
                now,
            };
            for g in &t.guards {
                let before = unmet.len();
                g.guard.check(&gi, &mut unmet);
                for u in &mut unmet[before..] {
                    u.guard.get_or_insert_with(|| g.name.clone());
                }
            }
            if unmet.is_empty() {
                let from = inst.state;
                let (by_step, post_reviews) = match route_done {
                    Some(done) => (Some(done.act), done.post_reviews),
                    None => (None, Vec::new()),
                };
                let step = by_step.as_ref().map(|a| a.step.clone());
                let action = Action::Transition {
                    transition: usize::from(t_ix),
                    by_step,
                };
                self.enter(inst, t.to);
                if !post_reviews.is_empty() {
                    inst.progress
                        .post_reviews
                        .extend(post_reviews.iter().cloned());
                }
                return Ok(Outcome {
                    from,
                    to: t.to,
                    action,
                    step,
                    effects: &t.effects,
                    post_reviews,
                });
            }
            considered = true;
            match &mut best {
                Some((b, _)) if b.len() < unmet.len() => {}
                Some((b, f)) if b.len() == unmet.len() => {
                    *f |= !role_ok;
                    for u in unmet {
                        if !b.contains(&u) {
                            b.push(u);
                        }
                    }
                }
                _ => best = Some((unmet, !role_ok)),
            }
        }
        let Some((all, forbidden)) = best.filter(|_| considered) else {
            // Only route-completion transitions exist for this event here: the event acts on
            // the route, which has not run (the instance entered the state without one).
            return Err(no_route());
        };
        Err(Rejection {
            kind: if forbidden {
                RejectionKind::Forbidden
            } else {
                RejectionKind::Unmet
            },
            unmet: all,
        })
    }

    /// Moves to `to`, starting its route (if any) afresh.
    fn enter(&self, inst: &mut Instance<C>, to: StateId) {
        inst.state = to;
        let route = self.states[usize::from(to)].route;
        if route.is_none() && inst.progress.route.is_none() {
            return;
        }
        inst.progress.route = route.map(|r| {
            let r = usize::from(r);
            let route = &self.routes[r];
            let steps = match self.step_providers.get(r).copied().flatten() {
                Some(provider) => provider(&inst.ctx),
                None => route.steps.clone(),
            };
            Box::new(RouteProgress {
                route: route.id.clone(),
                steps,
                current: 0,
                records: Vec::new(),
            })
        });
    }

    /// The checks that make a route safe to enter; used by `fire` callers before committing.
    fn step_act(
        &self,
        inst: &mut Instance<C>,
        route_ix: u16,
        mode: ActKind,
        input: &EventInput<'_>,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Outcome<'_>, Rejection> {
        let route = &self.routes[usize::from(route_ix)];
        let Some(rp) = inst.progress.route.as_deref() else {
            return Err(no_route());
        };
        let Some(step) = rp.steps.get(rp.current) else {
            return Err(no_route());
        };
        let mut next = rp.clone();
        let mut unmet = Vec::new();
        let mut post_reviews = Vec::new();
        let mut skipped = Vec::new();
        let mut on_behalf_of = None;
        let ctx = &inst.ctx;
        let submitter = inst.submitter.as_str();
        let at_step;
        match mode {
            ActKind::Own | ActKind::Proxy => {
                let (who, grants): (&str, &[Grant]) = if matches!(mode, ActKind::Proxy) {
                    let Some(principal) = input.on_behalf_of else {
                        return Err(Rejection::one(
                            RejectionKind::InvalidInput,
                            Unmet::new(
                                "on_behalf_of_required",
                                "代決では不在の決裁者を指定してください",
                                "A proxy decision names the absent approver (on_behalf_of)",
                            ),
                        ));
                    };
                    match actor.deputy_for.iter().find(|d| d.principal == principal) {
                        Some(d) => (principal, &d.grants),
                        None => {
                            return Err(Rejection::one(
                                RejectionKind::Forbidden,
                                Unmet::new(
                                    "not_a_deputy",
                                    format!("{principal} の代決者として登録されていません"),
                                    format!("You are not a registered deputy of {principal}"),
                                ),
                            ))
                        }
                    }
                } else {
                    (actor.id, actor.grants)
                };
                let slot = eligible_slot(step, grants, ctx, &next.records, next.current);
                if slot.is_none() {
                    unmet.push(step_role_unmet(step));
                }
                four_eyes(route.four_eyes, &next, who, submitter, &mut unmet);
                if matches!(mode, ActKind::Proxy) {
                    on_behalf_of = Some(who.to_owned());
                    four_eyes(route.four_eyes, &next, actor.id, submitter, &mut unmet);
                    post_reviews.push(PostReview {
                        route: route.id.clone(),
                        step: step.id.clone(),
                        principal: Some(who.to_owned()),
                        role: step.roles().first().cloned().unwrap_or_default(),
                        org: scope_org(step, ctx),
                        reason: ActMode::Proxy,
                        done_by: None,
                    });
                }
                at_step = step.id.clone();
                next.records.push(StepRecord {
                    step: next.current,
                    actor: actor.id.to_owned(),
                    on_behalf_of: on_behalf_of.clone(),
                    mode: if on_behalf_of.is_some() {
                        ActMode::Proxy
                    } else {
                        ActMode::Approve
                    },
                    slot,
                });
            }
            ActKind::PullUp | ActKind::Skip => {
                // The actor holds the role of a later step and acts over the stalled or absent
                // ones between; a pull-up acts for the current step only.
                let later = (next.current + 1..next.steps.len()).find(|&j| {
                    eligible_slot(&next.steps[j], actor.grants, ctx, &next.records, j).is_some()
                });
                let Some(j) = later else {
                    return Err(Rejection::one(
                        RejectionKind::Forbidden,
                        Unmet::new(
                            "not_a_later_approver",
                            "後続の決裁者ではありません",
                            "You are not an approver of a later step",
                        ),
                    ));
                };
                four_eyes(route.four_eyes, &next, actor.id, submitter, &mut unmet);
                if matches!(mode, ActKind::PullUp) {
                    if !step.pull_up {
                        unmet.push(Unmet::new(
                            "pull_up_not_allowed",
                            format!("「{}」は引上げできません", step.label.ja),
                            format!("Step \"{}\" does not allow pull-up", step.id),
                        ));
                    }
                    at_step = step.id.clone();
                    next.records.push(StepRecord {
                        step: next.current,
                        actor: actor.id.to_owned(),
                        on_behalf_of: None,
                        mode: ActMode::PullUp,
                        slot: None,
                    });
                } else {
                    for k in next.current..j {
                        let s = &next.steps[k];
                        if !s.skippable {
                            unmet.push(Unmet::new(
                                "skip_not_allowed",
                                format!("「{}」は後閲で飛ばせません", s.label.ja),
                                format!("Step \"{}\" cannot be skipped", s.id),
                            ));
                        }
                        skipped.push(s.id.clone());
                        post_reviews.push(PostReview {
                            route: route.id.clone(),
                            step: s.id.clone(),
                            principal: None,
                            role: s.roles().first().cloned().unwrap_or_default(),
                            org: scope_org(s, ctx),
                            reason: ActMode::Skipped,
                            done_by: None,
                        });
                        next.records.push(StepRecord {
                            step: k,
                            actor: actor.id.to_owned(),
                            on_behalf_of: None,
                            mode: ActMode::Skipped,
                            slot: None,
                        });
                    }
                    let slot = eligible_slot(&next.steps[j], actor.grants, ctx, &next.records, j);
                    at_step = next.steps[j].id.clone();
                    next.current = j;
                    next.records.push(StepRecord {
                        step: j,
                        actor: actor.id.to_owned(),
                        on_behalf_of: None,
                        mode: ActMode::Approve,
                        slot,
                    });
                }
            }
        }
        if !unmet.is_empty() {
            return Err(Rejection {
                kind: RejectionKind::Forbidden,
                unmet,
            });
        }
        // Advance past every step that is now complete.
        while next
            .steps
            .get(next.current)
            .is_some_and(|s| step_complete(s, &next.records, next.current))
        {
            next.current += 1;
        }
        let act = StepAct {
            step: at_step,
            mode: if on_behalf_of.is_some() {
                ActMode::Proxy
            } else if matches!(mode, ActKind::PullUp) {
                ActMode::PullUp
            } else {
                ActMode::Approve
            },
            on_behalf_of,
            skipped,
        };
        let from = inst.state;
        if next.current >= next.steps.len() {
            // The route is complete: the declared completion transition decides.
            let done = StepDone { act, post_reviews };
            let saved = inst.progress.route.replace(Box::new(next));
            // However the last step was acted on (proxy, skip…), the route's event completes it.
            let completion = EventInput {
                event: route.event,
                ..*input
            };
            let res = self.declared(inst, &completion, actor, now, Some(done));
            if res.is_err() {
                inst.progress.route = saved;
            }
            return res;
        }
        inst.progress.route = Some(Box::new(next));
        inst.progress
            .post_reviews
            .extend(post_reviews.iter().cloned());
        Ok(Outcome {
            from,
            to: from,
            step: Some(act.step.clone()),
            action: Action::Step(act),
            effects: &[],
            post_reviews,
        })
    }

    /// 引戻し: the last actor takes back their action while nobody has acted after them.
    fn recall(&self, inst: &mut Instance<C>, actor: &Actor<'_>) -> Result<Outcome<'_>, Rejection> {
        let Some(rp) = inst.progress.route.as_deref() else {
            return Err(no_route());
        };
        let last = rp.records.iter().rposition(|r| r.mode != ActMode::Skipped);
        let Some(ix) = last.filter(|&i| rp.records[i].actor == actor.id) else {
            return Err(Rejection::one(
                RejectionKind::Forbidden,
                Unmet::new(
                    "recall_not_allowed",
                    "引戻しできるのは直前に処理した本人が、次の人が処理する前だけです",
                    "Only the last person who acted may recall, before the next person acts",
                ),
            ));
        };
        let mut next = rp.clone();
        // The action, and the steps it skipped on the way, come back together.
        let mut cut = ix;
        while cut > 0
            && next.records[cut - 1].mode == ActMode::Skipped
            && next.records[cut - 1].actor == actor.id
        {
            cut -= 1;
        }
        let removed: Vec<StepRecord> = next.records.drain(cut..).collect();
        next.current = removed.iter().map(|r| r.step).min().unwrap_or(next.current);
        let step = next
            .steps
            .get(rp.records[ix].step)
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let undone: Vec<&str> = removed
            .iter()
            .filter_map(|r| next.steps.get(r.step).map(|s| s.id.as_str()))
            .collect();
        let route_id = next.route.as_str();
        inst.progress.post_reviews.retain(|p| {
            !(p.route == route_id && p.done_by.is_none() && undone.contains(&p.step.as_str()))
        });
        inst.progress.route = Some(Box::new(next));
        Ok(Outcome {
            from: inst.state,
            to: inst.state,
            action: Action::Recalled { step: step.clone() },
            step: Some(step),
            effects: &[],
            post_reviews: Vec::new(),
        })
    }

    /// 差戻し to an earlier step of the running route.
    fn return_to_step(
        &self,
        inst: &mut Instance<C>,
        input: &EventInput<'_>,
        actor: &Actor<'_>,
    ) -> Result<Outcome<'_>, Rejection> {
        let Some(rp) = inst.progress.route.as_deref() else {
            return Err(no_route());
        };
        let mut unmet = Vec::new();
        let target = input.to_step.unwrap_or_default();
        let Some(k) = rp.steps.iter().position(|s| s.id == target) else {
            return Err(Rejection::one(
                RejectionKind::InvalidInput,
                Unmet::new(
                    "unknown_step",
                    format!("差戻し先の段階「{target}」はありません"),
                    format!("There is no step \"{target}\" to return to"),
                ),
            ));
        };
        if k >= rp.current {
            unmet.push(Unmet::new(
                "not_an_earlier_step",
                "差戻し先は現在より前の段階を指定してください",
                "A return goes to an earlier step",
            ));
        }
        if let Some(cur) = rp.steps.get(rp.current) {
            if !cur
                .roles()
                .iter()
                .any(|r| holds(actor.grants, r, cur.org.as_ref(), &inst.ctx))
            {
                unmet.push(step_role_unmet(cur));
            }
        }
        if input.comment.is_none_or(|c| c.trim().is_empty()) {
            unmet.push(Unmet::new(
                "comment_required",
                "コメント(理由)を入力してください",
                "A comment (the reason) is required",
            ));
        }
        if !unmet.is_empty() {
            let kind = if unmet.iter().any(|u| u.code == "step_role_required") {
                RejectionKind::Forbidden
            } else {
                RejectionKind::Unmet
            };
            return Err(Rejection { kind, unmet });
        }
        let mut next = rp.clone();
        next.records.retain(|r| r.step < k);
        next.current = k;
        inst.progress.route = Some(Box::new(next));
        Ok(Outcome {
            from: inst.state,
            to: inst.state,
            action: Action::ReturnedToStep {
                step: target.to_owned(),
            },
            step: Some(target.to_owned()),
            effects: &[],
            post_reviews: Vec::new(),
        })
    }

    /// 後閲: the absent approver (or, for a skipped step, a holder of its role) reviews.
    fn acknowledge(
        &self,
        inst: &mut Instance<C>,
        actor: &Actor<'_>,
    ) -> Result<Outcome<'_>, Rejection> {
        let pos = inst.progress.post_reviews.iter().position(|p| {
            p.done_by.is_none()
                && match &p.principal {
                    Some(principal) => principal == actor.id,
                    None => actor.grants.iter().any(|g| {
                        g.role == p.role
                            && (p.org.is_none() || g.org.as_deref() == p.org.as_deref())
                    }),
                }
        });
        let Some(pos) = pos else {
            return Err(Rejection::one(
                RejectionKind::NotApplicable,
                Unmet::new(
                    "no_post_review_pending",
                    "あなたの後閲待ちはありません",
                    "No after-the-fact review is waiting for you",
                ),
            ));
        };
        let pr = &mut inst.progress.post_reviews[pos];
        pr.done_by = Some(actor.id.to_owned());
        let step = pr.step.clone();
        Ok(Outcome {
            from: inst.state,
            to: inst.state,
            action: Action::Acknowledged { step: step.clone() },
            step: Some(step),
            effects: &[],
            post_reviews: Vec::new(),
        })
    }

    /// The events this actor may fire now, for "the actions this user may take". Events that
    /// need a parameter are probed with each value the actor could give (the principals they
    /// deputise for, the earlier steps).
    pub fn available_events(&self, inst: &Instance<C>, actor: &Actor<'_>, now: Now) -> Vec<&str>
    where
        C: Clone,
    {
        self.event_choices(inst, actor, now)
            .iter()
            .filter_map(|c| self.event_id(&c.event))
            .map(|e| self.event_name(e))
            .collect()
    }

    /// The events this actor may fire now, each with the parameter values the engine would
    /// accept from them: for `return`, whether it may go back to the applicant (`plain`) and
    /// the earlier steps it may go to; for `proxy`, the absent approvers the actor may decide
    /// for. Every value is probed by firing on a copy, so a screen offers exactly what the
    /// engine allows.
    pub fn event_choices(&self, inst: &Instance<C>, actor: &Actor<'_>, now: Now) -> Vec<EventChoice>
    where
        C: Clone,
    {
        let earlier: Vec<&Step> = inst
            .progress
            .route
            .as_deref()
            .map_or(Vec::new(), |rp| rp.steps.iter().take(rp.current).collect());
        let probe = |input: EventInput<'_>| {
            let mut copy = inst.clone();
            self.fire(&mut copy, &input, actor, now).is_ok()
        };
        (0..self.events.len())
            .filter_map(|e| EventId::try_from(e).ok())
            .filter_map(|event| {
                let base = EventInput {
                    event,
                    comment: Some("-"),
                    ..EventInput::default()
                };
                let mut choice = EventChoice {
                    event: self.event_name(event).to_owned(),
                    plain: false,
                    to_steps: Vec::new(),
                    on_behalf_of: Vec::new(),
                };
                if Some(event) == self.builtin.proxy {
                    choice.on_behalf_of = actor
                        .deputy_for
                        .iter()
                        .filter(|d| {
                            probe(EventInput {
                                on_behalf_of: Some(&d.principal),
                                ..base
                            })
                        })
                        .map(|d| d.principal.clone())
                        .collect();
                } else if Some(event) == self.builtin.return_ {
                    choice.plain = probe(base);
                    choice.to_steps = earlier
                        .iter()
                        .filter(|s| {
                            probe(EventInput {
                                to_step: Some(&s.id),
                                ..base
                            })
                        })
                        .map(|s| StepChoice {
                            id: s.id.clone(),
                            label: s.label.clone(),
                        })
                        .collect();
                } else {
                    choice.plain = probe(base);
                }
                let offered =
                    choice.plain || !choice.to_steps.is_empty() || !choice.on_behalf_of.is_empty();
                offered.then_some(choice)
            })
            .collect()
    }
}

/// An event an actor may fire now, with the parameters it may take (see
/// [`CompiledWorkflow::event_choices`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EventChoice {
    pub event: String,
    /// It may be fired without `to_step` or `on_behalf_of` (a `return` back to the applicant).
    pub plain: bool,
    /// `return`: the earlier steps of the running route it may send the instance back to.
    pub to_steps: Vec<StepChoice>,
    /// `proxy`: the absent approvers (user ids) the actor may decide for as their deputy.
    pub on_behalf_of: Vec<String>,
}

/// A step an event may name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StepChoice {
    pub id: String,
    pub label: super::definition::Label,
}

#[derive(Debug, Clone, Copy)]
enum ActKind {
    Own,
    Proxy,
    PullUp,
    Skip,
}

struct StepDone {
    act: StepAct,
    post_reviews: Vec<PostReview>,
}

fn no_route() -> Rejection {
    Rejection::one(
        RejectionKind::NotApplicable,
        Unmet::new(
            "event_not_applicable",
            "承認ルートが進行していません",
            "No approval route is running",
        ),
    )
}

/// Does one of the grants give `role` in the organisation the scope names?
pub(crate) fn holds<C: WorkflowContext>(
    grants: &[Grant],
    role: &str,
    scope: Option<&OrgScope>,
    ctx: &C,
) -> bool {
    let want = match scope {
        None => None,
        Some(OrgScope::Named(s)) => match ctx.organisation(s) {
            Some(org) => Some(org),
            None => return false,
        },
        Some(OrgScope::Fixed(org)) => Some(org.as_str()),
    };
    grants
        .iter()
        .any(|g| g.role == role && want.is_none_or(|w| g.org.as_deref() == Some(w)))
}

fn holds_any<C: WorkflowContext>(
    grants: &[Grant],
    roles: &[String],
    scope: Option<&OrgScope>,
    ctx: &C,
) -> bool {
    roles.iter().any(|r| holds(grants, r, scope, ctx))
}

fn scope_org<C: WorkflowContext>(step: &Step, ctx: &C) -> Option<String> {
    match step.org.as_ref()? {
        OrgScope::Named(s) => ctx.organisation(s).map(str::to_owned),
        OrgScope::Fixed(org) => Some(org.clone()),
    }
}

/// The reviewer slot (0 for a single step) this actor can fill at step `ix`, if any.
fn eligible_slot<C: WorkflowContext>(
    step: &Step,
    grants: &[Grant],
    ctx: &C,
    records: &[StepRecord],
    ix: usize,
) -> Option<usize> {
    let taken = |slot: usize| {
        records
            .iter()
            .any(|r| r.step == ix && r.slot == Some(slot) && r.mode != ActMode::Skipped)
    };
    step.roles()
        .iter()
        .enumerate()
        .find(|(slot, role)| !taken(*slot) && holds(grants, role, step.org.as_ref(), ctx))
        .map(|(slot, _)| slot)
}

fn step_complete(step: &Step, records: &[StepRecord], ix: usize) -> bool {
    let acted = records.iter().filter(|r| r.step == ix).count();
    match &step.kind {
        StepKind::Single { .. } => acted >= 1,
        StepKind::Parallel { need, .. } => {
            // A skipped or pulled-up parallel step counts as done.
            records
                .iter()
                .any(|r| r.step == ix && matches!(r.mode, ActMode::Skipped | ActMode::PullUp))
                || acted >= *need
        }
    }
}

/// Four-eyes: the submitter never approves; with `strict`, nobody acts at two steps.
fn four_eyes(strict: bool, rp: &RouteProgress, who: &str, submitter: &str, unmet: &mut Vec<Unmet>) {
    if who == submitter {
        unmet.push(Unmet::new(
            "submitter_cannot_approve",
            "申請者本人は決裁できません",
            "The submitter may not approve their own application",
        ));
    }
    // A pull-up is the later approver acting for a stalled step: it does not bar them from
    // their own step. Without `strict`, one person still fills one slot of a step only.
    let acted_before = rp.records.iter().any(|r| {
        (r.actor == who || r.on_behalf_of.as_deref() == Some(who))
            && !matches!(r.mode, ActMode::Skipped | ActMode::PullUp)
            && (strict || r.step == rp.current)
    });
    if acted_before {
        unmet.push(Unmet::new(
            "four_eyes",
            "同じ人が同じ案件の複数の段階で決裁することはできません",
            "The same person may not act at more than one step of the same instance",
        ));
    }
}

fn role_unmet(roles: &[String]) -> Unmet {
    Unmet::new(
        "role_not_permitted",
        format!(
            "この操作には次のいずれかの役割が必要です: {}",
            roles.join(", ")
        ),
        format!("This needs one of the roles: {}", roles.join(", ")),
    )
    .with_detail(serde_json::json!({ "roles": roles }))
}

fn step_role_unmet(step: &Step) -> Unmet {
    let roles = step.roles().join(", ");
    Unmet::new(
        "step_role_required",
        format!("「{}」の決裁者({roles})ではありません", step.label.ja),
        format!("You are not an approver of step \"{}\" ({roles})", step.id),
    )
    .with_detail(serde_json::json!({ "step": step.id, "roles": step.roles() }))
}

/// Built-in event names, re-exported for callers.
pub use builtin::ALL as BUILTIN_EVENTS;
