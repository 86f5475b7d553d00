//! The compiled, indexed form of a definition and the state of one instance.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::definition::{Label, TimerAction};
use super::registry::Guard;

/// Index of a state within its definition.
pub type StateId = u16;
/// Index of an event name within its definition.
pub type EventId = u16;

/// Events the engine itself understands in route states (and `acknowledge` everywhere).
pub mod builtin {
    /// Act for an absent approver as their registered deputy (代決).
    pub const PROXY: &str = "proxy";
    /// Skip absent intermediate approvers; they review after the fact (後閲).
    pub const SKIP: &str = "skip";
    /// A later-step approver acts for a stalled step (引上げ).
    pub const PULL_UP: &str = "pull_up";
    /// Take back one's own step action before the next person acts (引戻し).
    pub const RECALL: &str = "recall";
    /// Send back (差戻し); with `to_step` to an earlier step, otherwise the declared transition.
    pub const RETURN: &str = "return";
    /// Complete an after-the-fact review (後閲).
    pub const ACKNOWLEDGE: &str = "acknowledge";
    /// Every built-in event name.
    pub const ALL: [&str; 6] = [PROXY, SKIP, PULL_UP, RECALL, RETURN, ACKNOWLEDGE];
    /// Built-ins that a definition may not declare as its own transitions.
    pub const RESERVED: [&str; 5] = [PROXY, SKIP, PULL_UP, RECALL, ACKNOWLEDGE];
}

/// A validated definition, ready to run instances whose context is `C`.
pub struct CompiledWorkflow<C> {
    pub id: String,
    pub version: u32,
    pub context_kind: String,
    /// SHA-256 of the source file, recorded per `(id, version)`.
    pub content_hash: String,
    pub title: Label,
    pub create_roles: Vec<String>,
    pub create_org: Option<OrgScope>,
    /// The organisation scopes of the context kind (to list an instance's organisations).
    pub org_scopes: Vec<String>,
    pub states: Vec<State>,
    pub initial: StateId,
    pub events: Vec<String>,
    pub(crate) event_index: HashMap<String, EventId>,
    pub transitions: Vec<Transition<C>>,
    /// `candidates[state * events.len() + event]` = indices into `transitions`, in file order.
    pub(crate) candidates: Vec<Vec<u16>>,
    pub routes: Vec<Route>,
    pub timers: Vec<Timer>,
    pub(crate) step_providers: Vec<Option<super::registry::StepProvider<C>>>,
    pub(crate) builtin: BuiltinEvents,
}

/// Event ids of the built-in route events, where the definition uses routes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BuiltinEvents {
    pub proxy: Option<EventId>,
    pub skip: Option<EventId>,
    pub pull_up: Option<EventId>,
    pub recall: Option<EventId>,
    pub return_: Option<EventId>,
    pub acknowledge: Option<EventId>,
}

impl<C> CompiledWorkflow<C> {
    /// The id of an event name, if this definition knows it.
    pub fn event_id(&self, name: &str) -> Option<EventId> {
        self.event_index.get(name).copied()
    }

    /// The id of a state name.
    pub fn state_id(&self, name: &str) -> Option<StateId> {
        self.states
            .iter()
            .position(|s| s.id == name)
            .and_then(|i| StateId::try_from(i).ok())
    }

    /// The state's name.
    pub fn state_name(&self, id: StateId) -> &str {
        self.states
            .get(usize::from(id))
            .map_or("", |s| s.id.as_str())
    }

    /// The event's name.
    pub fn event_name(&self, id: EventId) -> &str {
        self.events.get(usize::from(id)).map_or("", String::as_str)
    }

    pub(crate) fn candidates(&self, state: StateId, event: EventId) -> &[u16] {
        let idx = usize::from(state) * self.events.len() + usize::from(event);
        self.candidates.get(idx).map_or(&[], Vec::as_slice)
    }

