//! The requirement policy (BRIEF §3) and its evaluation for a node and every ancestor, and the
//! rule that a node cannot be permitted unless every ancestor's permission is in force (C7).
//!
//! Pure: the facts and the decision date are parameters.
//!
//! # Rules
//! - Evidence counts only when an officer has verified it, it is not revoked, and it is valid on
//!   the decision date (`valid_from ≤ today ≤ valid_until`); an ISMAP registration past its expiry
//!   still counts while its renewal is pending.
//! - A node's evidence list holds records of its own organisation and of its parent's; a record
//!   with a `node_id` counts only for that node. A requirement looks at the records of its
//!   holder's organisation; a record of the other organisation attached to this very node is
//!   reported as `wrong_organisation`.
//! - An NDA must name the parent's organisation as counterparty (`wrong_organisation`).
//! - ISMAP must be registered for the node's service (`wrong_scope`); ISO/IEC 27017 counts only
//!   with a counting ISO/IEC 27001 of the same organisation whose covered services include the
//!   node's service (`wrong_scope`). Any other record that names services (its service or covered
//!   services) must include the node's service when the node has one (`wrong_scope`).
//! - CSマーク・シルバー never counts: where CSマーク・ゴールド is accepted a シルバー record is
//!   reported as `not_accepted` instead of `missing`; a policy may not list it.
//! - Domestic storage is its own requirement; ISMAP does not prove it.
//! - A node hosting the environment without a cloud classification gets
//!   `cloud_classification_required` and nothing else until the municipality decides; a
//!   `no_access` node is not a tier and only `no_access_cloud_node` requirements apply to it.
//!
//! When no candidate counts, the most informative reason is reported, in this order:
//! not_verified, expired, not_yet_valid, revoked, wrong_scope, wrong_organisation, not_accepted,
//! missing. Each candidate is first checked for being the right document (kind, organisation,
//! scope) and then for its standing (revoked, dates, verification), so an expired record of
//! another service reads `wrong_scope`: renewing it would not help.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::evidence::{EvidenceFields, EvidenceKind};
use crate::error::Msg;
use crate::workflow::definition::Label;
use crate::workflow::registry::Unmet;

#[doc = concat!(
    "The default policy as guard parameters in a workflow file (parsed by a test to ",
    "[`Policy::default_policy`]):\n\n```toml\n",
    include_str!("default_policy.toml"),
    "```"
)]
pub const DEFAULT_POLICY_TOML: &str = include_str!("default_policy.toml");

/// Which nodes a requirement applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// Every tier of the chain (including cloud nodes that handle the data).
    EveryNode,
    /// A node whose cloud provider hosts the environment and handles the data.
    CloudNode,
    /// A cloud provider that by contract does not handle the data (not a tier).
    NoAccessCloudNode,
}

impl AppliesTo {
    const ALL: [AppliesTo; 3] = [Self::EveryNode, Self::CloudNode, Self::NoAccessCloudNode];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EveryNode => "every_node",
            Self::CloudNode => "cloud_node",
            Self::NoAccessCloudNode => "no_access_cloud_node",
        }
    }
}

/// Whose evidence satisfies a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The node's own organisation.
    #[default]
    Contractor,
    /// The organisation of the tier above (e.g. the shared responsibility statement).
    Parent,
}

impl Holder {
    const ALL: [Holder; 2] = [Self::Contractor, Self::Parent];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contractor => "contractor",
            Self::Parent => "parent",
        }
    }
}

/// One requirement: which nodes need it, whose evidence counts, and which kinds satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub id: String,
    pub applies_to: AppliesTo,
    pub holder: Holder,
    /// Any one of these kinds satisfies it.
    pub any_of: Vec<EvidenceKind>,
    pub label: Label,
}

/// The requirements a municipality asks for (configurable; BRIEF §3 gives the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub requirements: Vec<Requirement>,
}

impl Policy {
    /// The defaults of BRIEF §3, the same as [`DEFAULT_POLICY_TOML`].
    pub fn default_policy() -> Self {
        use AppliesTo::{CloudNode, EveryNode, NoAccessCloudNode};
        use EvidenceKind as K;
        let requirement =
            |id: &str, applies_to, holder, any_of: &[K], ja: &str, en: &str| Requirement {
                id: id.to_owned(),
                applies_to,
                holder,
                any_of: any_of.to_vec(),
                label: Label {
                    ja: ja.to_owned(),
                    en: en.to_owned(),
                },
            };
        let (own, parent) = (Holder::Contractor, Holder::Parent);
        Self {
            requirements: vec![
                requirement(
                    "nda",
                    EveryNode,
                    own,
                    &[K::Nda],
                    "親階層との秘密保持契約",
                    "NDA with the parent tier",
                ),
                requirement(
                    "structure_chart",
                    EveryNode,
                    own,
                    &[K::StructureChart],
                    "履行体制図",
                    "Implementation structure chart",
                ),
                requirement(
                    "safeguards",
                    EveryNode,
                    own,
                    &[K::Safeguards],
                    "安全管理措置",
                    "Safeguards",
                ),
                requirement(
                    "security_certification",
                    EveryNode,
                    own,
                    &[K::Iso27001, K::PrivacyMark],
                    "ISO/IEC 27001 またはプライバシーマーク",
                    "ISO/IEC 27001 or PrivacyMark",
                ),
                requirement(
                    "ismap",
                    CloudNode,
                    own,
                    &[K::Ismap],
                    "ISMAP登録",
                    "ISMAP registration",
                ),
                requirement(
                    "cloud_security",
                    CloudNode,
                    own,
                    &[K::Iso27017, K::CsGold],
                    "ISO/IEC 27017 またはCSマーク・ゴールド",
                    "ISO/IEC 27017 or CS Mark Gold",
                ),
                requirement(
                    "iso27018",
                    CloudNode,
                    own,
                    &[K::Iso27018],
                    "ISO/IEC 27018",
                    "ISO/IEC 27018",
                ),
                requirement(
                    "domestic_storage",
                    CloudNode,
                    own,
                    &[K::DomesticStorage],
                    "データの国内保管",
                    "Domestic storage",
                ),
                requirement(
                    "shared_responsibility",
                    CloudNode,
                    parent,
                    &[K::SharedResponsibility],
                    "責任共有モデルに係る書面(親階層)",
                    "Shared responsibility statement (by the parent tier)",
                ),
                requirement(
                    "no_access_clause",
                    NoAccessCloudNode,
                    own,
                    &[K::NoAccessClause],
                    "データを取り扱わない旨の契約条項とアクセス制御",
                    "No-access contract clause and access control",
                ),
            ],
        }
    }

    /// Reads a policy from a guard's parameters: `requirements = [{id, applies_to, holder?,
    /// any_of, label = {ja, en}}, …]` (in a workflow file, `[[transitions.guards.requirements]]`
    /// tables). The error names the requirement and what is wrong with it.
    pub fn from_params(params: &toml::Table) -> Result<Self, String> {
        if let Some(key) = params.keys().find(|k| *k != "requirements") {
            return Err(format!(
                "unknown parameter \"{key}\": the policy takes only \"requirements\""
            ));
        }
        let list = params
            .get("requirements")
            .ok_or("the policy needs \"requirements\": [[transitions.guards.requirements]] tables")?
            .as_array()
            .ok_or("\"requirements\" must be a list of tables")?;
        if list.is_empty() {
            return Err("\"requirements\" must list at least one requirement".to_owned());
        }
        let mut ids = BTreeSet::new();
        let mut requirements = Vec::with_capacity(list.len());
        for (index, value) in list.iter().enumerate() {
            let requirement = parse_requirement(index, value)?;
            if !ids.insert(requirement.id.clone()) {
                return Err(format!(
                    "requirement \"{}\" is declared twice",
                    requirement.id
                ));
            }
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }
}

const REQUIREMENT_KEYS: [&str; 5] = ["id", "applies_to", "holder", "any_of", "label"];

fn parse_requirement(index: usize, value: &toml::Value) -> Result<Requirement, String> {
    let table = value
        .as_table()
        .ok_or_else(|| format!("requirements[{index}] must be a table"))?;
    let id = match table.get("id").map(toml::Value::as_str) {
        Some(Some(id)) if !id.trim().is_empty() => id.to_owned(),
        _ => {
            return Err(format!(
                "requirements[{index}] needs an \"id\" (a non-empty string)"
            ))
        }
    };
    let at = format!("requirement \"{id}\"");
    if let Some(key) = table
        .keys()
        .find(|k| !REQUIREMENT_KEYS.contains(&k.as_str()))
    {
        return Err(format!(
            "{at}: unknown key \"{key}\"; expected {}",
            REQUIREMENT_KEYS.join(", ")
        ));
    }
    let name_in = |key: &str, value: Option<&toml::Value>| -> Result<Option<String>, String> {
        match value {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| format!("{at}: \"{key}\" must be a string")),
        }
    };
    let applies_to = name_in("applies_to", table.get("applies_to"))?.ok_or_else(|| {
        format!(
            "{at} needs \"applies_to\" ({})",
            names(AppliesTo::ALL.map(AppliesTo::as_str))
        )
    })?;
    let applies_to = AppliesTo::ALL
        .into_iter()
        .find(|a| a.as_str() == applies_to)
        .ok_or_else(|| {
            format!(
                "{at}: unknown applies_to \"{applies_to}\"; expected {}",
                names(AppliesTo::ALL.map(AppliesTo::as_str))
            )
        })?;
    let holder = match name_in("holder", table.get("holder"))? {
        None => Holder::default(),
        Some(holder) => Holder::ALL
            .into_iter()
            .find(|h| h.as_str() == holder)
            .ok_or_else(|| {
                format!(
                    "{at}: unknown holder \"{holder}\"; expected {}",
                    names(Holder::ALL.map(Holder::as_str))
                )
            })?,
    };
    let any_of = parse_kinds(&at, table.get("any_of"))?;
    let label = parse_label(&at, table.get("label"))?;
    Ok(Requirement {
        id,
        applies_to,
        holder,
        any_of,
        label,
    })
}

