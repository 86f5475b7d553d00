//! The `workload` kind: the normative engine benchmark of `shared/bench/WORKLOAD.md`, so the
//! benchmarks and their guard checks run through the same engine as the product.

use std::fmt;

use chrono::NaiveDate;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::workflow::model::{Actor, CompiledWorkflow, EventId, EventInput, Grant, Instance, Now};
use crate::workflow::registry::{Guard, GuardInput, Registry, Unmet, Vocabulary, WorkflowContext};

/// The benchmark's definition (four states, three events).
pub const DEFINITION: &str = include_str!("../../../benches/workload.toml");

/// Evidence kinds, in the order the workload writes them.
pub const EVIDENCE_KINDS: [&str; 6] = [
    "ismap",
    "iso27017_or_csgold",
    "iso27018",
    "domestic_storage",
    "nda",
    "shared_responsibility_doc",
];

/// `today` for every `check_evidence`.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default()
}

/// The context of one benchmark instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadContext {
    pub id: u64,
    pub submitter: String,
    pub evidence: Evidence,
}

/// Valid-through dates per evidence kind, `None` where absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence(pub [Option<NaiveDate>; 6]);

impl WorkflowContext for WorkloadContext {}

impl WorkloadContext {
    /// The context of instance `i`, exactly as WORKLOAD.md defines it.
    pub fn for_instance(i: u64) -> Self {
        let mut evidence = [None; 6];
        for (j, slot) in (0u64..).zip(evidence.iter_mut()) {
            let month = u32::try_from((i + j) % 12 + 1).unwrap_or(1);
            let day = u32::try_from((i.wrapping_mul(7) + j) % 28 + 1).unwrap_or(1);
            *slot = NaiveDate::from_ymd_opt(2026, month, day);
        }
        Self {
            id: i,
            submitter: numbered("user-", i % 1000),
            evidence: Evidence(evidence),
        }
    }

    /// The approver of instance `i`.
    pub fn approver(i: u64) -> String {
        numbered("mgr-", i % 50)
    }
}

/// `prefix` followed by `n` in decimal, without the formatting machinery (this runs once per
/// instance in the timed loop).
fn numbered(prefix: &str, n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(prefix.len() + digits.len() - at);
    s.push_str(prefix);
    s.extend(digits[at..].iter().map(|&d| char::from(d)));
    s
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.iter().flatten().count()))?;
        for (kind, date) in EVIDENCE_KINDS.iter().zip(&self.0) {
            if let Some(d) = date {
                map.serialize_entry(kind, &d.format("%Y-%m-%d").to_string())?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Evidence;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from evidence kind to an ISO date")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Evidence, A::Error> {
                let mut e = Evidence::default();
                while let Some((k, v)) = m.next_entry::<String, NaiveDate>()? {
                    let Some(ix) = EVIDENCE_KINDS.iter().position(|x| *x == k) else {
                        return Err(serde::de::Error::unknown_field(&k, &EVIDENCE_KINDS));
                    };
                    e.0[ix] = Some(v);
                }
                Ok(e)
            }
        }
        d.deserialize_map(V)
    }
}

struct EvidenceValid {
    kinds: Vec<usize>,
}

impl Guard<WorkloadContext> for EvidenceValid {
    fn check(&self, i: &GuardInput<'_, WorkloadContext>, unmet: &mut Vec<Unmet>) {
        let today = i.now.today;
        for &k in &self.kinds {
            match i.instance.ctx.evidence.0[k] {
                Some(until) if today <= until => {}
                Some(until) => unmet.push(
                    Unmet::new(
                        "evidence_expired",
                        format!("{} は {until} に期限切れです", EVIDENCE_KINDS[k]),
                        format!("{} expired on {until}", EVIDENCE_KINDS[k]),
                    )
                    .with_detail(
                        serde_json::json!({"kind": EVIDENCE_KINDS[k], "valid_until": until}),
                    ),
                ),
                None => unmet.push(
                    Unmet::new(
                        "evidence_missing",
                        format!("{} がありません", EVIDENCE_KINDS[k]),
                        format!("{} is missing", EVIDENCE_KINDS[k]),
                    )
                    .with_detail(serde_json::json!({"kind": EVIDENCE_KINDS[k]})),
                ),
            }
        }
    }
}

/// The registry of the `workload` kind.
pub fn registry() -> Registry<WorkloadContext> {
    type In<'a> = GuardInput<'a, WorkloadContext>;
    let mut r = Registry::new("workload");
    r.simple_guard(
        "actor_is_context_submitter",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| {
            if i.actor.id != i.instance.ctx.submitter {
                unmet.push(Unmet::new(
                    "not_submitter",
                    "申請者本人だけが実行できます",
                    "Only the submitter may do this",
                ));
            }
        },
    );
    r.simple_guard(
        "actor_not_context_submitter",
        |i: &In<'_>, unmet: &mut Vec<Unmet>| {
            if i.actor.id == i.instance.ctx.submitter {
                unmet.push(Unmet::new(
                    "submitter_cannot_approve",
                    "申請者本人は決裁できません",
                    "The submitter may not approve their own application",
                ));
            }
        },
    );
    r.guard(
        "evidence_valid",
        Box::new(|params: &toml::Table| {
            let list = params
                .get("kinds")
                .and_then(toml::Value::as_array)
                .ok_or("parameter \"kinds\" (a list of evidence kinds) is required")?;
            let mut kinds = Vec::new();
            for k in list {
                let name = k.as_str().unwrap_or_default();
                let ix = EVIDENCE_KINDS
                    .iter()
                    .position(|x| *x == name)
                    .ok_or_else(|| format!("unknown evidence kind \"{name}\""))?;
                kinds.push(ix);
            }
            Ok(Box::new(EvidenceValid { kinds }) as Box<dyn Guard<WorkloadContext>>)
        }),
    );
    r
}

