//! The boundary between the typed engine and the rest of the product: every loaded definition
//! behind one object-safe trait, with contexts and progress as JSON as they are stored.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::compile::{compile, peek_header, DefinitionError};
use super::engine::{Action, Rejection, RejectionKind};
use super::model::{
    Actor, CompiledWorkflow, EffectSpec, EventInput, Grant, Instance, Now, OrgScope, PostReview,
    Progress, Timer,
};
use super::registry::{Registry, Unmet, Vocabulary, WorkflowContext};

/// An instance as stored: the engine's part of a `workflow_instances` row.
#[derive(Debug, Clone)]
pub struct StoredInstance {
    pub state: String,
    pub submitter: String,
    pub context: serde_json::Value,
    pub progress: serde_json::Value,
}

/// A request to fire an event, as received.
#[derive(Debug, Clone, Default)]
pub struct EventRequest<'a> {
    pub event: &'a str,
    pub comment: Option<&'a str>,
    pub to_step: Option<&'a str>,
    pub on_behalf_of: Option<&'a str>,
    pub data: Option<&'a serde_json::Value>,
}

/// What an applied event changed, for the services to persist in one transaction.
#[derive(Debug, Clone, Serialize)]
pub struct Fired {
    pub from: String,
    pub to: String,
    pub event: String,
    pub action: Action,
    pub step: Option<String>,
    pub on_behalf_of: Option<String>,
    pub progress: serde_json::Value,
    pub effects: Vec<EffectSpec>,
    pub post_reviews: Vec<PostReview>,
    /// Timers to start and to cancel: those bound to the states entered and left, and those
    /// named by `start_timer` / `cancel_timer` effects.
    #[serde(skip)]
    pub timers_started: Vec<Timer>,
    pub timers_cancelled: Vec<String>,
}

/// Why a request could not be applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum FireError {
    /// The definition has no such event; `known` lists those it has.
    UnknownEvent { event: String, known: Vec<String> },
    /// The stored instance does not fit its definition (a state or JSON that cannot be read).
    Corrupt { reason: String },
    /// The engine refused it.
    Rejected(Rejection),
}

/// A new instance in its stored form.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub state: String,
    pub context: serde_json::Value,
    pub progress: serde_json::Value,
    /// The organisation that owns it (where the creator's role was required), if scoped.
    pub owner: Option<String>,
}