fn parse_kinds(at: &str, value: Option<&toml::Value>) -> Result<Vec<EvidenceKind>, String> {
    let known = || names(EvidenceKind::ALL.map(EvidenceKind::as_str));
    let list = value
        .and_then(toml::Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            format!(
                "{at} needs \"any_of\": a non-empty list of evidence kinds ({})",
                known()
            )
        })?;
    let mut kinds = Vec::with_capacity(list.len());
    for item in list {
        let name = item
            .as_str()
            .ok_or_else(|| format!("{at}: \"any_of\" must list evidence kinds as strings"))?;
        let kind = EvidenceKind::parse(name).ok_or_else(|| {
            format!(
                "{at}: unknown evidence kind \"{name}\"; expected {}",
                known()
            )
        })?;
        if kind == EvidenceKind::CsSilver {
            return Err(format!(
                "{at}: cs_silver is self-assessed and never satisfies a requirement (BRIEF §3)"
            ));
        }
        if kinds.contains(&kind) {
            return Err(format!("{at}: \"{name}\" is listed twice in any_of"));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

fn parse_label(at: &str, value: Option<&toml::Value>) -> Result<Label, String> {
    let needs = || format!("{at} needs a label = {{ ja = \"…\", en = \"…\" }}, both non-empty");
    let table = value.and_then(toml::Value::as_table).ok_or_else(needs)?;
    if table.keys().any(|k| k != "ja" && k != "en") {
        return Err(needs());
    }
    let text = |key: &str| {
        table
            .get(key)
            .and_then(toml::Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(needs)
    };
    Ok(Label {
        ja: text("ja")?,
        en: text("en")?,
    })
}

/// `a, b or c`.
fn names<const N: usize>(names: [&str; N]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

// --- Facts ---------------------------------------------------------------------------------

/// The municipality's decision on a cloud node (BRIEF §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudClassification {
    /// The provider handles the data: a tier of the chain, full rules.
    HandlesData,
    /// By contract the provider does not handle the data and access is controlled: not a tier.
    NoAccess,
}

/// What the evaluation needs to know of one evidence record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceFact {
    pub id: String,
    pub kind: EvidenceKind,
    /// The organisation the record belongs to.
    pub organisation_id: String,
    /// Set when the record is for one node only (it then counts only for that node).
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub covered_services: Vec<String>,
    #[serde(default)]
    pub counterparty_organisation_id: Option<String>,
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
    #[serde(default)]
    pub renewal_pending: bool,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub revoked: bool,
}

impl EvidenceFact {
    /// The facts of a stored record from its typed fields; `verified` and `revoked` are the
    /// record's state.
    pub fn from_fields(
        id: impl Into<String>,
        organisation_id: impl Into<String>,
        node_id: Option<String>,
        fields: &EvidenceFields,
        verified: bool,
        revoked: bool,
    ) -> Self {
        let (valid_from, valid_until) = fields.validity();
        Self {
            id: id.into(),
            kind: fields.kind(),
            organisation_id: organisation_id.into(),
            node_id,
            service_name: fields.service_name().map(str::to_owned),
            covered_services: fields.covered_services().to_vec(),
            counterparty_organisation_id: fields.counterparty().map(str::to_owned),
            valid_from,
            valid_until,
            renewal_pending: fields.renewal_pending(),
            verified,
            revoked,
        }
    }

    /// Every service the record names (its service and its covered services).
    fn services(&self) -> impl Iterator<Item = &str> {
        self.service_name
            .iter()
            .chain(&self.covered_services)
            .map(String::as_str)
    }

    fn names_service(&self, service: &str) -> bool {
        self.services().any(|s| same_service(s, service))
    }

    /// Whether it is valid on `today` (an ISMAP registration with a pending renewal stays valid).
    fn dated_status(&self, today: NaiveDate) -> Option<EvidenceStatus> {
        if self.valid_from.is_some_and(|from| today < from) {
            return Some(EvidenceStatus::NotYetValid);
        }
        let lapsed = self.valid_until.is_some_and(|until| until < today);
        let renewing = self.kind == EvidenceKind::Ismap && self.renewal_pending;
        (lapsed && !renewing).then_some(EvidenceStatus::Expired)
    }

    /// Whether it counts on its own standing: verified, not revoked, valid today.
    fn in_good_standing(&self, today: NaiveDate) -> bool {
        self.verified && !self.revoked && self.dated_status(today).is_none()
    }
}

/// Service names compare without regard to surrounding or repeated spaces, ASCII case, or
/// full-width letters and digits (`ＡＷＳ` is `aws`).
fn same_service(a: &str, b: &str) -> bool {
    fn normal(s: &str) -> String {
        let folded: String = s
            .chars()
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
                '\u{3000}' => ' ',
                _ => c,
            })
            .collect();
        folded
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    }
    normal(a) == normal(b)
}

/// One node of a chain as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    pub node_id: String,
    pub tier: u32,
    pub organisation_id: String,
    pub organisation_name: String,
    /// The organisation of the tier above (the root municipality for tier 1).
    pub parent_organisation_id: Option<String>,
    /// The node's contractor hosts the environment as a cloud provider.
    pub hosts_environment: bool,
    /// The municipality's decision on a cloud node; `None` until it decides.
    pub cloud_classification: Option<CloudClassification>,
    /// The service the node provides or uses (for a cloud node, the cloud service).
    pub service_name: Option<String>,
    /// The state of the node's permission (`permitted`, `suspended`, …).
    pub permission_state: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// Records of the node's organisation and of its parent's.
    pub evidence: Vec<EvidenceFact>,
}

/// A node and its ancestors, parent first, up to tier 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFacts {
    pub node: NodeFacts,
    pub ancestors: Vec<NodeFacts>,
}

impl ChainFacts {
    /// The same facts without the evidence records that cannot change an evaluation on `today`:
    /// of the expired records alike in everything [`evaluate`] reads but their dates
    /// (organisation, node, kind, services, counterparty, renewal, verification, revocation),
    /// only the one it would report stays — the one that lasted longest, the first of equals —
    /// in its place. A record superseded by its renewals is such a record; a municipality keeps
    /// years of them, and the decision screen and the guards read every fact several times.
    pub fn without_superseded(mut self, today: NaiveDate) -> Self {
        for node in std::iter::once(&mut self.node).chain(self.ancestors.iter_mut()) {
            node.evidence = without_superseded(std::mem::take(&mut node.evidence), today);
        }
        self
    }

    /// Tier 1 first, the node last.
    fn top_down(&self) -> impl Iterator<Item = &NodeFacts> {
        self.ancestors
            .iter()
            .rev()
            .chain(std::iter::once(&self.node))
    }
}

