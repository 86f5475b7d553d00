//! Guards, effects and step providers are Rust code registered under names; definition files
//! only compose them. A registry serves one context kind.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{Actor, EventInput, Instance, Now, Step};

pub use crate::error::Msg;

/// One unmet requirement of a refused event.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Unmet {
    /// Stable machine-readable code, e.g. `role_not_permitted`.
    pub code: String,
    /// The guard that reported it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    pub message: Msg,
    /// Extra machine-readable facts (which tier, which evidence, the expiry date, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl Unmet {
    pub fn new(code: &str, ja: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            guard: None,
            message: Msg::new(ja, en),
            detail: None,
        }
    }

    #[must_use]
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// What a guard sees.
pub struct GuardInput<'a, C> {
    pub instance: &'a Instance<C>,
    pub actor: &'a Actor<'a>,
    pub event: &'a EventInput<'a>,
    pub now: Now,
}

/// A named condition on a transition. It appends every unmet requirement it finds.
pub trait Guard<C>: Send + Sync {
    fn check(&self, input: &GuardInput<'_, C>, unmet: &mut Vec<Unmet>);
}

impl<C, F> Guard<C> for F
where
    F: Fn(&GuardInput<'_, C>, &mut Vec<Unmet>) + Send + Sync,
{
    fn check(&self, input: &GuardInput<'_, C>, unmet: &mut Vec<Unmet>) {
        self(input, unmet);
    }
}

/// Builds a guard from the parameters written in the file; an error names the problem.
pub type GuardFactory<C> =
    Box<dyn Fn(&toml::Table) -> Result<Box<dyn Guard<C>>, String> + Send + Sync>;

/// Produces the steps of a dynamic route from the context (e.g. one per intermediate tier).
pub type StepProvider<C> = fn(&C) -> Vec<Step>;

/// Checks an effect's parameters at load time.
pub type EffectValidator = fn(&toml::Table, &EffectCheck<'_>) -> Result<(), String>;

/// What an effect validator may consult.
pub struct EffectCheck<'a> {
    pub vocabulary: &'a Vocabulary,
    pub timers: &'a [String],
}

/// The typed context of a workflow kind.
pub trait WorkflowContext: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Resolves a named organisation scope (e.g. `root_consignor`) to an organisation id.
    fn organisation(&self, _scope: &str) -> Option<&str> {
        None
    }

    /// Organisations the instance involves beyond its named scopes (a subcontract's
    /// intermediate tiers); their members may see it in every state.
    fn further_organisations(&self) -> &[String] {
        &[]
    }
}

impl WorkflowContext for serde_json::Value {
    fn organisation(&self, scope: &str) -> Option<&str> {
        self.get("organisations")?.get(scope)?.as_str()
    }
}

/// Names known across all kinds: roles, mail templates, notification recipients.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub roles: BTreeSet<String>,
    pub templates: BTreeSet<String>,
    pub recipients: BTreeSet<String>,
}

impl Vocabulary {
    /// The product's vocabulary.
    pub fn product() -> Self {
        let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
        Self {
            roles: set(crate::domain::ROLES),
            templates: set(crate::domain::MAIL_TEMPLATES),
            recipients: set(crate::domain::RECIPIENTS),
        }
    }

    #[must_use]
    pub fn with_roles(mut self, roles: &[&str]) -> Self {
        self.roles.extend(roles.iter().map(|r| (*r).to_owned()));
        self
    }
}

/// The guards, effects and step providers of one context kind.
pub struct Registry<C> {
    pub kind: &'static str,
    guards: HashMap<&'static str, GuardFactory<C>>,
    effects: HashMap<&'static str, EffectValidator>,
    step_providers: HashMap<&'static str, StepProvider<C>>,
    org_scopes: BTreeSet<&'static str>,
}

impl<C> fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kind", &self.kind)
            .field("guards", &self.guards.keys().collect::<BTreeSet<_>>())
            .finish_non_exhaustive()
    }
}

impl<C: WorkflowContext> Registry<C> {
    /// A registry with the guards and effects every kind has.
    pub fn new(kind: &'static str) -> Self {
        let mut r = Self {
            kind,
            guards: HashMap::new(),
            effects: HashMap::new(),
            step_providers: HashMap::new(),
            org_scopes: BTreeSet::new(),
        };
        super::common::register(&mut r);
        r
    }

    pub fn guard(&mut self, name: &'static str, factory: GuardFactory<C>) -> &mut Self {
        self.guards.insert(name, factory);
        self
    }

    /// Registers a guard that takes no parameters.
    pub fn simple_guard<G>(&mut self, name: &'static str, guard: G) -> &mut Self
    where
        G: Fn(&GuardInput<'_, C>, &mut Vec<Unmet>) + Send + Sync + Clone + 'static,
    {
        self.guard(
            name,
            Box::new(move |params: &toml::Table| {
                if let Some(k) = params.keys().next() {
                    return Err(format!("guard \"{name}\" takes no parameter, got \"{k}\""));
                }
                Ok(Box::new(guard.clone()) as Box<dyn Guard<C>>)
            }),
        )
    }

    pub fn effect(&mut self, name: &'static str, validator: EffectValidator) -> &mut Self {
        self.effects.insert(name, validator);
        self
    }

    pub fn step_provider(&mut self, name: &'static str, provider: StepProvider<C>) -> &mut Self {
        self.step_providers.insert(name, provider);
        self
    }

    pub fn org_scope(&mut self, name: &'static str) -> &mut Self {
        self.org_scopes.insert(name);
        self
    }

    pub(crate) fn build_guard(
        &self,
        name: &str,
        params: &toml::Table,
    ) -> Option<Result<Box<dyn Guard<C>>, String>> {
        self.guards.get(name).map(|f| f(params))
    }

    pub(crate) fn effect_validator(&self, name: &str) -> Option<EffectValidator> {
        self.effects.get(name).copied()
    }

    pub(crate) fn provider(&self, name: &str) -> Option<StepProvider<C>> {
        self.step_providers.get(name).copied()
    }

    pub(crate) fn knows_scope(&self, name: &str) -> bool {
        self.org_scopes.contains(name)
    }

    pub(crate) fn scope_names(&self) -> Vec<String> {
        self.org_scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Registered guard names, for messages and documentation.
    pub fn guard_names(&self) -> BTreeSet<&'static str> {
        self.guards.keys().copied().collect()
    }
}
