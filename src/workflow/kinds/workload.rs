//! The `workload` kind: the normative engine benchmark of `shared/bench/WORKLOAD.md`, so the
//! benchmarks and their guard checks run through the same engine as the product.

use std::fmt;

use chrono::NaiveDate;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::workflow::registry::{Guard, GuardInput, Registry, Unmet, WorkflowContext};

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
            submitter: format!("user-{}", i % 1000),
            evidence: Evidence(evidence),
        }
    }

    /// The approver of instance `i`.
    pub fn approver(i: u64) -> String {
        format!("mgr-{}", i % 50)
    }
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