/// See [`ChainFacts::without_superseded`].
fn without_superseded(evidence: Vec<EvidenceFact>, today: NaiveDate) -> Vec<EvidenceFact> {
    type Alike<'a> = (
        &'a str,
        Option<&'a str>,
        EvidenceKind,
        Option<&'a str>,
        &'a [String],
        Option<&'a str>,
        [bool; 3],
    );
    let expired = |e: &EvidenceFact| {
        e.valid_from.is_none_or(|from| from <= today)
            && e.dated_status(today) == Some(EvidenceStatus::Expired)
    };
    let mut kept: std::collections::HashMap<Alike<'_>, usize> = std::collections::HashMap::new();
    for (ix, e) in evidence.iter().enumerate().filter(|(_, e)| expired(e)) {
        let alike = (
            e.organisation_id.as_str(),
            e.node_id.as_deref(),
            e.kind,
            e.service_name.as_deref(),
            e.covered_services.as_slice(),
            e.counterparty_organisation_id.as_deref(),
            [e.renewal_pending, e.verified, e.revoked],
        );
        let slot = kept.entry(alike).or_insert(ix);
        if lasts_longer(e, Some(&evidence[*slot])) {
            *slot = ix;
        }
    }
    let stays: BTreeSet<usize> = kept.into_values().collect();
    evidence
        .into_iter()
        .enumerate()
        .filter(|(ix, e)| !expired(e) || stays.contains(ix))
        .map(|(_, e)| e)
        .collect()
}

// --- Evaluation ----------------------------------------------------------------------------

/// How one requirement stands for one node; every value but `met` is also a refusal reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceStatus {
    Met,
    Missing,
    NotVerified,
    NotYetValid,
    Expired,
    Revoked,
    WrongScope,
    WrongOrganisation,
    NotAccepted,
}

impl EvidenceStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missing => "missing",
            Self::NotVerified => "not_verified",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::WrongScope => "wrong_scope",
            Self::WrongOrganisation => "wrong_organisation",
            Self::NotAccepted => "not_accepted",
        }
    }

    /// How close a failing record came to counting; the highest is reported.
    fn informativeness(self) -> u8 {
        match self {
            Self::Met => 8,
            Self::NotVerified => 7,
            Self::Expired => 6,
            Self::NotYetValid => 5,
            Self::Revoked => 4,
            Self::WrongScope => 3,
            Self::WrongOrganisation => 2,
            Self::NotAccepted => 1,
            Self::Missing => 0,
        }
    }
}

/// A point the decision-maker should know that does not block the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// `evidence_expires_before_period_end`.
    pub code: String,
    pub message: Msg,
    pub detail: Value,
}

/// One line of the decision screen's checklist: a requirement of a node and how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistEntry {
    pub tier: u32,
    pub node_id: String,
    pub organisation_id: String,
    pub requirement: String,
    pub label: Label,
    pub status: EvidenceStatus,
    /// The record that counts, or the one that came closest.
    pub evidence_id: Option<String>,
    pub valid_until: Option<NaiveDate>,
}

/// The outcome of evaluating a policy over a chain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// Every unmet requirement of every node, tier 1 first.
    pub unmet: Vec<Unmet>,
    pub warnings: Vec<Warning>,
    pub checklist: Vec<ChecklistEntry>,
}

impl Evaluation {
    /// Whether nothing blocks the decision.
    pub fn is_satisfied(&self) -> bool {
        self.unmet.is_empty()
    }
}

/// What a node is for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeClass {
    Tier,
    CloudTier,
    NoAccessCloud,
    Unclassified,
}

impl NodeClass {
    fn of(node: &NodeFacts) -> Self {
        match (node.cloud_classification, node.hosts_environment) {
            (Some(CloudClassification::NoAccess), _) => Self::NoAccessCloud,
            (Some(CloudClassification::HandlesData), _) => Self::CloudTier,
            (None, true) => Self::Unclassified,
            (None, false) => Self::Tier,
        }
    }

    fn needs(self, applies_to: AppliesTo) -> bool {
        matches!(
            (self, applies_to),
            (Self::Tier | Self::CloudTier, AppliesTo::EveryNode)
                | (Self::CloudTier, AppliesTo::CloudNode)
                | (Self::NoAccessCloud, AppliesTo::NoAccessCloudNode)
        )
    }
}

/// How the node is named in messages: `第2階層 国保中央会` / `Tier 2 国保中央会`.
fn place(node: &NodeFacts) -> (String, String) {
    let name = &node.organisation_name;
    if NodeClass::of(node) == NodeClass::NoAccessCloud {
        (
            format!("{name}(データを取り扱わないクラウド事業者)"),
            format!("{name} (cloud provider without access to the data)"),
        )
    } else {
        (
            format!("第{}階層 {name}", node.tier),
            format!("Tier {} {name}", node.tier),
        )
    }
}

/// The standing of one requirement for one node.
struct Outcome<'a> {
    status: EvidenceStatus,
    evidence: Option<&'a EvidenceFact>,
}

/// Evaluates `policy` for the node and every ancestor on `today`: every unmet requirement, the
/// warnings, and the checklist, tier 1 first.
pub fn evaluate(policy: &Policy, facts: &ChainFacts, today: NaiveDate) -> Evaluation {
    let mut evaluation = Evaluation::default();
    for node in facts.top_down() {
        evaluate_node(policy, node, today, &mut evaluation);
    }
    evaluation
}

fn evaluate_node(policy: &Policy, node: &NodeFacts, today: NaiveDate, out: &mut Evaluation) {
    let class = NodeClass::of(node);
    let (place_ja, place_en) = place(node);
    if class == NodeClass::Unclassified {
        out.unmet.push(
            Unmet::new(
                "cloud_classification_required",
                format!(
                    "{place_ja}: クラウド事業者がデータを取り扱うかどうか(クラウドの区分)が未決定です。委託元が決定してください"
                ),
                format!(
                    "{place_en}: whether the cloud provider handles the data (its cloud classification) is not decided; the root consignor must decide"
                ),
            )
            .with_detail(json!({
                "tier": node.tier,
                "node_id": node.node_id,
                "organisation_id": node.organisation_id,
            })),
        );
        return;
    }
    let mut warned = BTreeSet::new();
    for requirement in policy
        .requirements
        .iter()
        .filter(|r| class.needs(r.applies_to))
    {
        let outcome = assess_requirement(requirement, node, today);
        let evidence_id = outcome.evidence.map(|e| e.id.clone());
        let valid_until = outcome.evidence.and_then(|e| e.valid_until);
        out.checklist.push(ChecklistEntry {
            tier: node.tier,
            node_id: node.node_id.clone(),
            organisation_id: node.organisation_id.clone(),
            requirement: requirement.id.clone(),
            label: requirement.label.clone(),
            status: outcome.status,
            evidence_id: evidence_id.clone(),
            valid_until,
        });
        let label = &requirement.label;
        match (outcome.status, outcome.evidence) {
            (EvidenceStatus::Met, Some(evidence)) => {
                let Some(until) = evidence.valid_until.filter(|u| *u < node.period_end) else {
                    continue;
                };
                // A pending ISMAP renewal is not warned about; its reminders are suppressed too.
                if evidence.renewal_pending && evidence.kind == EvidenceKind::Ismap {
                    continue;
                }
                if !warned.insert(evidence.id.clone()) {
                    continue;
                }
                out.warnings.push(Warning {
                    code: "evidence_expires_before_period_end".to_owned(),
                    message: Msg::new(
                        format!(
                            "{place_ja}: {} — 有効期限({until})が委託期間の終了日({})より前です",
                            label.ja, node.period_end
                        ),
                        format!(
                            "{place_en}: {} — expires on {until}, before the end of the period ({})",
                            label.en, node.period_end
                        ),
                    ),
                    detail: json!({
                        "tier": node.tier,
                        "node_id": node.node_id,
                        "organisation_id": node.organisation_id,
                        "requirement": requirement.id,
                        "evidence_id": evidence.id,
                        "valid_until": until,
                        "period_end": node.period_end,
                    }),
                });
            }
            (EvidenceStatus::Met, None) => {}
            (status, evidence) => {
                let (reason_ja, reason_en) = reason_text(status, evidence, node);
                let mut detail = Map::new();
                detail.insert("tier".into(), json!(node.tier));
                detail.insert("node_id".into(), json!(node.node_id));
                detail.insert("organisation_id".into(), json!(node.organisation_id));
                detail.insert("requirement".into(), json!(requirement.id));
                detail.insert("reason".into(), json!(status));
                if let Some(id) = &evidence_id {
                    detail.insert("evidence_id".into(), json!(id));
                }
                if status == EvidenceStatus::Expired {
                    detail.insert("expired_on".into(), json!(valid_until));
                }
                if status == EvidenceStatus::NotYetValid {
                    detail.insert(
                        "valid_from".into(),
                        json!(evidence.and_then(|e| e.valid_from)),
                    );
                }
                out.unmet.push(
                    Unmet::new(
                        "requirement_unmet",
                        format!("{place_ja}: {} — {reason_ja}", label.ja),
                        format!("{place_en}: {} — {reason_en}", label.en),
                    )
                    .with_detail(Value::Object(detail)),
                );
            }
        }
    }
}

