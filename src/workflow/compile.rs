//! Validation at load: every problem is reported with the file, the line and what is wrong, and
//! a definition with any problem is refused.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::definition::{DefinitionFile, Label, NamedRef, StepKindDef};
use super::model::{
    builtin, BuiltinEvents, CompiledGuard, CompiledWorkflow, EffectSpec, EventId, OrgScope, Route,
    State, StateId, Step, StepKind, Timer, Transition,
};
use super::registry::{EffectCheck, Registry, Vocabulary, WorkflowContext};

/// One problem found in a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The SHA-256 (hex) of a definition's source, recorded per `(id, version)`.
pub fn content_hash(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// Reads the header (`id`, `version`, `context`) without validating the rest, so the caller can
/// pick the registry of the right kind.
pub fn peek_header(file: &str, source: &str) -> Result<(String, u32, String), DefinitionError> {
    #[derive(serde::Deserialize)]
    struct Header {
        id: String,
        version: u32,
        context: String,
    }
    let doc: toml::Table = toml::from_str(source).map_err(|e| parse_error(file, source, &e))?;
    let header: Header = toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| DefinitionError {
            file: file.to_owned(),
            line: 1,
            message: e.message().to_owned(),
        })?;
    Ok((header.id, header.version, header.context))
}

fn parse_error(file: &str, source: &str, e: &toml::de::Error) -> DefinitionError {
    DefinitionError {
        file: file.to_owned(),
        line: e.span().map_or(1, |s| line_of(source, s.start)),
        message: e.message().to_owned(),
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source
        .get(..offset)
        .map_or(1, |head| head.bytes().filter(|&b| b == b'\n').count() + 1)
}

struct Errors<'a> {
    file: &'a str,
    source: &'a str,
    list: Vec<DefinitionError>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.list.push(DefinitionError {
            file: self.file.to_owned(),
            line: line_of(self.source, span.start),
            message: message.into(),
        });
    }
}

fn label_missing(label: Option<&Label>) -> Option<&'static str> {
    match label {
        None => Some("ja and en"),
        Some(l) if l.ja.trim().is_empty() && l.en.trim().is_empty() => Some("ja and en"),
        Some(l) if l.ja.trim().is_empty() => Some("ja"),
        Some(l) if l.en.trim().is_empty() => Some("en"),
        Some(_) => None,
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(Default)]
struct EventTable {
    names: Vec<String>,
    index: HashMap<String, EventId>,
}

impl EventTable {
    fn intern(&mut self, name: &str) -> EventId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = EventId::try_from(self.names.len()).unwrap_or(EventId::MAX);
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }
}

