//! The workflow definition file format (TOML), as written by people.
//!
//! These types mirror the file one to one; `compile` turns them into an indexed, validated
//! [`crate::workflow::CompiledWorkflow`]. Table entries keep their source span so that every
//! validation message can name the line.

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A label in both UI languages.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Label {
    #[serde(default)]
    pub ja: String,
    #[serde(default)]
    pub en: String,
}

/// One workflow definition file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    pub id: Spanned<String>,
    pub version: Spanned<u32>,
    /// The context kind; selects the registry of guards, effects and step providers.
    pub context: Spanned<String>,
    pub title: Option<Spanned<Label>>,
    /// Roles that may start an instance.
    #[serde(default)]
    pub create_roles: Vec<Spanned<String>>,
    /// Organisation scope in which `create_roles` must be held (e.g. `applicant`).
    pub create_org: Option<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<StateDef>>,
    #[serde(default)]
    pub transitions: Vec<Spanned<TransitionDef>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteDef>>,
    #[serde(default)]
    pub timers: Vec<Spanned<TimerDef>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    pub id: String,
    pub label: Option<Label>,
    #[serde(default)]
    pub initial: bool,
    #[serde(default)]
    pub terminal: bool,
    /// A route state: the named approval route runs while the instance is here.
    pub route: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    pub event: String,
    pub from: Vec<String>,
    pub to: String,
    pub label: Option<Label>,
    /// Roles that may fire it; empty means "decided by the route step" (route states only).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Organisation scope for `roles` (e.g. `root_consignor`), resolved by the context kind.
    pub org: Option<String>,
    #[serde(default)]
    pub require_comment: bool,
    #[serde(default)]
    pub guards: Vec<Spanned<NamedRef>>,
    #[serde(default)]
    pub effects: Vec<Spanned<NamedRef>>,
}

/// A reference to a guard or effect registered in Rust, with its parameters.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NamedRef {
    pub name: String,
    #[serde(flatten)]
    pub params: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    pub id: String,
    pub label: Option<Label>,
    /// The event that acts on a step (e.g. `approve`, `endorse`); completing the last step fires
    /// the transition with this event out of the route state.
    pub event: String,
    /// The actor of one step may not act at a later step of the same instance.
    #[serde(default = "default_true")]
    pub four_eyes: bool,
    /// Steps produced at run time by a registered step provider (e.g. intermediate tiers).
    pub steps_from: Option<String>,
    #[serde(default)]
    pub steps: Vec<Spanned<StepDef>>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub id: String,
    pub label: Option<Label>,
    /// `single` (default) or `parallel` (合議).
    #[serde(default)]
    pub kind: StepKindDef,
    /// The role of a single step.
    pub role: Option<String>,
    /// The reviewer roles of a parallel step, one slot each.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// How many reviewers a parallel step needs: `"all"`, `"any"` or a number.
    pub require: Option<toml::Value>,
    /// Organisation scope of the role (e.g. `root_consignor`), resolved by the context kind.
    pub org: Option<String>,
    /// An absent approver at this step may be skipped, with an after-the-fact review (後閲).
    #[serde(default)]
    pub skippable: bool,
    /// A later-step approver may act for this step when it stalls (引上げ).
    #[serde(default)]
    pub pull_up: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepKindDef {
    #[default]
    Single,
    Parallel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerDef {
    pub id: String,
    pub label: Option<Label>,
    /// Started on entering this state and cancelled on leaving it; without a state the timer is
    /// started and cancelled by the `start_timer` / `cancel_timer` effects.
    pub state: Option<String>,
    pub after_business_days: u32,
    pub action: TimerAction,
    /// The role to escalate to (`escalate`) or to remind besides the current step's actors.
    pub role: Option<String>,
    pub template: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimerAction {
    Remind,
    Escalate,
}