/// The reason of a failing requirement in Japanese and English.
fn reason_text(
    status: EvidenceStatus,
    evidence: Option<&EvidenceFact>,
    node: &NodeFacts,
) -> (String, String) {
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    match status {
        EvidenceStatus::Met => ("充足".to_owned(), "met".to_owned()),
        EvidenceStatus::Missing => ("未提出".to_owned(), "missing".to_owned()),
        EvidenceStatus::NotVerified => (
            "担当者の確認待ち".to_owned(),
            "not verified by an officer".to_owned(),
        ),
        EvidenceStatus::NotYetValid => {
            let from = date(evidence.and_then(|e| e.valid_from));
            (
                format!("有効期間の開始前({from}から有効)"),
                format!("not valid until {from}"),
            )
        }
        EvidenceStatus::Expired => {
            let until = date(evidence.and_then(|e| e.valid_until));
            (
                format!("有効期限切れ({until})"),
                format!("expired on {until}"),
            )
        }
        EvidenceStatus::Revoked => ("取消済み".to_owned(), "revoked".to_owned()),
        EvidenceStatus::WrongScope => match (&node.service_name, evidence) {
            (None, _) => (
                "対象範囲外(このノードのサービスが登録されていません)".to_owned(),
                "wrong scope (the node has no service recorded)".to_owned(),
            ),
            (Some(service), Some(e))
                if e.kind == EvidenceKind::Iso27017 && e.names_service(service) =>
            {
                (
                    format!(
                        "対象範囲外(サービス「{service}」を範囲に含むISO/IEC 27001がありません)"
                    ),
                    format!("wrong scope (no ISO/IEC 27001 covering the service \"{service}\")"),
                )
            }
            (Some(service), _) => (
                format!("対象範囲外(サービス「{service}」を対象としていません)"),
                format!("wrong scope (does not cover the service \"{service}\")"),
            ),
        },
        EvidenceStatus::WrongOrganisation => match evidence {
            Some(e) if e.kind == EvidenceKind::Nda && e.organisation_id == node.organisation_id => {
                (
                    "契約の相手方が親階層の組織ではありません".to_owned(),
                    "wrong organisation (the counterparty is not the parent tier)".to_owned(),
                )
            }
            _ => (
                "提出元の組織が異なります".to_owned(),
                "wrong organisation (held by another organisation)".to_owned(),
            ),
        },
        EvidenceStatus::NotAccepted => (
            "認められません(CSマーク・シルバーは自己評価です)".to_owned(),
            "not accepted (CS Mark Silver is self-assessed)".to_owned(),
        ),
    }
}

/// The standing of `requirement` for `node`: the counting record valid longest, or else the
/// most informative failing one, or missing.
fn assess_requirement<'a>(
    requirement: &Requirement,
    node: &'a NodeFacts,
    today: NaiveDate,
) -> Outcome<'a> {
    let holder_org = match requirement.holder {
        Holder::Contractor => Some(node.organisation_id.as_str()),
        Holder::Parent => node.parent_organisation_id.as_deref(),
    };
    let accepts_silver_as_candidate = requirement.any_of.contains(&EvidenceKind::CsGold);
    let candidates = node.evidence.iter().filter(|e| {
        let kind_fits = requirement.any_of.contains(&e.kind)
            || (accepts_silver_as_candidate && e.kind == EvidenceKind::CsSilver);
        let for_this_node = e.node_id.as_deref().is_none_or(|id| id == node.node_id);
        // A record of the other organisation is a candidate only when attached to this node.
        let org_fits = Some(e.organisation_id.as_str()) == holder_org || e.node_id.is_some();
        kind_fits && for_this_node && org_fits
    });
    let mut best: Option<Outcome<'a>> = None;
    for evidence in candidates {
        let status = assess(evidence, holder_org, node, today);
        let better = match &best {
            None => true,
            Some(b) => {
                let (rank, best_rank) = (status.informativeness(), b.status.informativeness());
                rank > best_rank || (rank == best_rank && lasts_longer(evidence, b.evidence))
            }
        };
        if better {
            best = Some(Outcome {
                status,
                evidence: Some(evidence),
            });
        }
    }
    best.unwrap_or(Outcome {
        status: EvidenceStatus::Missing,
        evidence: None,
    })
}

/// Whether `a` is valid until later than `b` (no end date is the latest).
fn lasts_longer(a: &EvidenceFact, b: Option<&EvidenceFact>) -> bool {
    let end = |e: &EvidenceFact| e.valid_until.unwrap_or(NaiveDate::MAX);
    b.is_none_or(|b| end(a) > end(b))
}

/// The status of one candidate: first whether it is the right document, then its standing.
fn assess(
    evidence: &EvidenceFact,
    holder_org: Option<&str>,
    node: &NodeFacts,
    today: NaiveDate,
) -> EvidenceStatus {
    if evidence.kind == EvidenceKind::CsSilver {
        return EvidenceStatus::NotAccepted;
    }
    if holder_org != Some(evidence.organisation_id.as_str()) {
        return EvidenceStatus::WrongOrganisation;
    }
    if evidence.kind == EvidenceKind::Nda
        && (node.parent_organisation_id.is_none()
            || evidence.counterparty_organisation_id != node.parent_organisation_id)
    {
        return EvidenceStatus::WrongOrganisation;
    }
    if !in_scope(evidence, node, today) {
        return EvidenceStatus::WrongScope;
    }
    if evidence.revoked {
        return EvidenceStatus::Revoked;
    }
    if let Some(status) = evidence.dated_status(today) {
        return status;
    }
    if !evidence.verified {
        return EvidenceStatus::NotVerified;
    }
    EvidenceStatus::Met
}

/// Whether the record covers the node's service (see the module's rules).
fn in_scope(evidence: &EvidenceFact, node: &NodeFacts, today: NaiveDate) -> bool {
    let service = node.service_name.as_deref();
    match evidence.kind {
        EvidenceKind::Ismap => service.is_some_and(|s| {
            evidence
                .service_name
                .as_deref()
                .is_some_and(|named| same_service(named, s))
        }),
        EvidenceKind::Iso27017 => service.is_some_and(|s| {
            let own_scope = evidence.services().next().is_none() || evidence.names_service(s);
            own_scope
                && node.evidence.iter().any(|base| {
                    base.kind == EvidenceKind::Iso27001
                        && base.organisation_id == evidence.organisation_id
                        && base.node_id.as_deref().is_none_or(|id| id == node.node_id)
                        && base.covered_services.iter().any(|c| same_service(c, s))
                        && base.in_good_standing(today)
                })
        }),
        _ => match service {
            Some(s) => evidence.services().next().is_none() || evidence.names_service(s),
            None => true,
        },
    }
}