/// Parses and validates one definition against the registry of its kind.
pub fn compile<C: WorkflowContext>(
    file: &str,
    source: &str,
    registry: &Registry<C>,
    vocabulary: &Vocabulary,
) -> Result<CompiledWorkflow<C>, Vec<DefinitionError>> {
    let def: DefinitionFile =
        toml::from_str(source).map_err(|e| vec![parse_error(file, source, &e)])?;
    let mut err = Errors {
        file,
        source,
        list: Vec::new(),
    };

    if !valid_ident(def.id.get_ref()) {
        err.at(
            def.id.span(),
            format!(
                "id \"{}\" must be lowercase letters, digits and underscores",
                def.id.get_ref()
            ),
        );
    }
    if *def.version.get_ref() == 0 {
        err.at(def.version.span(), "version must be 1 or more");
    }
    if def.context.get_ref() != registry.kind {
        err.at(
            def.context.span(),
            format!(
                "context \"{}\" does not match the registry \"{}\"",
                def.context.get_ref(),
                registry.kind
            ),
        );
    }
    match &def.title {
        Some(t) => {
            if let Some(which) = label_missing(Some(t.get_ref())) {
                err.at(t.span(), format!("title is missing its {which} text"));
            }
        }
        None => err.at(0..0, "title (ja and en) is missing"),
    }
    let check_role = |err: &mut Errors<'_>, span: Range<usize>, role: &str, what: &str| {
        if !vocabulary.roles.contains(role) {
            err.at(span, format!("unknown role \"{role}\" in {what}"));
        }
    };
    let check_scope = |err: &mut Errors<'_>, span: Range<usize>, scope: &str, what: &str| {
        if !registry.knows_scope(scope) {
            err.at(
                span,
                format!("unknown organisation scope \"{scope}\" in {what}"),
            );
        }
    };
    for r in &def.create_roles {
        check_role(&mut err, r.span(), r.get_ref(), "create_roles");
    }
    if let Some(scope) = &def.create_org {
        check_scope(&mut err, scope.span(), scope.get_ref(), "create_org");
    }

    // States.
    let mut state_ix: HashMap<&str, StateId> = HashMap::new();
    let mut states = Vec::new();
    // The source entry of each compiled state: a state declared twice is skipped, so the
    // compiled index and the index in the file differ after it.
    let mut state_defs = Vec::new();
    let mut initial = None;
    for s in &def.states {
        let sd = s.get_ref();
        if !valid_ident(&sd.id) {
            err.at(
                s.span(),
                format!("state id \"{}\" is not a valid name", sd.id),
            );
        }
        if state_ix.contains_key(sd.id.as_str()) {
            err.at(s.span(), format!("state \"{}\" is declared twice", sd.id));
            continue;
        }
        if let Some(which) = label_missing(sd.label.as_ref()) {
            err.at(
                s.span(),
                format!("state \"{}\" is missing its {which} label", sd.id),
            );
        }
        let Ok(id) = StateId::try_from(states.len()) else {
            err.at(s.span(), "too many states");
            break;
        };
        if sd.initial {
            // The first one stays initial, so the checks below do not blame the other states.
            if initial.is_some() {
                err.at(s.span(), format!("a second initial state \"{}\"", sd.id));
            } else {
                initial = Some(id);
            }
        }
        if sd.initial && sd.terminal {
            err.at(
                s.span(),
                format!("state \"{}\" cannot be both initial and terminal", sd.id),
            );
        }
        if sd.terminal && sd.route.is_some() {
            err.at(
                s.span(),
                format!("terminal state \"{}\" cannot run a route", sd.id),
            );
        }
        state_ix.insert(sd.id.as_str(), id);
        state_defs.push(s);
        states.push(State {
            id: sd.id.clone(),
            label: sd.label.clone().unwrap_or_default(),
            terminal: sd.terminal,
            route: None,
        });
    }
    if initial.is_none() {
        err.at(
            0..0,
            "no initial state (mark one state with initial = true)",
        );
    }
    if !states.iter().any(|s| s.terminal) {
        err.at(
            0..0,
            "no terminal state (mark at least one with terminal = true)",
        );
    }

    // Events: declared ones, route step events, and the built-ins where routes exist.
    let mut ev = EventTable::default();

    // Timers (needed by effect validation).
    let timer_ids: Vec<String> = def.timers.iter().map(|t| t.get_ref().id.clone()).collect();

    // Routes.
    let mut routes: Vec<Route> = Vec::new();
    // As with states: the source entry of each compiled route.
    let mut route_defs = Vec::new();
    let mut providers = Vec::new();
    let mut route_ix: HashMap<&str, u16> = HashMap::new();
    for r in &def.routes {
        let rd = r.get_ref();
        if route_ix.contains_key(rd.id.as_str()) {
            err.at(r.span(), format!("route \"{}\" is declared twice", rd.id));
            continue;
        }
        if let Some(which) = label_missing(rd.label.as_ref()) {
            err.at(
                r.span(),
                format!("route \"{}\" is missing its {which} label", rd.id),
            );
        }
        if !valid_ident(&rd.event) || builtin::ALL.contains(&rd.event.as_str()) {
            err.at(
                r.span(),
                format!(
                    "route \"{}\" step event \"{}\" is not a valid name or is reserved",
                    rd.id, rd.event
                ),
            );
        }
        let provider = match (&rd.steps_from, rd.steps.is_empty()) {
            (Some(p), true) => {
                let found = registry.provider(p);
                if found.is_none() {
                    err.at(
                        r.span(),
                        format!("unknown step provider \"{p}\" in route \"{}\"", rd.id),
                    );
                }
                found
            }
            (Some(_), false) => {
                err.at(
                    r.span(),
                    format!(
                        "route \"{}\" has both steps_from and steps; choose one",
                        rd.id
                    ),
                );
                None
            }
            (None, true) => {
                err.at(r.span(), format!("route \"{}\" has no steps", rd.id));
                None
            }
            (None, false) => None,
        };
        let mut steps = Vec::new();
        let mut step_ids = BTreeSet::new();
        let n = rd.steps.len();
        for (i, st) in rd.steps.iter().enumerate() {
            let sd = st.get_ref();
            let sp = st.span();
            if !step_ids.insert(sd.id.clone()) {
                err.at(sp.clone(), format!("step \"{}\" is declared twice", sd.id));
            }
            if let Some(which) = label_missing(sd.label.as_ref()) {
                err.at(
                    sp.clone(),
                    format!("step \"{}\" is missing its {which} label", sd.id),
                );
            }
            let kind = match sd.kind {
                StepKindDef::Single => {
                    if !sd.reviewers.is_empty() || sd.require.is_some() {
                        err.at(
                            sp.clone(),
                            format!(
                                "step \"{}\" has reviewers/require but is not kind = \"parallel\"",
                                sd.id
                            ),
                        );
                    }
                    match &sd.role {
                        Some(role) => {
                            check_role(&mut err, sp.clone(), role, &format!("step \"{}\"", sd.id));
                            StepKind::Single { role: role.clone() }
                        }
                        None => {
                            err.at(sp.clone(), format!("step \"{}\" has no role", sd.id));
                            StepKind::Single {
                                role: String::new(),
                            }
                        }
                    }
                }
                StepKindDef::Parallel => {
                    if sd.role.is_some() {
                        err.at(
                            sp.clone(),
                            format!("parallel step \"{}\" lists reviewers, not a role", sd.id),
                        );
                    }
                    if sd.reviewers.is_empty() {
                        err.at(
                            sp.clone(),
                            format!("parallel step \"{}\" has no reviewers", sd.id),
                        );
                    }
                    for role in &sd.reviewers {
                        check_role(&mut err, sp.clone(), role, &format!("step \"{}\"", sd.id));
                    }
                    let m = sd.reviewers.len();
                    let need = match &sd.require {
                        None => m,
                        Some(toml::Value::String(s)) if s == "all" => m,
                        Some(toml::Value::String(s)) if s == "any" => 1,
                        Some(toml::Value::Integer(k))
                            if *k >= 1 && usize::try_from(*k).is_ok_and(|k| k <= m) =>
                        {
                            usize::try_from(*k).unwrap_or(m)
                        }
                        Some(other) => {
                            err.at(
                                sp.clone(),
                                format!(
                                    "step \"{}\": require must be \"all\", \"any\" or a number from 1 to {m}, got {other}",
                                    sd.id
                                ),
                            );
                            m
                        }
                    };
                    StepKind::Parallel {
                        reviewers: sd.reviewers.clone(),
                        need,
                    }
                }
            };
            if let Some(scope) = &sd.org {
                check_scope(&mut err, sp.clone(), scope, &format!("step \"{}\"", sd.id));
            }
            if sd.skippable && i + 1 == n {
                err.at(
                    sp.clone(),
                    format!("the last step \"{}\" cannot be skippable", sd.id),
                );
            }
            if sd.pull_up && i + 1 == n {
                err.at(
                    sp.clone(),
                    format!(
                        "the last step \"{}\" cannot allow pull-up (nobody comes after it)",
                        sd.id
                    ),
                );
            }
            steps.push(Step {
                id: sd.id.clone(),
                label: sd.label.clone().unwrap_or_default(),
                kind,
                org: sd.org.clone().map(OrgScope::Named),
                skippable: sd.skippable,
                pull_up: sd.pull_up,
            });
        }
        let event = ev.intern(&rd.event);
        let Ok(ix) = u16::try_from(routes.len()) else {
            break;
        };
        route_ix.insert(rd.id.as_str(), ix);
        providers.push(provider);
        route_defs.push(r);
        routes.push(Route {
            id: rd.id.clone(),
            label: rd.label.clone().unwrap_or_default(),
            event,
            four_eyes: rd.four_eyes,
            steps,
            steps_from: rd.steps_from.clone(),
        });
    }
    let mut used_routes = BTreeSet::new();
    for (s, sd) in states.iter_mut().zip(&state_defs) {
        if let Some(r) = &sd.get_ref().route {
            match route_ix.get(r.as_str()) {
                Some(&ix) => {
                    s.route = Some(ix);
                    used_routes.insert(ix);
                }
                None => err.at(
                    sd.span(),
                    format!("state \"{}\" names unknown route \"{r}\"", s.id),
                ),
            }
        }
    }
    for (ix, r) in route_defs.iter().enumerate() {
        if u16::try_from(ix).is_ok_and(|ix| !used_routes.contains(&ix)) {
            err.at(
                r.span(),
                format!("route \"{}\" is not used by any state", r.get_ref().id),
            );
        }
    }

    // Transitions.
    let mut transitions: Vec<Transition<C>> = Vec::new();
    let mut spans: Vec<Range<usize>> = Vec::new();
    // A transition naming an unknown state is not part of the graph the author meant, so the
    // reachability checks below would only report consequences of that one mistake.
    let mut dangling = false;
    for t in &def.transitions {
        let td = t.get_ref();
        let sp = t.span();
        if !valid_ident(&td.event) {
            err.at(
                sp.clone(),
                format!("event \"{}\" is not a valid name", td.event),
            );
        }
        if builtin::RESERVED.contains(&td.event.as_str()) {
            err.at(
                sp.clone(),
                format!(
                    "event \"{}\" is built into the engine and cannot be declared",
                    td.event
                ),
            );
        }
        if let Some(which) = label_missing(td.label.as_ref()) {
            err.at(
                sp.clone(),
                format!("transition \"{}\" is missing its {which} label", td.event),
            );
        }
        if td.from.is_empty() {
            err.at(
                sp.clone(),
                format!("transition \"{}\" has no from state", td.event),
            );
        }
        let mut from = Vec::new();
        for f in &td.from {
            match state_ix.get(f.as_str()) {
                Some(&id) => {
                    if states[usize::from(id)].terminal {
                        err.at(
                            sp.clone(),
                            format!("transition \"{}\" leaves terminal state \"{f}\"", td.event),
                        );
                    }
                    from.push(id);
                }
                None => {
                    dangling = true;
                    err.at(
                        sp.clone(),
                        format!("transition \"{}\" from unknown state \"{f}\"", td.event),
                    );
                }
            }
        }
        let to = match state_ix.get(td.to.as_str()) {
            Some(&id) => id,
            None => {
                dangling = true;
                err.at(
                    sp.clone(),
                    format!("transition \"{}\" to unknown state \"{}\"", td.event, td.to),
                );
                0
            }
        };
        // A transition out of a route state on the route's step event completes the route.
        let route_event_of = |s: &StateId| {
            states[usize::from(*s)]
                .route
                .map(|r| routes[usize::from(r)].event)
        };
        let event = ev.intern(&td.event);
        let completes: Vec<bool> = from
            .iter()
            .map(|s| route_event_of(s) == Some(event))
            .collect();
        let completes_route = completes.iter().any(|&c| c);
        if completes_route && completes.iter().any(|&c| !c) {
            err.at(
                sp.clone(),
                format!(
                    "transition \"{}\" mixes route-completion and ordinary source states; split it",
                    td.event
                ),
            );
        }
        if completes_route && !td.roles.is_empty() {
            err.at(
                sp.clone(),
                format!(
                    "transition \"{}\" completes a route: its roles come from the route steps, remove roles",
                    td.event
                ),
            );
        }
        if !completes_route && td.roles.is_empty() {
            err.at(
                sp.clone(),
                format!("transition \"{}\" declares no roles", td.event),
            );
        }
        if td.event == builtin::RETURN
            && from.iter().any(|s| states[usize::from(*s)].route.is_none())
        {
            err.at(
                sp.clone(),
                "\"return\" (差戻し) may only leave a route state".to_owned(),
            );
        }
        for role in &td.roles {
            check_role(
                &mut err,
                sp.clone(),
                role,
                &format!("transition \"{}\"", td.event),
            );
        }
        if let Some(scope) = &td.org {
            let what = format!("transition \"{}\"", td.event);
            check_scope(&mut err, sp.clone(), scope, &what);
        }
        let mut guards = Vec::new();
        for g in &td.guards {
            let NamedRef { name, params } = g.get_ref();
            match registry.build_guard(name, params) {
                None => err.at(
                    g.span(),
                    format!(
                        "unknown guard \"{name}\" in transition \"{}\" (known: {})",
                        td.event,
                        registry
                            .guard_names()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(Err(e)) => err.at(g.span(), format!("guard \"{name}\": {e}")),
                Some(Ok(guard)) => guards.push(CompiledGuard {
                    name: name.clone(),
                    guard,
                }),
            }
        }
        let mut effects = Vec::new();
        let check = EffectCheck {
            vocabulary,
            timers: &timer_ids,
        };
        for e in &td.effects {
            let NamedRef { name, params } = e.get_ref();
            match registry.effect_validator(name) {
                None => err.at(
                    e.span(),
                    format!("unknown effect \"{name}\" in transition \"{}\"", td.event),
                ),
                Some(validate) => match validate(params, &check) {
                    Err(msg) => err.at(e.span(), format!("effect \"{name}\": {msg}")),
                    Ok(()) => effects.push(EffectSpec {
                        name: name.clone(),
                        params: serde_json::to_value(params).unwrap_or_default(),
                    }),
                },
            }
        }
        spans.push(sp);
        transitions.push(Transition {
            event,
            from,
            to,
            label: td.label.clone().unwrap_or_default(),
            roles: td.roles.clone(),
            org: td.org.clone().map(OrgScope::Named),
            require_comment: td.require_comment,
            guards,
            effects,
            completes_route,
        });
    }

    // Every route state needs its completion transition.
    for (si, s) in states.iter().enumerate() {
        if let Some(r) = s.route {
            let route_event = routes[usize::from(r)].event;
            let has = transitions
                .iter()
                .any(|t| t.event == route_event && t.from.iter().any(|&f| usize::from(f) == si));
            if !has {
                let span = state_defs.get(si).map_or(0..0, |sd| sd.span());
                err.at(
                    span,
                    format!(
                        "route state \"{}\" has no transition on \"{}\" to leave it when the route completes",
                        s.id,
                        ev.names.get(usize::from(route_event)).map_or("", String::as_str)
                    ),
                );
            }
        }
    }

    // Built-in events exist where routes do; acknowledge (後閲) works in every state.
    let mut builtin_ids = BuiltinEvents::default();
    if !routes.is_empty() {
        builtin_ids = BuiltinEvents {
            proxy: Some(ev.intern(builtin::PROXY)),
            skip: Some(ev.intern(builtin::SKIP)),
            pull_up: Some(ev.intern(builtin::PULL_UP)),
            recall: Some(ev.intern(builtin::RECALL)),
            return_: Some(ev.intern(builtin::RETURN)),
            acknowledge: Some(ev.intern(builtin::ACKNOWLEDGE)),
        };
    }

    // Timers.
    let mut timers = Vec::new();
    let mut seen_timers = BTreeSet::new();
    for t in &def.timers {
        let td = t.get_ref();
        if !seen_timers.insert(td.id.clone()) {
            err.at(t.span(), format!("timer \"{}\" is declared twice", td.id));
        }
        if let Some(which) = label_missing(td.label.as_ref()) {
            err.at(
                t.span(),
                format!("timer \"{}\" is missing its {which} label", td.id),
            );
        }
        let state = match &td.state {
            Some(s) => match state_ix.get(s.as_str()) {
                Some(&id) => Some(id),
                None => {
                    err.at(
                        t.span(),
                        format!("timer \"{}\" names unknown state \"{s}\"", td.id),
                    );
                    None
                }
            },
            None => None,
        };
        if td.after_business_days == 0 {
            err.at(
                t.span(),
                format!("timer \"{}\": after_business_days must be 1 or more", td.id),
            );
        }
        if !vocabulary.templates.contains(&td.template) {
            err.at(
                t.span(),
                format!(
                    "unknown template \"{}\" in timer \"{}\"",
                    td.template, td.id
                ),
            );
        }
        match (&td.role, td.action) {
            (Some(role), _) => {
                check_role(&mut err, t.span(), role, &format!("timer \"{}\"", td.id))
            }
            (None, super::definition::TimerAction::Escalate) => err.at(
                t.span(),
                format!(
                    "escalation timer \"{}\" needs the role to escalate to",
                    td.id
                ),
            ),
            (None, super::definition::TimerAction::Remind) => {}
        }
        timers.push(Timer {
            id: td.id.clone(),
            label: td.label.clone().unwrap_or_default(),
            state,
            after_business_days: td.after_business_days,
            action: td.action,
            role: td.role.clone(),
            template: td.template.clone(),
        });
    }

    // Ambiguity: two transitions for one event from one state that nothing tells apart.
    for (i, a) in transitions.iter().enumerate() {
        for (j, b) in transitions.iter().enumerate().skip(i + 1) {
            if a.event != b.event {
                continue;
            }
            let Some(shared) = a.from.iter().find(|s| b.from.contains(s)) else {
                continue;
            };
            let key = |t: &Transition<C>, k: usize| {
                let mut roles = t.roles.clone();
                roles.sort();
                let mut guards: Vec<String> = def.transitions[k]
                    .get_ref()
                    .guards
                    .iter()
                    .map(|g| format!("{}{:?}", g.get_ref().name, g.get_ref().params))
                    .collect();
                guards.sort();
                (roles, t.org.clone(), guards)
            };
            if key(a, i) == key(b, j) {
                err.at(
                    spans[j].clone(),
                    format!(
                        "two transitions for event \"{}\" from state \"{}\" without distinguishing guards (the other is at line {})",
                        ev.names.get(usize::from(a.event)).map_or("", String::as_str),
                        states[usize::from(*shared)].id,
                        line_of(source, spans[i].start)
                    ),
                );
            }
        }
    }

    // Reachability from the initial state, and a terminal reachable from every state.
    if let Some(init) = initial.filter(|_| !dangling) {
        let n = states.len();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for t in &transitions {
            for &f in &t.from {
                out[usize::from(f)].push(usize::from(t.to));
            }
        }
        let mut seen = vec![false; n];
        let mut queue = VecDeque::from([usize::from(init)]);
        seen[usize::from(init)] = true;
        while let Some(s) = queue.pop_front() {
            for &t in &out[s] {
                if !seen[t] {
                    seen[t] = true;
                    queue.push_back(t);
                }
            }
        }
        let mut ends = vec![false; n];
        let mut queue: VecDeque<usize> = (0..n).filter(|&s| states[s].terminal).collect();
        for &s in &queue {
            ends[s] = true;
        }
        while let Some(s) = queue.pop_front() {
            for (p, outs) in out.iter().enumerate() {
                if !ends[p] && outs.contains(&s) {
                    ends[p] = true;
                    queue.push_back(p);
                }
            }
        }
        for (s, sd) in state_defs.iter().enumerate() {
            if !seen[s] {
                err.at(
                    sd.span(),
                    format!(
                        "state \"{}\" cannot be reached from the initial state",
                        states[s].id
                    ),
                );
            }
            if !ends[s] {
                err.at(
                    sd.span(),
                    format!(
                        "no terminal state can be reached from state \"{}\"",
                        states[s].id
                    ),
                );
            }
        }
    }

    if !err.list.is_empty() {
        err.list.sort_by_key(|e| e.line);
        return Err(err.list);
    }

    let EventTable {
        names: events,
        index: event_index,
    } = ev;
    let mut candidates = vec![Vec::new(); states.len() * events.len()];
    for (ti, t) in transitions.iter().enumerate() {
        for &f in &t.from {
            let ix = usize::from(f) * events.len() + usize::from(t.event);
            if let (Some(c), Ok(ti)) = (candidates.get_mut(ix), u16::try_from(ti)) {
                c.push(ti);
            }
        }
    }
    Ok(CompiledWorkflow {
        id: def.id.into_inner(),
        version: def.version.into_inner(),
        context_kind: def.context.into_inner(),
        content_hash: content_hash(source),
        title: def.title.map(Spanned::into_inner).unwrap_or_default(),
        create_roles: def
            .create_roles
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        create_org: def.create_org.map(|s| OrgScope::Named(s.into_inner())),
        org_scopes: registry.scope_names(),
        states,
        initial: initial.unwrap_or(0),
        events,
        event_index,
        transitions,
        candidates,
        routes,
        timers,
        step_providers: providers,
        builtin: builtin_ids,
    })
}