/// The actors of the workload, built once (as a deployment has its users once).
pub struct Actors {
    submitters: Vec<String>,
    managers: Vec<String>,
    staff: Vec<Grant>,
    manager: Vec<Grant>,
    system: Vec<Grant>,
}

fn unscoped(role: &str) -> Vec<Grant> {
    vec![Grant {
        role: role.to_owned(),
        org: None,
    }]
}

impl Default for Actors {
    fn default() -> Self {
        Self {
            submitters: (0..1000).map(|i| numbered("user-", i)).collect(),
            managers: (0..50).map(WorkloadContext::approver).collect(),
            staff: unscoped("staff"),
            manager: unscoped("manager"),
            system: unscoped("system"),
        }
    }
}

/// The compiled workload definition and its event ids.
pub struct Workload {
    pub wf: CompiledWorkflow<WorkloadContext>,
    submit: EventId,
    check_evidence: EventId,
    approve: EventId,
    actors: Actors,
    now: Now,
}

impl Workload {
    /// Compiles the benchmark definition.
    pub fn new() -> Result<Self, String> {
        let wf = crate::workflow::compile(
            "benches/workload.toml",
            DEFINITION,
            &registry(),
            &Vocabulary::product().with_roles(&["staff"]),
        )
        .map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let id = |n: &str| wf.event_id(n).ok_or(format!("event {n} missing"));
        Ok(Self {
            submit: id("submit")?,
            check_evidence: id("check_evidence")?,
            approve: id("approve")?,
            wf,
            actors: Actors::default(),
            now: Now {
                at: today().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                today: today(),
            },
        })
    }

    fn actor<'a>(&'a self, id: &'a str, grants: &'a [Grant]) -> Actor<'a> {
        Actor {
            id,
            grants,
            deputy_for: &[],
        }
    }

    fn step(
        &self,
        inst: &mut Instance<WorkloadContext>,
        event: EventId,
        actor: &Actor<'_>,
    ) -> bool {
        let input = EventInput {
            event,
            ..EventInput::default()
        };
        self.wf.fire(inst, &input, actor, self.now).is_ok()
    }

    /// One instance of the workload: build the context, create, submit, check, approve.
    /// Returns the finished instance (the caller keeps it, as the workload retains them).
    pub fn run_instance(&self, i: u64) -> Instance<WorkloadContext> {
        let ctx = WorkloadContext::for_instance(i);
        let a = &self.actors;
        let ix = usize::try_from(i % 1000).unwrap_or(0);
        let mx = usize::try_from(i % 50).unwrap_or(0);
        let mut inst = self.wf.start(ctx.submitter.clone(), ctx);
        self.step(
            &mut inst,
            self.submit,
            &self.actor(&a.submitters[ix], &a.staff),
        );
        self.step(
            &mut inst,
            self.check_evidence,
            &self.actor("system", &a.system),
        );
        self.step(
            &mut inst,
            self.approve,
            &self.actor(&a.managers[mx], &a.manager),
        );
        inst
    }

    /// Is the instance approved?
    pub fn is_approved(&self, inst: &Instance<WorkloadContext>) -> bool {
        self.wf.state_name(inst.state) == "approved"
    }

    /// The untimed guard checks of WORKLOAD.md; an error names the first that failed.
    pub fn guard_checks(&self) -> Result<(), String> {
        let a = &self.actors;
        let state = |inst: &Instance<WorkloadContext>| self.wf.state_name(inst.state).to_owned();
        let expect = |what: &str, inst: &Instance<WorkloadContext>, want: &str| {
            if state(inst) == want {
                Ok(())
            } else {
                Err(format!("{what}: expected {want}, got {}", state(inst)))
            }
        };
        let mut i7 = self.wf.start("user-7", WorkloadContext::for_instance(7));
        self.step(&mut i7, self.submit, &self.actor("someone-else", &a.staff));
        expect("instance 7 submit by someone-else", &i7, "draft")?;
        self.step(&mut i7, self.submit, &self.actor("user-7", &a.staff));
        expect("instance 7 submit", &i7, "submitted")?;
        let mut c8 = WorkloadContext::for_instance(8);
        c8.evidence.0[2] = NaiveDate::from_ymd_opt(2025, 5, 31);
        let mut i8 = self.wf.start("user-8", c8);
        self.step(&mut i8, self.submit, &self.actor("user-8", &a.staff));
        self.step(
            &mut i8,
            self.check_evidence,
            &self.actor("system", &a.system),
        );
        expect(
            "instance 8 with iso27018 expired 2025-05-31",
            &i8,
            "submitted",
        )?;
        let mut c9 = WorkloadContext::for_instance(9);
        c9.evidence.0[4] = None;
        let mut i9 = self.wf.start("user-9", c9);
        self.step(&mut i9, self.submit, &self.actor("user-9", &a.staff));
        self.step(
            &mut i9,
            self.check_evidence,
            &self.actor("system", &a.system),
        );
        expect("instance 9 without nda", &i9, "submitted")?;
        self.step(
            &mut i7,
            self.check_evidence,
            &self.actor("system", &a.system),
        );
        expect("instance 7 check_evidence", &i7, "evidence_ok")?;
        self.step(&mut i7, self.approve, &self.actor("user-7", &a.manager));
        expect("instance 7 approve by its submitter", &i7, "evidence_ok")?;
        self.step(&mut i7, self.approve, &self.actor("clerk-1", &a.staff));
        expect("instance 7 approve by clerk-1 (staff)", &i7, "evidence_ok")?;
        self.step(&mut i7, self.approve, &self.actor("mgr-7", &a.manager));
        expect("instance 7 approve by mgr-7", &i7, "approved")
    }
}