/// Every ancestor of the node must hold a permission in force on `today`: state `permitted` and
/// `period_start ≤ today ≤ period_end` (BRIEF C7). One `ancestor_not_in_force` per ancestor that
/// fails, tier 1 first.
pub fn chain_in_force(facts: &ChainFacts, today: NaiveDate) -> Vec<Unmet> {
    let mut unmet = Vec::new();
    for ancestor in facts.ancestors.iter().rev() {
        let mut reasons = Vec::new();
        let mut ja = Vec::new();
        let mut en = Vec::new();
        let state = &ancestor.permission_state;
        if state != "permitted" {
            reasons.push("not_permitted");
            ja.push(format!("許諾が有効ではありません(状態: {state})"));
            en.push(format!("its permission is not in force (state: {state})"));
        }
        let (start, end) = (ancestor.period_start, ancestor.period_end);
        if today < start || today > end {
            reasons.push(if today < start {
                "period_not_started"
            } else {
                "period_ended"
            });
            ja.push(format!("委託期間外です({start}〜{end})"));
            en.push(format!("outside its period ({start} to {end})"));
        }
        if reasons.is_empty() {
            continue;
        }
        let (place_ja, place_en) = place(ancestor);
        unmet.push(
            Unmet::new(
                "ancestor_not_in_force",
                format!("{place_ja}: {}", ja.join("。")),
                format!("{place_en}: {}", en.join("; ")),
            )
            .with_detail(json!({
                "tier": ancestor.tier,
                "node_id": ancestor.node_id,
                "organisation_id": ancestor.organisation_id,
                "state": state,
                "period_start": start,
                "period_end": end,
                "reasons": reasons,
            })),
        );
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "国保情報集約クラウド";

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn today() -> NaiveDate {
        d(2026, 11, 22)
    }

    /// A verified record valid from 2025-04-01 to 2028-03-31.
    fn fact(id: &str, kind: EvidenceKind, organisation_id: &str) -> EvidenceFact {
        EvidenceFact {
            id: id.to_owned(),
            kind,
            organisation_id: organisation_id.to_owned(),
            node_id: None,
            service_name: None,
            covered_services: Vec::new(),
            counterparty_organisation_id: None,
            valid_from: Some(d(2025, 4, 1)),
            valid_until: Some(d(2028, 3, 31)),
            renewal_pending: false,
            verified: true,
            revoked: false,
        }
    }

    fn nda(id: &str, organisation_id: &str, counterparty: &str) -> EvidenceFact {
        EvidenceFact {
            counterparty_organisation_id: Some(counterparty.to_owned()),
            ..fact(id, EvidenceKind::Nda, organisation_id)
        }
    }

    fn covering(mut fact: EvidenceFact, services: &[&str]) -> EvidenceFact {
        fact.covered_services = services.iter().map(|s| (*s).to_owned()).collect();
        fact
    }

    fn for_service(mut fact: EvidenceFact, service: &str) -> EvidenceFact {
        fact.service_name = Some(service.to_owned());
        fact
    }

    fn node(node_id: &str, tier: u32, org: &str, name: &str, parent: &str) -> NodeFacts {
        NodeFacts {
            node_id: node_id.to_owned(),
            tier,
            organisation_id: org.to_owned(),
            organisation_name: name.to_owned(),
            parent_organisation_id: Some(parent.to_owned()),
            hosts_environment: false,
            cloud_classification: None,
            service_name: None,
            permission_state: "permitted".to_owned(),
            period_start: d(2026, 4, 1),
            period_end: d(2027, 3, 31),
            evidence: Vec::new(),
        }
    }

    /// 目黒区 → 国保連 (tier 1) → 国保中央会 (tier 2) → the cloud provider (tier 3), every
    /// requirement met; the node to decide is the cloud provider's.
    fn chain() -> ChainFacts {
        use EvidenceKind as K;
        let mut tier1 = node(
            "n1",
            1,
            "kokuhoren",
            "東京都国民健康保険団体連合会",
            "meguro",
        );
        tier1.evidence = vec![
            nda("nda-1", "kokuhoren", "meguro"),
            fact("chart-1", K::StructureChart, "kokuhoren"),
            fact("safe-1", K::Safeguards, "kokuhoren"),
            covering(
                fact("iso01-1", K::Iso27001, "kokuhoren"),
                &["国保総合システム"],
            ),
        ];
        let mut tier2 = node("n2", 2, "chuokai", "国民健康保険中央会", "kokuhoren");
        tier2.evidence = vec![
            nda("nda-2", "chuokai", "kokuhoren"),
            fact("chart-2", K::StructureChart, "chuokai"),
            fact("safe-2", K::Safeguards, "chuokai"),
            fact("pmark-2", K::PrivacyMark, "chuokai"),
            // The parent's records are in the list too; they must not count for this node.
            covering(
                fact("iso01-1", K::Iso27001, "kokuhoren"),
                &["国保総合システム"],
            ),
            nda("nda-1", "kokuhoren", "meguro"),
        ];
        let mut tier3 = node("n3", 3, "cloud", "クラウド株式会社", "chuokai");
        tier3.hosts_environment = true;
        tier3.cloud_classification = Some(CloudClassification::HandlesData);
        tier3.service_name = Some(SERVICE.to_owned());
        tier3.evidence = vec![
            nda("nda-3", "cloud", "chuokai"),
            fact("chart-3", K::StructureChart, "cloud"),
            fact("safe-3", K::Safeguards, "cloud"),
            covering(
                fact("iso01-3", K::Iso27001, "cloud"),
                &[SERVICE, "別サービス"],
            ),
            for_service(fact("ismap-3", K::Ismap, "cloud"), SERVICE),
            covering(fact("iso17-3", K::Iso27017, "cloud"), &[SERVICE]),
            covering(fact("iso18-3", K::Iso27018, "cloud"), &[SERVICE]),
            for_service(fact("dom-3", K::DomesticStorage, "cloud"), SERVICE),
            EvidenceFact {
                node_id: Some("n3".to_owned()),
                ..for_service(fact("srm-3", K::SharedResponsibility, "chuokai"), SERVICE)
            },
            fact("pmark-2", K::PrivacyMark, "chuokai"),
        ];
        ChainFacts {
            node: tier3,
            ancestors: vec![tier2, tier1],
        }
    }

    fn evaluate_default(facts: &ChainFacts) -> Evaluation {
        evaluate(&Policy::default_policy(), facts, today())
    }

    /// The evaluation of the cloud node alone (no ancestors).
    fn cloud_only(change: impl FnOnce(&mut NodeFacts)) -> Evaluation {
        let mut facts = chain();
        facts.ancestors.clear();
        change(&mut facts.node);
        evaluate_default(&facts)
    }

    /// (requirement, reason) of every unmet item.
    fn reasons(evaluation: &Evaluation) -> Vec<(String, String)> {
        evaluation
            .unmet
            .iter()
            .map(|u| {
                let detail = u.detail.as_ref().unwrap();
                (
                    detail["requirement"].as_str().unwrap_or(&u.code).to_owned(),
                    detail["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn evidence_mut<'a>(node: &'a mut NodeFacts, id: &str) -> &'a mut EvidenceFact {
        node.evidence.iter_mut().find(|e| e.id == id).unwrap()
    }

    fn params(toml_text: &str) -> toml::Table {
        toml_text.parse::<toml::Table>().unwrap()
    }

    // --- The policy ----------------------------------------------------------------------

    #[test]
    fn the_proposed_toml_snippet_parses_to_the_default_policy() {
        let document = params(DEFAULT_POLICY_TOML);
        let guards = document["transitions"]["guards"].as_array().unwrap();
        let names: Vec<&str> = guards.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["chain_in_force", "requirements_met"]);
        let mut guard = guards[1].as_table().unwrap().clone();
        guard.remove("name");
        assert_eq!(
            Policy::from_params(&guard).unwrap(),
            Policy::default_policy()
        );
    }

    #[test]
    fn the_default_policy_follows_the_brief() {
        let policy = Policy::default_policy();
        let summary: Vec<(&str, &str, &str, Vec<&str>)> = policy
            .requirements
            .iter()
            .map(|r| {
                let kinds = r.any_of.iter().map(|k| k.as_str()).collect();
                (
                    r.id.as_str(),
                    r.applies_to.as_str(),
                    r.holder.as_str(),
                    kinds,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("nda", "every_node", "contractor", vec!["nda"]),
                (
                    "structure_chart",
                    "every_node",
                    "contractor",
                    vec!["structure_chart"]
                ),
                ("safeguards", "every_node", "contractor", vec!["safeguards"]),
                (
                    "security_certification",
                    "every_node",
                    "contractor",
                    vec!["iso27001", "privacy_mark"]
                ),
                ("ismap", "cloud_node", "contractor", vec!["ismap"]),
                (
                    "cloud_security",
                    "cloud_node",
                    "contractor",
                    vec!["iso27017", "cs_gold"]
                ),
                ("iso27018", "cloud_node", "contractor", vec!["iso27018"]),
                (
                    "domestic_storage",
                    "cloud_node",
                    "contractor",
                    vec!["domestic_storage"]
                ),
                (
                    "shared_responsibility",
                    "cloud_node",
                    "parent",
                    vec!["shared_responsibility"]
                ),
                (
                    "no_access_clause",
                    "no_access_cloud_node",
                    "contractor",
                    vec!["no_access_clause"]
                ),
            ]
        );
    }

    #[test]
    fn a_policy_with_mistakes_is_refused_with_a_message_naming_them() {
        let requirement = |body: &str| format!("[[requirements]]\n{body}\n");
        let ok_label = "label = { ja = \"あ\", en = \"a\" }";
        let cases = [
            (
                requirement(&format!("id = \"x\"\napplies_to = \"every_node\"\nany_of = [\"iso27000\"]\n{ok_label}")),
                "requirement \"x\": unknown evidence kind \"iso27000\"; expected ismap, iso27001",
            ),
            (
                requirement(&format!("id = \"x\"\napplies_to = \"each_node\"\nany_of = [\"nda\"]\n{ok_label}")),
                "requirement \"x\": unknown applies_to \"each_node\"; expected every_node, cloud_node or no_access_cloud_node",
            ),
            (
                requirement("id = \"x\"\napplies_to = \"every_node\"\nany_of = [\"nda\"]"),
                "requirement \"x\" needs a label = { ja = \"…\", en = \"…\" }, both non-empty",
            ),
            (
                requirement("id = \"x\"\napplies_to = \"every_node\"\nany_of = [\"nda\"]\nlabel = { ja = \"あ\" }"),
                "requirement \"x\" needs a label",
            ),
            (
                requirement(&format!("id = \"x\"\napplies_to = \"cloud_node\"\nany_of = [\"cs_silver\"]\n{ok_label}")),
                "requirement \"x\": cs_silver is self-assessed",
            ),
            (
                requirement(&format!("id = \"x\"\napplies_to = \"every_node\"\nholder = \"root\"\nany_of = [\"nda\"]\n{ok_label}")),
                "requirement \"x\": unknown holder \"root\"; expected contractor or parent",
            ),
            (
                requirement(&format!("id = \"x\"\napplies_to = \"every_node\"\nany_of = []\n{ok_label}")),
                "requirement \"x\" needs \"any_of\"",
            ),
            (
                requirement(&format!("id = \"x\"\napplies_to = \"every_node\"\nany_of = [\"nda\"]\nwhen = 1\n{ok_label}")),
                "requirement \"x\": unknown key \"when\"",
            ),
            (
                requirement("applies_to = \"every_node\""),
                "requirements[0] needs an \"id\"",
            ),
            (
                format!(
                    "{0}{0}",
                    requirement(&format!("id = \"x\"\napplies_to = \"every_node\"\nany_of = [\"nda\"]\n{ok_label}"))
                ),
                "requirement \"x\" is declared twice",
            ),
            ("requirements = []".to_owned(), "at least one requirement"),
            (String::new(), "the policy needs \"requirements\""),
            ("kinds = 1".to_owned(), "unknown parameter \"kinds\""),
        ];
        for (text, expected) in cases {
            let error = Policy::from_params(&params(&text)).unwrap_err();
            assert!(
                error.starts_with(expected) || error.contains(expected),
                "{text}\n→ {error}"
            );
        }
    }

    // --- The whole chain ---------------------------------------------------------------

    #[test]
    fn a_four_tier_chain_with_every_document_in_order_passes() {
        let evaluation = evaluate_default(&chain());
        assert!(evaluation.is_satisfied(), "{:#?}", evaluation.unmet);
        assert!(evaluation.warnings.is_empty(), "{:#?}", evaluation.warnings);
        let lines: Vec<(u32, &str, EvidenceStatus, Option<&str>)> = evaluation
            .checklist
            .iter()
            .map(|c| {
                (
                    c.tier,
                    c.requirement.as_str(),
                    c.status,
                    c.evidence_id.as_deref(),
                )
            })
            .collect();
        use EvidenceStatus::Met;
        assert_eq!(
            lines,
            [
                (1, "nda", Met, Some("nda-1")),
                (1, "structure_chart", Met, Some("chart-1")),
                (1, "safeguards", Met, Some("safe-1")),
                (1, "security_certification", Met, Some("iso01-1")),
                (2, "nda", Met, Some("nda-2")),
                (2, "structure_chart", Met, Some("chart-2")),
                (2, "safeguards", Met, Some("safe-2")),
                (2, "security_certification", Met, Some("pmark-2")),
                (3, "nda", Met, Some("nda-3")),
                (3, "structure_chart", Met, Some("chart-3")),
                (3, "safeguards", Met, Some("safe-3")),
                (3, "security_certification", Met, Some("iso01-3")),
                (3, "ismap", Met, Some("ismap-3")),
                (3, "cloud_security", Met, Some("iso17-3")),
                (3, "iso27018", Met, Some("iso18-3")),
                (3, "domestic_storage", Met, Some("dom-3")),
                (3, "shared_responsibility", Met, Some("srm-3")),
            ]
        );
        assert_eq!(evaluation.checklist[0].valid_until, Some(d(2028, 3, 31)));
    }

    #[test]
    fn the_same_chain_failing_at_several_tiers_lists_every_unmet_item() {
        let mut facts = chain();
        let tier1 = &mut facts.ancestors[1];
        evidence_mut(tier1, "nda-1").valid_until = Some(d(2026, 3, 31));
        let tier2 = &mut facts.ancestors[0];
        tier2.evidence.retain(|e| e.id != "pmark-2");
        evidence_mut(tier2, "safe-2").verified = false;
        let tier3 = &mut facts.node;
        evidence_mut(tier3, "iso18-3").valid_until = Some(d(2026, 3, 31));
        evidence_mut(tier3, "ismap-3").service_name = Some("基盤クラウド".to_owned());
        tier3.evidence.retain(|e| e.id != "dom-3");

        let evaluation = evaluate_default(&facts);
        let tiers: Vec<u64> = evaluation
            .unmet
            .iter()
            .map(|u| u.detail.as_ref().unwrap()["tier"].as_u64().unwrap())
            .collect();
        assert_eq!(tiers, [1, 2, 2, 3, 3, 3]);
        assert_eq!(
            reasons(&evaluation),
            pairs(&[
                ("nda", "expired"),
                ("safeguards", "not_verified"),
                ("security_certification", "missing"),
                ("ismap", "wrong_scope"),
                ("iso27018", "expired"),
                ("domestic_storage", "missing"),
            ])
        );
        let iso18 = &evaluation.unmet[4];
        assert_eq!(iso18.code, "requirement_unmet");
        assert_eq!(
            iso18.message.ja,
            "第3階層 クラウド株式会社: ISO/IEC 27018 — 有効期限切れ(2026-03-31)"
        );
        assert_eq!(
            iso18.message.en,
            "Tier 3 クラウド株式会社: ISO/IEC 27018 — expired on 2026-03-31"
        );
        assert_eq!(
            iso18.detail,
            Some(json!({
                "tier": 3, "node_id": "n3", "organisation_id": "cloud", "requirement": "iso27018",
                "reason": "expired", "evidence_id": "iso18-3", "expired_on": "2026-03-31"
            }))
        );
        assert_eq!(
            evaluation.unmet[2].message.ja,
            "第2階層 国民健康保険中央会: ISO/IEC 27001 またはプライバシーマーク — 未提出"
        );
        assert_eq!(
            evaluation.unmet[2]
                .detail
                .as_ref()
                .unwrap()
                .get("evidence_id"),
            None
        );
        assert!(evaluation.unmet[3]
            .message
            .ja
            .contains("サービス「国保情報集約クラウド」を対象としていません"));
        let statuses: Vec<EvidenceStatus> = evaluation.checklist.iter().map(|c| c.status).collect();
        assert_eq!(statuses.len(), 17);
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s != EvidenceStatus::Met)
                .count(),
            6
        );
    }

    // --- Validity and verification ---------------------------------------------------------

    #[test]
    fn unverified_revoked_and_not_yet_valid_evidence_does_not_count() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "chart-3").verified = false;
            evidence_mut(n, "safe-3").revoked = true;
            evidence_mut(n, "dom-3").valid_from = Some(d(2026, 12, 1));
        });
        assert_eq!(
            reasons(&evaluation),
            pairs(&[
                ("structure_chart", "not_verified"),
                ("safeguards", "revoked"),
                ("domestic_storage", "not_yet_valid"),
            ])
        );
        assert!(evaluation.unmet[0]
            .message
            .ja
            .ends_with("履行体制図 — 担当者の確認待ち"));
        assert_eq!(
            evaluation.unmet[2].detail.as_ref().unwrap()["valid_from"],
            "2026-12-01"
        );
        assert!(evaluation.unmet[2]
            .message
            .en
            .ends_with("not valid until 2026-12-01"));
    }

    #[test]
    fn evidence_is_valid_on_its_first_and_last_day() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "chart-3").valid_from = Some(today());
            evidence_mut(n, "safe-3").valid_until = Some(today());
        });
        assert!(evaluation.is_satisfied(), "{:#?}", evaluation.unmet);
    }

    #[test]
    fn an_ismap_registration_past_expiry_counts_while_its_renewal_is_pending() {
        let pending = cloud_only(|n| {
            let ismap = evidence_mut(n, "ismap-3");
            ismap.valid_until = Some(d(2026, 7, 31));
            ismap.renewal_pending = true;
        });
        assert!(pending.is_satisfied(), "{:#?}", pending.unmet);
        assert!(
            pending.warnings.is_empty(),
            "pending renewals are not warned about"
        );

        let lapsed = cloud_only(|n| evidence_mut(n, "ismap-3").valid_until = Some(d(2026, 7, 31)));
        assert_eq!(reasons(&lapsed), pairs(&[("ismap", "expired")]));
        assert_eq!(
            lapsed.unmet[0].detail.as_ref().unwrap()["expired_on"],
            "2026-07-31"
        );
    }

    #[test]
    fn a_pending_renewal_keeps_only_ismap_alive() {
        let evaluation = cloud_only(|n| {
            let iso = evidence_mut(n, "iso18-3");
            iso.valid_until = Some(d(2026, 7, 31));
            iso.renewal_pending = true;
        });
        assert_eq!(reasons(&evaluation), pairs(&[("iso27018", "expired")]));
    }

    // --- Scope, organisation and kind ------------------------------------------------------

    #[test]
    fn ismap_must_be_registered_for_the_nodes_service() {
        let other = cloud_only(|n| {
            evidence_mut(n, "ismap-3").service_name = Some("別のクラウド".to_owned())
        });
        assert_eq!(reasons(&other), pairs(&[("ismap", "wrong_scope")]));

        let unnamed = cloud_only(|n| evidence_mut(n, "ismap-3").service_name = None);
        assert_eq!(reasons(&unnamed), pairs(&[("ismap", "wrong_scope")]));

        let spelled_differently = cloud_only(|n| {
            n.service_name = Some("ＡＷＳ  Cloud".to_owned());
            for e in &mut n.evidence {
                e.service_name = e.service_name.as_ref().map(|_| " aws cloud".to_owned());
                e.covered_services = e
                    .covered_services
                    .iter()
                    .map(|_| "AWS Cloud".to_owned())
                    .collect();
            }
        });
        assert!(
            spelled_differently.is_satisfied(),
            "{:#?}",
            spelled_differently.unmet
        );
    }

    #[test]
    fn iso27017_counts_only_with_an_iso27001_of_the_same_organisation_covering_the_service() {
        let no_27001 = cloud_only(|n| n.evidence.retain(|e| e.id != "iso01-3"));
        assert_eq!(
            reasons(&no_27001),
            pairs(&[
                ("security_certification", "missing"),
                ("cloud_security", "wrong_scope")
            ])
        );
        assert!(no_27001.unmet[1]
            .message
            .ja
            .contains("範囲に含むISO/IEC 27001がありません"));

        let other_service = cloud_only(|n| {
            evidence_mut(n, "iso01-3").covered_services = vec!["別サービス".to_owned()]
        });
        assert_eq!(
            reasons(&other_service),
            pairs(&[
                ("security_certification", "wrong_scope"),
                ("cloud_security", "wrong_scope")
            ])
        );

        let expired_27001 =
            cloud_only(|n| evidence_mut(n, "iso01-3").valid_until = Some(d(2026, 1, 31)));
        assert_eq!(
            reasons(&expired_27001),
            pairs(&[
                ("security_certification", "expired"),
                ("cloud_security", "wrong_scope")
            ])
        );

        let other_organisation = cloud_only(|n| {
            n.evidence.retain(|e| e.id != "iso01-3");
            n.evidence.push(covering(
                fact("iso01-x", EvidenceKind::Iso27001, "chuokai"),
                &[SERVICE],
            ));
            n.evidence
                .push(fact("pmark-3", EvidenceKind::PrivacyMark, "cloud"));
        });
        assert_eq!(
            reasons(&other_organisation),
            pairs(&[("cloud_security", "wrong_scope")])
        );
    }

    #[test]
    fn an_iso27017_for_another_service_does_not_count() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "iso17-3").covered_services = vec!["別サービス".to_owned()]
        });
        assert_eq!(
            reasons(&evaluation),
            pairs(&[("cloud_security", "wrong_scope")])
        );
        assert!(evaluation.unmet[0]
            .message
            .ja
            .contains("を対象としていません"));
    }

    #[test]
    fn cs_mark_gold_counts_and_silver_is_never_accepted() {
        let gold = cloud_only(|n| {
            n.evidence.retain(|e| e.id != "iso17-3");
            n.evidence.push(for_service(
                fact("gold-3", EvidenceKind::CsGold, "cloud"),
                SERVICE,
            ));
        });
        assert!(gold.is_satisfied(), "{:#?}", gold.unmet);

        let silver = cloud_only(|n| {
            n.evidence.retain(|e| e.id != "iso17-3");
            n.evidence.push(for_service(
                fact("silver-3", EvidenceKind::CsSilver, "cloud"),
                SERVICE,
            ));
        });
        assert_eq!(
            reasons(&silver),
            pairs(&[("cloud_security", "not_accepted")])
        );
        assert_eq!(
            silver.unmet[0].detail.as_ref().unwrap()["evidence_id"],
            "silver-3"
        );
        assert!(silver.unmet[0].message.en.contains("self-assessed"));
    }

    #[test]
    fn an_nda_must_name_the_parent_organisation() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "nda-3").counterparty_organisation_id = Some("kokuhoren".to_owned());
        });
        assert_eq!(
            reasons(&evaluation),
            pairs(&[("nda", "wrong_organisation")])
        );
        assert!(evaluation.unmet[0]
            .message
            .ja
            .contains("契約の相手方が親階層の組織ではありません"));
    }

    #[test]
    fn the_shared_responsibility_statement_must_come_from_the_parent() {
        let evaluation =
            cloud_only(|n| evidence_mut(n, "srm-3").organisation_id = "cloud".to_owned());
        assert_eq!(
            reasons(&evaluation),
            pairs(&[("shared_responsibility", "wrong_organisation")])
        );
        assert!(evaluation.unmet[0]
            .message
            .en
            .contains("held by another organisation"));
    }

    #[test]
    fn a_record_attached_to_another_node_does_not_count_here() {
        let evaluation = cloud_only(|n| evidence_mut(n, "srm-3").node_id = Some("n9".to_owned()));
        assert_eq!(
            reasons(&evaluation),
            pairs(&[("shared_responsibility", "missing")])
        );
    }

    #[test]
    fn ismap_does_not_prove_domestic_storage() {
        let evaluation = cloud_only(|n| {
            n.evidence
                .retain(|e| e.kind != EvidenceKind::DomesticStorage)
        });
        assert_eq!(
            reasons(&evaluation),
            pairs(&[("domestic_storage", "missing")])
        );
    }

    // --- Cloud classification ------------------------------------------------------------

    #[test]
    fn a_hosting_node_without_a_classification_waits_for_the_municipality() {
        let evaluation = cloud_only(|n| {
            n.cloud_classification = None;
            n.evidence.clear();
        });
        assert_eq!(evaluation.unmet.len(), 1);
        let unmet = &evaluation.unmet[0];
        assert_eq!(unmet.code, "cloud_classification_required");
        assert!(unmet.message.ja.starts_with("第3階層 クラウド株式会社: "));
        assert_eq!(
            unmet.detail,
            Some(json!({"tier": 3, "node_id": "n3", "organisation_id": "cloud"}))
        );
        assert!(evaluation.checklist.is_empty());
    }

    #[test]
    fn a_no_access_cloud_node_needs_only_its_clause() {
        let missing = cloud_only(|n| n.cloud_classification = Some(CloudClassification::NoAccess));
        assert_eq!(reasons(&missing), pairs(&[("no_access_clause", "missing")]));
        assert_eq!(
            missing.unmet[0].message.ja,
            "クラウド株式会社(データを取り扱わないクラウド事業者): データを取り扱わない旨の契約条項とアクセス制御 — 未提出"
        );

        let present = cloud_only(|n| {
            n.cloud_classification = Some(CloudClassification::NoAccess);
            n.evidence = vec![fact("clause-3", EvidenceKind::NoAccessClause, "cloud")];
        });
        assert!(present.is_satisfied());
        let lines: Vec<&str> = present
            .checklist
            .iter()
            .map(|c| c.requirement.as_str())
            .collect();
        assert_eq!(lines, ["no_access_clause"]);
    }

    #[test]
    fn a_node_that_does_not_host_the_environment_has_only_the_every_node_requirements() {
        let facts = chain();
        let evaluation = evaluate(
            &Policy::default_policy(),
            &ChainFacts {
                node: facts.ancestors[0].clone(),
                ancestors: vec![],
            },
            today(),
        );
        assert!(evaluation.is_satisfied());
        assert_eq!(evaluation.checklist.len(), 4);
    }

    // --- Choosing what to report ---------------------------------------------------------

    /// Years of renewals of every record of the chain: what the evaluation says is the same
    /// with them and without the superseded ones, whichever record counts or is reported.
    #[test]
    fn superseded_records_change_no_evaluation() {
        let history = |facts: &mut ChainFacts, years: i32| {
            for node in std::iter::once(&mut facts.node).chain(facts.ancestors.iter_mut()) {
                let current = node.evidence.clone();
                for e in current {
                    for y in 1..=years {
                        node.evidence.push(EvidenceFact {
                            id: format!("{}-{y}", e.id),
                            valid_from: Some(d(2025 - y, 4, 1)),
                            valid_until: Some(d(2026 - y, 3, 31)),
                            ..e.clone()
                        });
                    }
                }
            }
        };
        let mut full = chain();
        history(&mut full, 5);
        let pruned = full.clone().without_superseded(today());
        let count = |f: &ChainFacts| {
            std::iter::once(&f.node)
                .chain(&f.ancestors)
                .map(|n| n.evidence.len())
                .sum::<usize>()
        };
        let current = count(&chain());
        assert_eq!(count(&full), current * 6);
        // Each current record keeps the last of its renewals, the one an expiry would name.
        assert_eq!(count(&pruned), current * 2);
        assert_eq!(evaluate_default(&full), evaluate_default(&pruned));

        // With the current records gone, the expired ones are what is reported: the same.
        let mut lapsed = chain();
        for node in std::iter::once(&mut lapsed.node).chain(lapsed.ancestors.iter_mut()) {
            node.evidence.clear();
        }
        let mut old = full.clone();
        for node in std::iter::once(&mut old.node).chain(old.ancestors.iter_mut()) {
            node.evidence
                .retain(|e| e.id.contains('-') && e.valid_until < Some(today()));
        }
        let pruned = old.clone().without_superseded(today());
        let evaluation = evaluate_default(&pruned);
        assert!(!evaluation.unmet.is_empty());
        assert_eq!(evaluate_default(&old), evaluation);
        assert_ne!(
            evaluate_default(&lapsed),
            evaluation,
            "expired, not missing"
        );
    }

    #[test]
    fn a_present_but_expired_record_is_reported_rather_than_missing() {
        let evaluation = cloud_only(|n| {
            n.evidence.retain(|e| e.id != "iso18-3");
            n.evidence.push(EvidenceFact {
                valid_until: Some(d(2025, 3, 31)),
                ..covering(
                    fact("iso18-old", EvidenceKind::Iso27018, "cloud"),
                    &[SERVICE],
                )
            });
            n.evidence.push(EvidenceFact {
                valid_until: Some(d(2026, 3, 31)),
                ..covering(
                    fact("iso18-last", EvidenceKind::Iso27018, "cloud"),
                    &[SERVICE],
                )
            });
        });
        assert_eq!(reasons(&evaluation), pairs(&[("iso27018", "expired")]));
        assert_eq!(
            evaluation.unmet[0].detail.as_ref().unwrap()["evidence_id"],
            "iso18-last"
        );
    }

    #[test]
    fn a_renewal_waiting_for_verification_is_reported_before_the_expired_record() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "iso18-3").valid_until = Some(d(2026, 3, 31));
            n.evidence.push(EvidenceFact {
                verified: false,
                ..covering(
                    fact("iso18-new", EvidenceKind::Iso27018, "cloud"),
                    &[SERVICE],
                )
            });
        });
        assert_eq!(reasons(&evaluation), pairs(&[("iso27018", "not_verified")]));
        assert_eq!(
            evaluation.unmet[0].detail.as_ref().unwrap()["evidence_id"],
            "iso18-new"
        );
    }

    #[test]
    fn an_expired_record_of_another_service_reads_as_wrong_scope() {
        let evaluation = cloud_only(|n| {
            let ismap = evidence_mut(n, "ismap-3");
            ismap.service_name = Some("別のクラウド".to_owned());
            ismap.valid_until = Some(d(2026, 1, 1));
        });
        assert_eq!(reasons(&evaluation), pairs(&[("ismap", "wrong_scope")]));
    }

    // --- Warnings --------------------------------------------------------------------------

    #[test]
    fn evidence_expiring_before_the_end_of_the_period_gives_a_warning() {
        let evaluation =
            cloud_only(|n| evidence_mut(n, "iso18-3").valid_until = Some(d(2027, 1, 31)));
        assert!(evaluation.is_satisfied());
        assert_eq!(evaluation.warnings.len(), 1);
        let warning = &evaluation.warnings[0];
        assert_eq!(warning.code, "evidence_expires_before_period_end");
        assert_eq!(
            warning.message.ja,
            "第3階層 クラウド株式会社: ISO/IEC 27018 — 有効期限(2027-01-31)が委託期間の終了日(2027-03-31)より前です"
        );
        assert_eq!(
            warning.detail,
            json!({
                "tier": 3, "node_id": "n3", "organisation_id": "cloud", "requirement": "iso27018",
                "evidence_id": "iso18-3", "valid_until": "2027-01-31", "period_end": "2027-03-31"
            })
        );
        let line = evaluation
            .checklist
            .iter()
            .find(|c| c.requirement == "iso27018")
            .unwrap();
        assert_eq!(
            (line.status, line.valid_until),
            (EvidenceStatus::Met, Some(d(2027, 1, 31)))
        );
    }

    #[test]
    fn a_renewed_record_that_lasts_the_period_silences_the_warning() {
        let evaluation = cloud_only(|n| {
            evidence_mut(n, "iso18-3").valid_until = Some(d(2027, 1, 31));
            n.evidence.push(EvidenceFact {
                valid_from: Some(d(2026, 11, 1)),
                valid_until: Some(d(2029, 10, 31)),
                ..covering(
                    fact("iso18-new", EvidenceKind::Iso27018, "cloud"),
                    &[SERVICE],
                )
            });
        });
        assert!(evaluation.warnings.is_empty(), "{:#?}", evaluation.warnings);
        let line = evaluation
            .checklist
            .iter()
            .find(|c| c.requirement == "iso27018")
            .unwrap();
        assert_eq!(line.evidence_id.as_deref(), Some("iso18-new"));
    }

    // --- Facts ---------------------------------------------------------------------------

    #[test]
    fn facts_are_taken_from_typed_fields_and_round_trip_as_json() {
        let fields: EvidenceFields = serde_json::from_value(json!({
            "kind": "ismap", "registration_number": "C21-0005-2", "service_name": SERVICE,
            "provider": "クラウド株式会社", "registration_date": "2024-04-01",
            "expiry_date": "2026-07-31", "scope_statement": "IaaS", "renewal_pending": true
        }))
        .unwrap();
        let fact = EvidenceFact::from_fields("ismap-3", "cloud", None, &fields, true, false);
        assert_eq!(fact.kind, EvidenceKind::Ismap);
        assert_eq!(fact.service_name.as_deref(), Some(SERVICE));
        assert_eq!(
            (fact.valid_from, fact.valid_until),
            (Some(d(2024, 4, 1)), Some(d(2026, 7, 31)))
        );
        assert!(fact.renewal_pending && fact.verified && !fact.revoked);

        let facts = chain();
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["node"]["cloud_classification"], "handles_data");
        assert_eq!(serde_json::from_value::<ChainFacts>(json).unwrap(), facts);
    }

    // --- Ancestors in force --------------------------------------------------------------

    #[test]
    fn a_chain_whose_ancestors_are_all_permitted_and_in_period_is_in_force() {
        assert!(chain_in_force(&chain(), today()).is_empty());
    }

    #[test]
    fn every_ancestor_not_in_force_is_listed_with_its_state() {
        let mut facts = chain();
        facts.ancestors[0].permission_state = "suspended".to_owned();
        facts.ancestors[1].period_end = d(2026, 3, 31);
        facts.ancestors[1].period_start = d(2025, 4, 1);
        // The node's own state is the decision being made; it is not checked here.
        facts.node.permission_state = "decision".to_owned();

        let unmet = chain_in_force(&facts, today());
        assert_eq!(unmet.len(), 2);
        assert!(unmet.iter().all(|u| u.code == "ancestor_not_in_force"));
        assert_eq!(
            unmet[0].message.ja,
            "第1階層 東京都国民健康保険団体連合会: 委託期間外です(2025-04-01〜2026-03-31)"
        );
        assert_eq!(
            unmet[1].message.ja,
            "第2階層 国民健康保険中央会: 許諾が有効ではありません(状態: suspended)"
        );
        assert_eq!(
            unmet[1].message.en,
            "Tier 2 国民健康保険中央会: its permission is not in force (state: suspended)"
        );
        assert_eq!(
            unmet[1].detail,
            Some(json!({
                "tier": 2, "node_id": "n2", "organisation_id": "chuokai", "state": "suspended",
                "period_start": "2026-04-01", "period_end": "2027-03-31", "reasons": ["not_permitted"]
            }))
        );
        assert_eq!(
            unmet[0].detail.as_ref().unwrap()["reasons"],
            json!(["period_ended"])
        );
    }

    #[test]
    fn an_ancestor_can_fail_on_state_and_period_at_once() {
        let mut facts = chain();
        facts.ancestors[0].permission_state = "draft".to_owned();
        facts.ancestors[0].period_start = d(2027, 4, 1);
        facts.ancestors[0].period_end = d(2028, 3, 31);
        let unmet = chain_in_force(&facts, today());
        assert_eq!(unmet.len(), 1);
        assert_eq!(
            unmet[0].detail.as_ref().unwrap()["reasons"],
            json!(["not_permitted", "period_not_started"])
        );
        assert!(unmet[0]
            .message
            .en
            .contains("(state: draft); outside its period (2027-04-01 to 2028-03-31)"));
    }
}