    /// Timers bound to a state (started on entry, cancelled on exit).
    pub fn state_timers(&self, state: StateId) -> impl Iterator<Item = &Timer> {
        self.timers.iter().filter(move |t| t.state == Some(state))
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub id: String,
    pub label: Label,
    pub terminal: bool,
    pub route: Option<u16>,
}

/// A declared transition with its guards built.
pub struct Transition<C> {
    pub event: EventId,
    pub from: Vec<StateId>,
    pub to: StateId,
    pub label: Label,
    pub roles: Vec<String>,
    pub org: Option<OrgScope>,
    pub require_comment: bool,
    pub guards: Vec<CompiledGuard<C>>,
    pub effects: Vec<EffectSpec>,
    /// Fired by completing the last step of the route of its source state.
    pub completes_route: bool,
}

/// A guard built from its name and parameters.
pub struct CompiledGuard<C> {
    pub name: String,
    pub guard: Box<dyn Guard<C>>,
}

/// An effect to run in the transaction of the transition (notify, timers, documents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectSpec {
    pub name: String,
    pub params: serde_json::Value,
}

/// An approval route (決裁ルート).
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub label: Label,
    pub event: EventId,
    pub four_eyes: bool,
    /// Static steps; empty when `steps_from` is set.
    pub steps: Vec<Step>,
    pub steps_from: Option<String>,
}

/// One step of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub label: Label,
    pub kind: StepKind,
    pub org: Option<OrgScope>,
    #[serde(default)]
    pub skippable: bool,
    #[serde(default)]
    pub pull_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Single {
        role: String,
    },
    /// 合議: `need` of the reviewer slots must approve, each slot by a distinct person.
    Parallel {
        reviewers: Vec<String>,
        need: usize,
    },
}

impl Step {
    /// The roles that may act at this step.
    pub fn roles(&self) -> &[String] {
        match &self.kind {
            StepKind::Single { role } => std::slice::from_ref(role),
            StepKind::Parallel { reviewers, .. } => reviewers,
        }
    }
}

/// Which organisation a role must be held in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgScope {
    /// A named scope resolved from the context (e.g. `root_consignor`).
    Named(String),
    /// A fixed organisation id (steps made by step providers).
    Fixed(String),
}

#[derive(Debug, Clone)]
pub struct Timer {
    pub id: String,
    pub label: Label,
    pub state: Option<StateId>,
    pub after_business_days: u32,
    pub action: TimerAction,
    pub role: Option<String>,
    pub template: String,
}

/// A role held in an organisation (`org: None` = not tied to one, e.g. the system).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub role: String,
    pub org: Option<String>,
}

/// Someone the actor is a registered deputy for (代決), with the grants of that person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deputyship {
    pub principal: String,
    pub grants: Vec<Grant>,
}

/// Who fires an event, as resolved on the day they act.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: &'a str,
    pub grants: &'a [Grant],
    pub deputy_for: &'a [Deputyship],
}

/// The event and its parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventInput<'a> {
    pub event: EventId,
    pub comment: Option<&'a str>,
    /// For `return`: the earlier step to send back to.
    pub to_step: Option<&'a str>,
    /// For `proxy`: the absent approver; for `acknowledge`: unused.
    pub on_behalf_of: Option<&'a str>,
    /// Domain data for guards.
    pub data: Option<&'a serde_json::Value>,
}

/// The injected clock: the instant and the business date it falls on (Japan time).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: chrono::DateTime<chrono::Utc>,
    pub today: chrono::NaiveDate,
}

/// One running (or finished) instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance<C> {
    pub state: StateId,
    pub submitter: String,
    pub progress: Progress,
    pub ctx: C,
}

/// Route progress and after-the-fact reviews; stored as JSON beside the instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Box<RouteProgress>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_reviews: Vec<PostReview>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteProgress {
    pub route: String,
    /// The steps of this run (copied at entry, so a dynamic route stays stable).
    pub steps: Vec<Step>,
    pub current: usize,
    /// Every step action of this run, in order.
    pub records: Vec<StepRecord>,
}

/// How a step was acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActMode {
    Approve,
    /// 代決 by a registered deputy.
    Proxy,
    /// 引上げ by a later-step approver.
    PullUp,
    /// Skipped while its approver was absent (後閲 follows).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub mode: ActMode,
    /// The reviewer slot of a parallel step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
}

/// An after-the-fact review (後閲) owed by an absent approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostReview {
    pub route: String,
    pub step: String,
    /// The absent approver, where known (代決); otherwise anyone holding `role` in `org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub reason: ActMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_by: Option<String>,
}