/// One loaded definition of any kind.
pub trait WorkflowRuntime: Send + Sync {
    fn id(&self) -> &str;
    fn version(&self) -> u32;
    fn context_kind(&self) -> &str;
    fn content_hash(&self) -> &str;
    fn source(&self) -> &str;
    /// The definition as data, for the API and the diagram.
    fn describe(&self) -> super::describe::Description;
    /// Checks the context and the actor's right to start, and returns the initial stored form.
    fn create(
        &self,
        submitter: &str,
        actor: &Actor<'_>,
        context: serde_json::Value,
    ) -> Result<Created, FireError>;
    /// Applies an event to a stored instance.
    fn fire(
        &self,
        stored: &StoredInstance,
        request: &EventRequest<'_>,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Fired, FireError>;
    /// Events this actor may fire now.
    fn available_events(
        &self,
        stored: &StoredInstance,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Vec<String>, FireError>;
    /// Events this actor may fire now, with the parameter values each may take.
    fn event_choices(
        &self,
        stored: &StoredInstance,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Vec<super::EventChoice>, FireError>;
    /// Timers bound to the initial state (started at creation).
    fn initial_timers(&self) -> Vec<Timer>;
    /// The organisations an instance involves (for authorisation).
    fn organisations(&self, stored: &StoredInstance) -> Result<Vec<String>, FireError>;
    /// Whether the instance has been decided: out of its initial state and of every route.
    fn is_decided(&self, state: &str) -> bool;
    /// The state's label.
    fn state_label(&self, state: &str) -> Option<super::definition::Label>;
    /// Who the instance waits for at the current step of its running route, if any (the
    /// people `next_actors` notifications and reminders go to).
    fn waiting_for(&self, stored: &StoredInstance) -> Result<Option<Waiting>, FireError>;
    /// The organisation a named scope (e.g. `root_consignor`) resolves to for the instance.
    fn scope_organisation(
        &self,
        stored: &StoredInstance,
        scope: &str,
    ) -> Result<Option<String>, FireError>;
}

/// The current step of an instance's running route and who may act at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Waiting {
    pub step: String,
    pub label: super::definition::Label,
    /// The roles that may act, each in the organisation the step names (if it names one); for
    /// a co-review (合議), only the reviewer slots still open.
    pub grants: Vec<Grant>,
}

struct Loaded<C> {
    wf: CompiledWorkflow<C>,
    source: String,
}

fn corrupt(reason: impl Into<String>) -> FireError {
    FireError::Corrupt {
        reason: reason.into(),
    }
}

impl<C: WorkflowContext + Clone> Loaded<C> {
    fn load(&self, stored: &StoredInstance) -> Result<Instance<C>, FireError> {
        let state = self
            .wf
            .state_id(&stored.state)
            .ok_or_else(|| corrupt(format!("unknown state \"{}\"", stored.state)))?;
        let ctx: C = serde_json::from_value(stored.context.clone())
            .map_err(|e| corrupt(format!("context: {e}")))?;
        let progress: Progress = if stored.progress.is_null() {
            Progress::default()
        } else {
            serde_json::from_value(stored.progress.clone())
                .map_err(|e| corrupt(format!("progress: {e}")))?
        };
        Ok(Instance {
            state,
            submitter: stored.submitter.clone(),
            progress,
            ctx,
        })
    }
}

impl<C: WorkflowContext + Clone> WorkflowRuntime for Loaded<C> {
    fn id(&self) -> &str {
        &self.wf.id
    }
    fn version(&self) -> u32 {
        self.wf.version
    }
    fn context_kind(&self) -> &str {
        &self.wf.context_kind
    }
    fn content_hash(&self) -> &str {
        &self.wf.content_hash
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn describe(&self) -> super::describe::Description {
        super::describe::describe(&self.wf)
    }

    fn create(
        &self,
        submitter: &str,
        actor: &Actor<'_>,
        context: serde_json::Value,
    ) -> Result<Created, FireError> {
        let ctx: C = serde_json::from_value(context).map_err(|e| {
            FireError::Rejected(Rejection {
                kind: RejectionKind::InvalidInput,
                unmet: vec![Unmet::new(
                    "invalid_context",
                    format!("コンテキストが不正です: {e}"),
                    format!("The context is invalid: {e}"),
                )],
            })
        })?;
        self.wf
            .may_create(actor, &ctx)
            .map_err(FireError::Rejected)?;
        let owner = self.wf.owner_organisation(&ctx);
        let inst = self.wf.start(submitter, ctx);
        Ok(Created {
            owner,
            state: self.wf.state_name(inst.state).to_owned(),
            context: serde_json::to_value(&inst.ctx).map_err(|e| corrupt(e.to_string()))?,
            progress: serde_json::to_value(&inst.progress).map_err(|e| corrupt(e.to_string()))?,
        })
    }

    fn fire(
        &self,
        stored: &StoredInstance,
        request: &EventRequest<'_>,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Fired, FireError> {
        let event = self
            .wf
            .event_id(request.event)
            .ok_or_else(|| FireError::UnknownEvent {
                event: request.event.to_owned(),
                known: self.wf.events.clone(),
            })?;
        let mut inst = self.load(stored)?;
        let input = EventInput {
            event,
            comment: request.comment,
            to_step: request.to_step,
            on_behalf_of: request.on_behalf_of,
            data: request.data,
        };
        let out = self
            .wf
            .fire(&mut inst, &input, actor, now)
            .map_err(FireError::Rejected)?;
        let on_behalf_of = match &out.action {
            Action::Step(a) => a.on_behalf_of.clone(),
            Action::Transition {
                by_step: Some(a), ..
            } => a.on_behalf_of.clone(),
            _ => None,
        };
        let moved = out.from != out.to;
        let mut timers_started: Vec<Timer> = if moved {
            self.wf.state_timers(out.to).cloned().collect()
        } else {
            Vec::new()
        };
        let mut timers_cancelled: Vec<String> = if moved {
            self.wf
                .state_timers(out.from)
                .map(|t| t.id.clone())
                .collect()
        } else {
            Vec::new()
        };
        // Timers named by effects (validated at load to exist).
        for e in out.effects {
            let named = e.params["timer"].as_str();
            let timer = named.and_then(|n| self.wf.timers.iter().find(|t| t.id == n));
            match (e.name.as_str(), timer) {
                ("start_timer", Some(t)) => timers_started.push(t.clone()),
                ("cancel_timer", Some(t)) => timers_cancelled.push(t.id.clone()),
                _ => {}
            }
        }
        Ok(Fired {
            from: self.wf.state_name(out.from).to_owned(),
            to: self.wf.state_name(out.to).to_owned(),
            event: request.event.to_owned(),
            step: out.step.clone(),
            on_behalf_of,
            progress: serde_json::to_value(&inst.progress).map_err(|e| corrupt(e.to_string()))?,
            effects: out.effects.to_vec(),
            post_reviews: out.post_reviews.clone(),
            timers_started,
            timers_cancelled,
            action: out.action,
        })
    }

    fn available_events(
        &self,
        stored: &StoredInstance,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Vec<String>, FireError> {
        let inst = self.load(stored)?;
        Ok(self
            .wf
            .available_events(&inst, actor, now)
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    fn event_choices(
        &self,
        stored: &StoredInstance,
        actor: &Actor<'_>,
        now: Now,
    ) -> Result<Vec<super::EventChoice>, FireError> {
        let inst = self.load(stored)?;
        Ok(self.wf.event_choices(&inst, actor, now))
    }

    fn initial_timers(&self) -> Vec<Timer> {
        self.wf.state_timers(self.wf.initial).cloned().collect()
    }

    fn organisations(&self, stored: &StoredInstance) -> Result<Vec<String>, FireError> {
        Ok(self.wf.organisations(&self.load(stored)?))
    }

    fn is_decided(&self, state: &str) -> bool {
        self.wf.state_id(state).is_some_and(|id| {
            id != self.wf.initial && self.wf.states[usize::from(id)].route.is_none()
        })
    }

    fn state_label(&self, state: &str) -> Option<super::definition::Label> {
        let id = self.wf.state_id(state)?;
        Some(self.wf.states[usize::from(id)].label.clone())
    }

    fn waiting_for(&self, stored: &StoredInstance) -> Result<Option<Waiting>, FireError> {
        let inst = self.load(stored)?;
        let in_route = self.wf.states[usize::from(inst.state)].route.is_some();
        let Some(rp) = inst.progress.route.as_deref().filter(|_| in_route) else {
            return Ok(None);
        };
        let Some(step) = rp.steps.get(rp.current) else {
            return Ok(None);
        };
        let org = match &step.org {
            Some(OrgScope::Named(scope)) => inst.ctx.organisation(scope).map(str::to_owned),
            Some(OrgScope::Fixed(org)) => Some(org.clone()),
            None => None,
        };
        let taken = |slot: usize| {
            rp.records
                .iter()
                .any(|r| r.step == rp.current && r.slot == Some(slot))
        };
        let mut grants: Vec<Grant> = step
            .roles()
            .iter()
            .enumerate()
            .filter(|(slot, _)| !taken(*slot))
            .map(|(_, role)| Grant {
                role: role.clone(),
                org: org.clone(),
            })
            .collect();
        grants.sort();
        grants.dedup();
        Ok(Some(Waiting {
            step: step.id.clone(),
            label: step.label.clone(),
            grants,
        }))
    }

    fn scope_organisation(
        &self,
        stored: &StoredInstance,
        scope: &str,
    ) -> Result<Option<String>, FireError> {
        Ok(self
            .load(stored)?
            .ctx
            .organisation(scope)
            .map(str::to_owned))
    }
}

/// Compiles definitions of one context kind.
type Compiler = Box<
    dyn Fn(&str, &str, &Vocabulary) -> Result<Arc<dyn WorkflowRuntime>, Vec<DefinitionError>>
        + Send
        + Sync,
>;

/// The context kinds a deployment knows, each with its registry.
pub struct Kinds {
    compilers: BTreeMap<String, Compiler>,
    pub vocabulary: Vocabulary,
}

impl Kinds {
    /// No kinds yet, with the given vocabulary.
    pub fn empty(vocabulary: Vocabulary) -> Self {
        Self {
            compilers: BTreeMap::new(),
            vocabulary,
        }
    }

    /// The product's kinds: `generic` and `subcontract`.
    pub fn product() -> Self {
        let mut k = Self::empty(Vocabulary::product());
        k.add(super::kinds::generic::registry);
        k.add(super::kinds::subcontract::registry);
        k
    }

    /// Adds a kind; `make` builds its registry (a registry is built once per compiled file).
    pub fn add<C: WorkflowContext + Clone>(&mut self, make: fn() -> Registry<C>) -> &mut Self {
        let registry = make();
        let kind = registry.kind.to_owned();
        let registry = Arc::new(registry);
        self.compilers.insert(
            kind,
            Box::new(move |file, source, vocab| {
                let wf = compile(file, source, &registry, vocab)?;
                Ok(Arc::new(Loaded {
                    wf,
                    source: source.to_owned(),
                }) as Arc<dyn WorkflowRuntime>)
            }),
        );
        self
    }

    /// Compiles one source with the registry of the kind it names.
    pub fn compile(
        &self,
        file: &str,
        source: &str,
    ) -> Result<Arc<dyn WorkflowRuntime>, Vec<DefinitionError>> {
        let (_, _, kind) = peek_header(file, source).map_err(|e| vec![e])?;
        match self.compilers.get(&kind) {
            Some(c) => c(file, source, &self.vocabulary),
            None => Err(vec![DefinitionError {
                file: file.to_owned(),
                line: source
                    .lines()
                    .position(|l| l.trim_start().starts_with("context"))
                    .map_or(1, |i| i + 1),
                message: format!(
                    "unknown context kind \"{kind}\" (known: {})",
                    self.compilers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }]),
        }
    }
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.compilers.keys()).finish()
    }
}

/// Every loaded definition, by `(id, version)`; new instances start on the latest version.
#[derive(Clone, Default)]
pub struct WorkflowSet {
    by_key: BTreeMap<(String, u32), Arc<dyn WorkflowRuntime>>,
}

impl std::fmt::Debug for WorkflowSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_key.keys()).finish()
    }
}

impl WorkflowSet {
    /// Adds a compiled definition; an existing `(id, version)` with another hash is refused.
    pub fn insert(&mut self, rt: Arc<dyn WorkflowRuntime>) -> Result<(), String> {
        let key = (rt.id().to_owned(), rt.version());
        if let Some(old) = self.by_key.get(&key) {
            if old.content_hash() != rt.content_hash() {
                return Err(format!(
                    "workflow \"{}\" version {} was changed without a version bump",
                    key.0, key.1
                ));
            }
            return Ok(());
        }
        self.by_key.insert(key, rt);
        Ok(())
    }

    pub fn get(&self, id: &str, version: u32) -> Option<&Arc<dyn WorkflowRuntime>> {
        self.by_key.get(&(id.to_owned(), version))
    }

    /// The highest version of a workflow.
    pub fn latest(&self, id: &str) -> Option<&Arc<dyn WorkflowRuntime>> {
        self.by_key
            .range((id.to_owned(), 0)..=(id.to_owned(), u32::MAX))
            .next_back()
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn WorkflowRuntime>> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Reads and compiles every `*.toml` in a folder (sorted by name); all problems of all files
/// are reported together. Two files with one `(id, version)` are refused.
pub fn load_dir(dir: &Path, kinds: &Kinds) -> Result<WorkflowSet, Vec<DefinitionError>> {
    let mut errors = Vec::new();
    let mut set = WorkflowSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![DefinitionError {
                file: dir.display().to_string(),
                line: 0,
                message: format!("cannot read the folder: {e}"),
            }])
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    for path in paths {
        let file = path.display().to_string();
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                errors.push(DefinitionError {
                    file,
                    line: 0,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match kinds.compile(&file, &source) {
            Ok(rt) => {
                let key = (rt.id().to_owned(), rt.version());
                if let Some(other) = seen.insert(key.clone(), file.clone()) {
                    errors.push(DefinitionError {
                        file,
                        line: 1,
                        message: format!(
                            "workflow \"{}\" version {} is also defined in {other}",
                            key.0, key.1
                        ),
                    });
                    continue;
                }
                if let Err(m) = set.insert(rt) {
                    errors.push(DefinitionError {
                        file,
                        line: 1,
                        message: m,
                    });
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}
