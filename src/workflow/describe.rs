//! A definition as plain data: what the API returns and what the diagram draws.

use serde::Serialize;

use super::definition::{Label, TimerAction};
use super::model::{CompiledWorkflow, OrgScope, Step};

#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub id: String,
    pub version: u32,
    pub context: String,
    pub content_hash: String,
    pub title: Label,
    pub create_roles: Vec<String>,
    /// The organisation scope that owns a new instance (`create_org`), if the definition names
    /// one.
    pub create_org: Option<String>,
    pub initial: String,
    pub states: Vec<StateInfo>,
    pub transitions: Vec<TransitionInfo>,
    pub routes: Vec<RouteInfo>,
    pub timers: Vec<TimerInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateInfo {
    pub id: String,
    pub label: Label,
    pub terminal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionInfo {
    pub event: String,
    pub from: Vec<String>,
    pub to: String,
    pub label: Label,
    pub roles: Vec<String>,
    pub guards: Vec<String>,
    pub effects: Vec<String>,
    pub completes_route: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    pub id: String,
    pub label: Label,
    pub event: String,
    pub four_eyes: bool,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimerInfo {
    pub id: String,
    pub label: Label,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub after_business_days: u32,
    pub action: TimerAction,
}

pub(crate) fn describe<C>(wf: &CompiledWorkflow<C>) -> Description {
    Description {
        id: wf.id.clone(),
        version: wf.version,
        context: wf.context_kind.clone(),
        content_hash: wf.content_hash.clone(),
        title: wf.title.clone(),
        create_roles: wf.create_roles.clone(),
        create_org: wf.create_org.as_ref().map(|scope| match scope {
            OrgScope::Named(name) | OrgScope::Fixed(name) => name.clone(),
        }),
        initial: wf.state_name(wf.initial).to_owned(),
        states: wf
            .states
            .iter()
            .map(|s| StateInfo {
                id: s.id.clone(),
                label: s.label.clone(),
                terminal: s.terminal,
                route: s
                    .route
                    .and_then(|r| wf.routes.get(usize::from(r)))
                    .map(|r| r.id.clone()),
            })
            .collect(),
        transitions: wf
            .transitions
            .iter()
            .map(|t| TransitionInfo {
                event: wf.event_name(t.event).to_owned(),
                from: t
                    .from
                    .iter()
                    .map(|&s| wf.state_name(s).to_owned())
                    .collect(),
                to: wf.state_name(t.to).to_owned(),
                label: t.label.clone(),
                roles: t.roles.clone(),
                guards: t.guards.iter().map(|g| g.name.clone()).collect(),
                effects: t.effects.iter().map(|e| e.name.clone()).collect(),
                completes_route: t.completes_route,
            })
            .collect(),
        routes: wf
            .routes
            .iter()
            .map(|r| RouteInfo {
                id: r.id.clone(),
                label: r.label.clone(),
                event: wf.event_name(r.event).to_owned(),
                four_eyes: r.four_eyes,
                steps: r.steps.clone(),
                steps_from: r.steps_from.clone(),
            })
            .collect(),
        timers: wf
            .timers
            .iter()
            .map(|t| TimerInfo {
                id: t.id.clone(),
                label: t.label.clone(),
                state: t.state.map(|s| wf.state_name(s).to_owned()),
                after_business_days: t.after_business_days,
                action: t.action,
            })
            .collect(),
    }
}
