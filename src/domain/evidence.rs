//! Evidence (証跡): the kinds of document a requirement can ask for, and the typed fields of each
//! (BRIEF §3, its table of key fields and validity).
//!
//! [`EvidenceFields::validate`] lists every invalid field at once; it does not look for
//! individual numbers, which the caller checks over the whole request with
//! [`super::numbers::scan_json_for_individual_numbers`].

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::fiscal::FiscalYear;
use crate::error::FieldError;
use crate::workflow::definition::Label;

/// A kind of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// ISMAPクラウドサービスリストへの登録.
    Ismap,
    Iso27001,
    Iso27017,
    Iso27018,
    /// CSマーク・ゴールド (externally audited).
    CsGold,
    /// CSマーク・シルバー: self-assessed, so it never satisfies a requirement.
    CsSilver,
    PrivacyMark,
    Nda,
    StructureChart,
    Safeguards,
    DomesticStorage,
    SharedResponsibility,
    /// The contract clause and access control by which a cloud provider does not handle the data.
    NoAccessClause,
    TrainingRecord,
    InspectionReport,
    DeletionCertificate,
}

impl EvidenceKind {
    /// Every kind, in declaration order.
    pub const ALL: [EvidenceKind; 16] = [
        Self::Ismap,
        Self::Iso27001,
        Self::Iso27017,
        Self::Iso27018,
        Self::CsGold,
        Self::CsSilver,
        Self::PrivacyMark,
        Self::Nda,
        Self::StructureChart,
        Self::Safeguards,
        Self::DomesticStorage,
        Self::SharedResponsibility,
        Self::NoAccessClause,
        Self::TrainingRecord,
        Self::InspectionReport,
        Self::DeletionCertificate,
    ];

    /// The snake_case name used in JSON, definitions and the database.
    pub fn as_str(self) -> &'static str {
        self.names().0
    }

    /// The kind named `name` (snake_case), if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The name in Japanese.
    pub fn label_ja(self) -> &'static str {
        self.names().1
    }

    /// The name in English.
    pub fn label_en(self) -> &'static str {
        self.names().2
    }

    /// The name in both UI languages.
    pub fn label(self) -> Label {
        Label {
            ja: self.label_ja().to_owned(),
            en: self.label_en().to_owned(),
        }
    }

    /// (code name, Japanese, English).
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Ismap => ("ismap", "ISMAP登録", "ISMAP registration"),
            Self::Iso27001 => ("iso27001", "ISO/IEC 27001", "ISO/IEC 27001"),
            Self::Iso27017 => ("iso27017", "ISO/IEC 27017", "ISO/IEC 27017"),
            Self::Iso27018 => ("iso27018", "ISO/IEC 27018", "ISO/IEC 27018"),
            Self::CsGold => ("cs_gold", "CSマーク・ゴールド", "CS Mark Gold"),
            Self::CsSilver => ("cs_silver", "CSマーク・シルバー", "CS Mark Silver"),
            Self::PrivacyMark => ("privacy_mark", "プライバシーマーク", "PrivacyMark"),
            Self::Nda => ("nda", "秘密保持契約", "NDA"),
            Self::StructureChart => (
                "structure_chart",
                "履行体制図",
                "Implementation structure chart",
            ),
            Self::Safeguards => ("safeguards", "安全管理措置", "Safeguards"),
            Self::DomesticStorage => ("domestic_storage", "データの国内保管", "Domestic storage"),
            Self::SharedResponsibility => (
                "shared_responsibility",
                "責任共有モデルに係る書面",
                "Shared responsibility statement",
            ),
            Self::NoAccessClause => (
                "no_access_clause",
                "データを取り扱わない旨の契約条項",
                "No-access contract clause",
            ),
            Self::TrainingRecord => (
                "training_record",
                "研修の受講記録",
                "Training attendance record",
            ),
            Self::InspectionReport => ("inspection_report", "立入調査の報告", "Inspection report"),
            Self::DeletionCertificate => {
                ("deletion_certificate", "廃棄証明", "Deletion certificate")
            }
        }
    }
}

/// An ISMAP registration of one cloud service (the registration covers that product only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsmapFields {
    /// e.g. `C21-0005-2`.
    #[serde(default)]
    pub registration_number: String,
    #[serde(default)]
    pub service_name: String,
    #[serde(default)]
    pub provider: String,
    pub registration_date: NaiveDate,
    /// The audited period's end + 1 day + 1 year 4 months.
    pub expiry_date: NaiveDate,
    #[serde(default)]
    pub scope_statement: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// A renewal application is pending (remarks: 更新申請中); the registration stays valid.
    #[serde(default)]
    pub renewal_pending: bool,
}

/// An ISO/IEC 27001, 27017 or 27018 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoCertificateFields {
    #[serde(default)]
    pub certificate_number: String,
    #[serde(default)]
    pub organisation_name: String,
    /// The scope as the certificate states it.
    #[serde(default)]
    pub scope: String,
    /// The services (or works) the scope includes, as matched against a node's service.
    #[serde(default)]
    pub covered_services: Vec<String>,
    /// The standard's edition, e.g. `2022`.
    #[serde(default)]
    pub edition: String,
    #[serde(default)]
    pub certification_body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accreditation: Option<String>,
    pub issue_date: NaiveDate,
    pub expiry_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_surveillance_date: Option<NaiveDate>,
}

/// A CSマーク (gold or silver) licence of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsMarkFields {
    #[serde(default)]
    pub licence_number: String,
    #[serde(default)]
    pub service_name: String,
    pub issue_date: NaiveDate,
    pub expiry_date: NaiveDate,
}

/// A プライバシーマーク registration (2 years).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyMarkFields {
    #[serde(default)]
    pub registration_number: String,
    #[serde(default)]
    pub organisation_name: String,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

/// The clauses a contract must contain under the guideline on supervising contractors
/// (目黒区 III-4); each is `true` when the contract has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NdaClauses {
    pub confidentiality: bool,
    pub no_removal_from_premises: bool,
    pub purpose_limitation: bool,
    pub subcontract_conditions: bool,
    pub leak_liability: bool,
    pub return_or_deletion: bool,
    pub staff_supervision_and_training: bool,
    pub compliance_reports: bool,
    pub on_site_inspection: bool,
}

impl NdaClauses {
    /// Every clause: (field name, Japanese, English, present).
    pub fn entries(&self) -> [(&'static str, &'static str, &'static str, bool); 9] {
        [
            (
                "confidentiality",
                "秘密保持義務",
                "confidentiality",
                self.confidentiality,
            ),
            (
                "no_removal_from_premises",
                "事業所内からの特定個人情報の持出しの禁止",
                "no removal of the data from the premises",
                self.no_removal_from_premises,
            ),
            (
                "purpose_limitation",
                "特定個人情報の目的外利用の禁止",
                "no use beyond the purpose",
                self.purpose_limitation,
            ),
            (
                "subcontract_conditions",
                "再委託における条件",
                "conditions for subcontracting",
                self.subcontract_conditions,
            ),
            (
                "leak_liability",
                "漏えい事案等が発生した場合の委託先の責任",
                "the contractor's liability for leaks",
                self.leak_liability,
            ),
            (
                "return_or_deletion",
                "委託契約終了後の特定個人情報の返却又は廃棄",
                "return or deletion of the data at the end",
                self.return_or_deletion,
            ),
            (
                "staff_supervision_and_training",
                "従業者に対する監督・教育",
                "supervision and training of staff",
                self.staff_supervision_and_training,
            ),
            (
                "compliance_reports",
                "契約内容の遵守状況についての報告",
                "reports on compliance with the contract",
                self.compliance_reports,
            ),
            (
                "on_site_inspection",
                "委託元による実地の調査",
                "on-site inspection by the consignor",
                self.on_site_inspection,
            ),
        ]
    }
}

/// The NDA (or contract) between a contractor and its parent tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdaFields {
    /// The other party: the parent tier's organisation.
    #[serde(default)]
    pub counterparty_organisation_id: String,
    pub signed_date: NaiveDate,
    pub term_until: NaiveDate,
    #[serde(default)]
    pub clauses: NdaClauses,
}

/// One tier of an implementation structure chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureChartTier {
    #[serde(default)]
    pub organisation_name: String,
    #[serde(default)]
    pub responsible_person: String,
    #[serde(default)]
    pub manager: String,
    #[serde(default)]
    pub staff_count: u32,
    #[serde(default)]
    pub work_location: String,
    /// The organisation that supervises this tier (the supervision structure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_by: Option<String>,
}

/// An implementation structure chart (履行体制図): who does what, and who supervises whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureChartFields {
    #[serde(default)]
    pub tiers: Vec<StructureChartTier>,
}

/// The four kinds of safeguards (安全管理措置).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeguardsFields {
    #[serde(default)]
    pub organisational: String,
    #[serde(default)]
    pub personnel: String,
    #[serde(default)]
    pub physical: String,
    #[serde(default)]
    pub technical: String,
}

/// Where a cloud service stores the data (ISMAP does not prove it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomesticStorageFields {
    #[serde(default)]
    pub service_name: String,
    /// The data centre regions configured, e.g. `ap-northeast-1`.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub all_in_japan: bool,
}

/// The parent's written statement under the provider's shared responsibility model: how every
/// layer from the OS up is secured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedResponsibilityFields {
    #[serde(default)]
    pub service_name: String,
    /// OS and middleware vulnerability handling.
    #[serde(default)]
    pub os_and_middleware: String,
    /// Network configuration.
    #[serde(default)]
    pub network: String,
    /// Application security.
    #[serde(default)]
    pub application: String,
    /// Data encryption.
    #[serde(default)]
    pub encryption: String,
}

/// The evidence of a cloud provider that does not handle the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAccessClauseFields {
    /// The contract clause by which the provider does not handle the data.
    #[serde(default)]
    pub contract_clause: String,
    /// How access to the data is controlled.
    #[serde(default)]
    pub access_control: String,
}

/// A training session and its attendance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecordFields {
    pub date: NaiveDate,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub attendees: u32,
    /// The contract the training was given under.
    #[serde(default)]
    pub contract: String,
}

/// How an inspection was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionMode {
    OnSite,
    /// By video or photographs, when a visit is impractical.
    Remote,
}

/// An inspection of a contractor and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionReportFields {
    pub date: NaiveDate,
    pub mode: InspectionMode,
    #[serde(default)]
    pub inspectors: Vec<String>,
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub corrective_actions: String,
}

/// The deletion or return of data at the end of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionCertificateFields {
    /// What was deleted or returned.
    #[serde(default)]
    pub what: String,
    pub date: NaiveDate,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub witnessed_by: String,
}

/// The typed fields of an evidence record, tagged by its kind:
/// `{"kind": "ismap", "registration_number": "C21-0005-2", …}`.
///
/// Text and list fields default to empty when absent so that [`Self::validate`] can report every
/// missing one at once; dates have no default and are refused by deserialisation when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvidenceFields {
    Ismap(IsmapFields),
    Iso27001(IsoCertificateFields),
    Iso27017(IsoCertificateFields),
    Iso27018(IsoCertificateFields),
    CsGold(CsMarkFields),
    CsSilver(CsMarkFields),
    PrivacyMark(PrivacyMarkFields),
    Nda(NdaFields),
    StructureChart(StructureChartFields),
    Safeguards(SafeguardsFields),
    DomesticStorage(DomesticStorageFields),
    SharedResponsibility(SharedResponsibilityFields),
    NoAccessClause(NoAccessClauseFields),
    TrainingRecord(TrainingRecordFields),
    InspectionReport(InspectionReportFields),
    DeletionCertificate(DeletionCertificateFields),
}

impl EvidenceFields {
    /// The kind of evidence.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Self::Ismap(_) => EvidenceKind::Ismap,
            Self::Iso27001(_) => EvidenceKind::Iso27001,
            Self::Iso27017(_) => EvidenceKind::Iso27017,
            Self::Iso27018(_) => EvidenceKind::Iso27018,
            Self::CsGold(_) => EvidenceKind::CsGold,
            Self::CsSilver(_) => EvidenceKind::CsSilver,
            Self::PrivacyMark(_) => EvidenceKind::PrivacyMark,
            Self::Nda(_) => EvidenceKind::Nda,
            Self::StructureChart(_) => EvidenceKind::StructureChart,
            Self::Safeguards(_) => EvidenceKind::Safeguards,
            Self::DomesticStorage(_) => EvidenceKind::DomesticStorage,
            Self::SharedResponsibility(_) => EvidenceKind::SharedResponsibility,
            Self::NoAccessClause(_) => EvidenceKind::NoAccessClause,
            Self::TrainingRecord(_) => EvidenceKind::TrainingRecord,
            Self::InspectionReport(_) => EvidenceKind::InspectionReport,
            Self::DeletionCertificate(_) => EvidenceKind::DeletionCertificate,
        }
    }

    /// The first and last day on which the record is valid, where it has them. Training records
    /// and inspection reports hold for their fiscal year; a deletion certificate from its date on;
    /// charts, safeguards and statements until they are replaced (BRIEF §3).
    pub fn validity(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        match self {
            Self::Ismap(f) => (Some(f.registration_date), Some(f.expiry_date)),
            Self::Iso27001(f) | Self::Iso27017(f) | Self::Iso27018(f) => {
                (Some(f.issue_date), Some(f.expiry_date))
            }
            Self::CsGold(f) | Self::CsSilver(f) => (Some(f.issue_date), Some(f.expiry_date)),
            Self::PrivacyMark(f) => (Some(f.valid_from), Some(f.valid_until)),
            Self::Nda(f) => (Some(f.signed_date), Some(f.term_until)),
            Self::TrainingRecord(TrainingRecordFields { date, .. })
            | Self::InspectionReport(InspectionReportFields { date, .. }) => {
                (Some(*date), Some(FiscalYear::of(*date).end()))
            }
            Self::DeletionCertificate(f) => (Some(f.date), None),
            Self::StructureChart(_)
            | Self::Safeguards(_)
            | Self::DomesticStorage(_)
            | Self::SharedResponsibility(_)
            | Self::NoAccessClause(_) => (None, None),
        }
    }

    /// The one service the record is about, for the kinds that name one.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Self::Ismap(IsmapFields { service_name, .. })
            | Self::CsGold(CsMarkFields { service_name, .. })
            | Self::CsSilver(CsMarkFields { service_name, .. })
            | Self::DomesticStorage(DomesticStorageFields { service_name, .. })
            | Self::SharedResponsibility(SharedResponsibilityFields { service_name, .. }) => {
                Some(service_name.as_str())
            }
            _ => None,
        }
    }

    /// The services an ISO/IEC certificate's scope includes (empty for other kinds).
    pub fn covered_services(&self) -> &[String] {
        match self {
            Self::Iso27001(f) | Self::Iso27017(f) | Self::Iso27018(f) => &f.covered_services,
            _ => &[],
        }
    }

    /// The other party of an NDA.
    pub fn counterparty(&self) -> Option<&str> {
        match self {
            Self::Nda(f) => Some(f.counterparty_organisation_id.as_str()),
            _ => None,
        }
    }

    /// Whether an ISMAP registration's renewal is pending (it then stays valid past expiry).
    pub fn renewal_pending(&self) -> bool {
        matches!(self, Self::Ismap(f) if f.renewal_pending)
    }

    /// Every invalid field, named by its path (`tiers[1].manager`, `clauses.leak_liability`),
    /// with the reason in Japanese and English; empty when the record is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checker::default();
        match self {
            Self::Ismap(f) => {
                c.text("registration_number", &f.registration_number);
                c.text("service_name", &f.service_name);
                c.text("provider", &f.provider);
                c.text("scope_statement", &f.scope_statement);
                c.order(
                    REGISTRATION_DATE,
                    f.registration_date,
                    EXPIRY_DATE,
                    f.expiry_date,
                );
            }
            Self::Iso27001(f) | Self::Iso27017(f) | Self::Iso27018(f) => {
                c.text("certificate_number", &f.certificate_number);
                c.text("organisation_name", &f.organisation_name);
                c.text("scope", &f.scope);
                c.list("covered_services", &f.covered_services);
                c.text("edition", &f.edition);
                c.text("certification_body", &f.certification_body);
                c.order(ISSUE_DATE, f.issue_date, EXPIRY_DATE, f.expiry_date);
                if let Some(next) = f.next_surveillance_date {
                    if next < f.issue_date || next > f.expiry_date {
                        c.push(
                            "next_surveillance_date",
                            "次回サーベイランスの日付は発行日から有効期限までの間にしてください",
                            "The next surveillance date must lie between the issue and expiry dates",
                        );
                    }
                }
            }
            Self::CsGold(f) | Self::CsSilver(f) => {
                c.text("licence_number", &f.licence_number);
                c.text("service_name", &f.service_name);
                c.order(ISSUE_DATE, f.issue_date, EXPIRY_DATE, f.expiry_date);
            }
            Self::PrivacyMark(f) => {
                c.text("registration_number", &f.registration_number);
                c.text("organisation_name", &f.organisation_name);
                c.order(VALID_FROM, f.valid_from, VALID_UNTIL, f.valid_until);
            }
            Self::Nda(f) => {
                c.text(
                    "counterparty_organisation_id",
                    &f.counterparty_organisation_id,
                );
                c.order(SIGNED_DATE, f.signed_date, TERM_UNTIL, f.term_until);
                for (name, ja, en, present) in f.clauses.entries() {
                    if !present {
                        c.push(
                            format!("clauses.{name}"),
                            format!("契約に「{ja}」の条項が必要です"),
                            format!("The contract must contain the clause on {en}"),
                        );
                    }
                }
            }
            Self::StructureChart(f) => {
                if f.tiers.is_empty() {
                    c.push("tiers", EMPTY_LIST_JA, EMPTY_LIST_EN);
                }
                for (i, tier) in f.tiers.iter().enumerate() {
                    let at = |field: &str| format!("tiers[{i}].{field}");
                    c.text(at("organisation_name"), &tier.organisation_name);
                    c.text(at("responsible_person"), &tier.responsible_person);
                    c.text(at("manager"), &tier.manager);
                    c.text(at("work_location"), &tier.work_location);
                    if tier.staff_count == 0 {
                        c.push(
                            at("staff_count"),
                            "従事者数は1以上にしてください",
                            "The staff count must be at least 1",
                        );
                    }
                }
            }
            Self::Safeguards(f) => {
                c.text("organisational", &f.organisational);
                c.text("personnel", &f.personnel);
                c.text("physical", &f.physical);
                c.text("technical", &f.technical);
            }
            Self::DomesticStorage(f) => {
                c.text("service_name", &f.service_name);
                c.list("regions", &f.regions);
                if !f.all_in_japan {
                    c.push(
                        "all_in_japan",
                        "データはすべて国内に保管されている必要があります",
                        "All data must be stored in Japan",
                    );
                }
            }
            Self::SharedResponsibility(f) => {
                c.text("service_name", &f.service_name);
                c.text("os_and_middleware", &f.os_and_middleware);
                c.text("network", &f.network);
                c.text("application", &f.application);
                c.text("encryption", &f.encryption);
            }
            Self::NoAccessClause(f) => {
                c.text("contract_clause", &f.contract_clause);
                c.text("access_control", &f.access_control);
            }
            Self::TrainingRecord(f) => {
                c.text("topic", &f.topic);
                if f.attendees == 0 {
                    c.push(
                        "attendees",
                        "受講者数は1以上にしてください",
                        "The number of attendees must be at least 1",
                    );
                }
                c.text("contract", &f.contract);
            }
            Self::InspectionReport(f) => {
                c.list("inspectors", &f.inspectors);
                c.text("findings", &f.findings);
                c.text("corrective_actions", &f.corrective_actions);
            }
            Self::DeletionCertificate(f) => {
                c.text("what", &f.what);
                c.text("method", &f.method);
                c.text("witnessed_by", &f.witnessed_by);
            }
        }
        c.errors
    }
}

/// A date field's path and its names in Japanese and English.
type DateField = (&'static str, &'static str, &'static str);

const REGISTRATION_DATE: DateField = ("registration_date", "登録日", "the registration date");
const ISSUE_DATE: DateField = ("issue_date", "発行日", "the issue date");
const EXPIRY_DATE: DateField = ("expiry_date", "有効期限", "The expiry date");
const VALID_FROM: DateField = ("valid_from", "有効期間の開始日", "the start of validity");
const VALID_UNTIL: DateField = ("valid_until", "有効期間の終了日", "The end of validity");
const SIGNED_DATE: DateField = ("signed_date", "締結日", "the signing date");
const TERM_UNTIL: DateField = ("term_until", "契約期間の終了日", "The end of the term");

const EMPTY_LIST_JA: &str = "1件以上入力してください";
const EMPTY_LIST_EN: &str = "List at least one entry";

/// Collects field errors.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn push(&mut self, field: impl Into<String>, ja: impl Into<String>, en: impl Into<String>) {
        self.errors.push(FieldError::new(field, ja, en));
    }

    /// A required text: not empty or only whitespace.
    fn text(&mut self, field: impl Into<String>, value: &str) {
        if value.trim().is_empty() {
            self.push(field, "入力してください", "This field is required");
        }
    }

    /// A required list: at least one entry, none blank.
    fn list(&mut self, field: &str, values: &[String]) {
        if values.is_empty() {
            self.push(field, EMPTY_LIST_JA, EMPTY_LIST_EN);
        }
        for (i, value) in values.iter().enumerate() {
            self.text(format!("{field}[{i}]"), value);
        }
    }

    /// `until` must not be before `from`; the error is reported on `until`.
    fn order(
        &mut self,
        from: DateField,
        from_date: NaiveDate,
        until: DateField,
        until_date: NaiveDate,
    ) {
        if until_date < from_date {
            self.push(
                until.0,
                format!("{}は{}以降の日付にしてください", until.1, from.1),
                format!("{} must not be before {}", until.2, from.2),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn parse(value: serde_json::Value) -> EvidenceFields {
        serde_json::from_value(value).unwrap()
    }

    fn fields_of(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn ismap() -> serde_json::Value {
        json!({
            "kind": "ismap",
            "registration_number": "C21-0005-2",
            "service_name": "国保情報集約クラウド",
            "provider": "クラウド株式会社",
            "registration_date": "2024-04-01",
            "expiry_date": "2026-07-31",
            "scope_statement": "IaaS",
            "remarks": "更新申請中",
            "renewal_pending": true
        })
    }

    #[test]
    fn kinds_have_snake_case_names_and_labels_in_both_languages() {
        for kind in EvidenceKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, json!(kind.as_str()));
            assert_eq!(EvidenceKind::parse(kind.as_str()), Some(kind));
            assert!(!kind.label_ja().is_empty() && !kind.label_en().is_empty());
        }
        assert_eq!(EvidenceKind::Iso27001.as_str(), "iso27001");
        assert_eq!(EvidenceKind::CsGold.as_str(), "cs_gold");
        assert_eq!(EvidenceKind::parse("iso27000"), None);
        assert_eq!(EvidenceKind::Nda.label().ja, "秘密保持契約");
    }

    #[test]
    fn an_ismap_registration_parses_round_trips_and_is_valid() {
        let fields = parse(ismap());
        assert_eq!(fields.kind(), EvidenceKind::Ismap);
        assert!(fields.validate().is_empty());
        assert_eq!(
            fields.validity(),
            (Some(d(2024, 4, 1)), Some(d(2026, 7, 31)))
        );
        assert_eq!(fields.service_name(), Some("国保情報集約クラウド"));
        assert!(fields.renewal_pending());
        assert_eq!(fields.counterparty(), None);
        assert_eq!(serde_json::to_value(&fields).unwrap(), ismap());
    }

    #[test]
    fn unknown_fields_are_refused_per_kind() {
        let mut value = ismap();
        value["certificate_number"] = json!("X");
        let error = serde_json::from_value::<EvidenceFields>(value).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown field `certificate_number`"),
            "{error}"
        );
        let error =
            serde_json::from_value::<EvidenceFields>(json!({"kind": "iso27000"})).unwrap_err();
        assert!(error.to_string().contains("unknown variant"), "{error}");
    }

    #[test]
    fn every_blank_field_and_wrong_date_order_is_listed_at_once() {
        let fields = parse(json!({
            "kind": "iso27017",
            "certificate_number": " ",
            "covered_services": ["サービスA", ""],
            "issue_date": "2026-01-01",
            "expiry_date": "2025-12-31",
            "next_surveillance_date": "2027-01-01"
        }));
        let errors = fields.validate();
        assert_eq!(
            fields_of(&errors),
            [
                "certificate_number",
                "organisation_name",
                "scope",
                "covered_services[1]",
                "edition",
                "certification_body",
                "expiry_date",
                "next_surveillance_date"
            ]
        );
        let expiry = &errors[6];
        assert_eq!(expiry.reason.ja, "有効期限は発行日以降の日付にしてください");
        assert_eq!(
            expiry.reason.en,
            "The expiry date must not be before the issue date"
        );
    }

    #[test]
    fn an_empty_list_is_refused() {
        let fields = parse(json!({
            "kind": "iso27001", "certificate_number": "IS 123", "organisation_name": "国保中央会",
            "scope": "国保総合システム", "edition": "2022", "certification_body": "BSI",
            "issue_date": "2024-01-01", "expiry_date": "2027-01-01"
        }));
        assert_eq!(fields_of(&fields.validate()), ["covered_services"]);
        assert!(fields.covered_services().is_empty());
    }

    #[test]
    fn an_nda_names_each_missing_clause() {
        let fields = parse(json!({
            "kind": "nda",
            "counterparty_organisation_id": "org-kokuhoren",
            "signed_date": "2026-04-01",
            "term_until": "2027-03-31",
            "clauses": {
                "confidentiality": true, "no_removal_from_premises": true, "purpose_limitation": true,
                "subcontract_conditions": true, "return_or_deletion": true,
                "staff_supervision_and_training": true, "compliance_reports": true
            }
        }));
        let errors = fields.validate();
        assert_eq!(
            fields_of(&errors),
            ["clauses.leak_liability", "clauses.on_site_inspection"]
        );
        assert!(errors[0]
            .reason
            .ja
            .contains("漏えい事案等が発生した場合の委託先の責任"));
        assert!(errors[1].reason.en.contains("on-site inspection"));
        assert_eq!(fields.counterparty(), Some("org-kokuhoren"));
        assert_eq!(
            fields.validity(),
            (Some(d(2026, 4, 1)), Some(d(2027, 3, 31)))
        );
    }

    #[test]
    fn an_nda_with_every_clause_and_its_term_in_order_is_valid() {
        let clauses: serde_json::Map<String, serde_json::Value> = NdaClauses::default()
            .entries()
            .iter()
            .map(|(name, ..)| ((*name).to_owned(), json!(true)))
            .collect();
        let fields = parse(json!({
            "kind": "nda", "counterparty_organisation_id": "org-1",
            "signed_date": "2026-04-01", "term_until": "2026-03-31", "clauses": clauses
        }));
        let errors = fields.validate();
        assert_eq!(fields_of(&errors), ["term_until"]);
        assert_eq!(
            errors[0].reason.ja,
            "契約期間の終了日は締結日以降の日付にしてください"
        );
    }

    #[test]
    fn a_structure_chart_names_the_tier_of_each_invalid_field() {
        let fields = parse(json!({"kind": "structure_chart", "tiers": [
            {"organisation_name": "東京都国民健康保険団体連合会", "responsible_person": "甲",
             "manager": "乙", "staff_count": 12, "work_location": "東京都千代田区"},
            {"organisation_name": "公益社団法人国民健康保険中央会", "responsible_person": "丙",
             "manager": " ", "staff_count": 0, "work_location": "東京都千代田区",
             "supervised_by": "東京都国民健康保険団体連合会"}
        ]}));
        assert_eq!(
            fields_of(&fields.validate()),
            ["tiers[1].manager", "tiers[1].staff_count"]
        );
        assert_eq!(fields.validity(), (None, None));
        let empty = parse(json!({"kind": "structure_chart"}));
        assert_eq!(fields_of(&empty.validate()), ["tiers"]);
    }

    #[test]
    fn domestic_storage_must_be_all_in_japan() {
        let fields = parse(json!({
            "kind": "domestic_storage", "service_name": "国保情報集約クラウド",
            "regions": ["ap-northeast-1", "us-east-1"], "all_in_japan": false
        }));
        let errors = fields.validate();
        assert_eq!(fields_of(&errors), ["all_in_japan"]);
        assert_eq!(errors[0].reason.en, "All data must be stored in Japan");
        let none =
            parse(json!({"kind": "domestic_storage", "service_name": "x", "all_in_japan": true}));
        assert_eq!(fields_of(&none.validate()), ["regions"]);
    }

    #[test]
    fn each_layer_of_the_shared_responsibility_statement_must_be_answered() {
        let fields = parse(json!({
            "kind": "shared_responsibility", "service_name": "国保情報集約クラウド",
            "os_and_middleware": "月次でパッチ適用", "network": "", "application": "WAF",
        }));
        assert_eq!(fields_of(&fields.validate()), ["network", "encryption"]);
        assert_eq!(fields.service_name(), Some("国保情報集約クラウド"));
    }

    #[test]
    fn the_remaining_kinds_validate_their_required_fields() {
        let cases = [
            (
                json!({"kind": "cs_gold", "issue_date": "2025-01-01", "expiry_date": "2024-01-01"}),
                vec!["licence_number", "service_name", "expiry_date"],
            ),
            (
                json!({"kind": "privacy_mark", "registration_number": "10820001(08)",
                    "organisation_name": "国保連", "valid_from": "2025-01-01", "valid_until": "2026-12-31"}),
                vec![],
            ),
            (
                json!({"kind": "safeguards", "organisational": "a", "personnel": "b", "physical": "c"}),
                vec!["technical"],
            ),
            (
                json!({"kind": "no_access_clause", "contract_clause": "第12条"}),
                vec!["access_control"],
            ),
            (
                json!({"kind": "training_record", "date": "2026-06-01", "topic": "マイナンバーの取扱い"}),
                vec!["attendees", "contract"],
            ),
            (
                json!({"kind": "inspection_report", "date": "2026-10-01", "mode": "remote",
                    "inspectors": ["目黒区 担当"], "findings": "なし"}),
                vec!["corrective_actions"],
            ),
            (
                json!({"kind": "deletion_certificate", "date": "2027-04-10", "what": "申請データ",
                    "method": "物理破壊"}),
                vec!["witnessed_by"],
            ),
        ];
        for (value, expected) in cases {
            let fields = parse(value.clone());
            assert_eq!(fields_of(&fields.validate()), expected, "{value}");
        }
    }

    #[test]
    fn yearly_records_are_valid_for_their_fiscal_year_and_a_deletion_from_its_date() {
        let training = parse(json!({"kind": "training_record", "date": "2027-02-10",
            "topic": "t", "attendees": 30, "contract": "c"}));
        assert_eq!(
            training.validity(),
            (Some(d(2027, 2, 10)), Some(d(2027, 3, 31)))
        );
        let inspection = parse(json!({"kind": "inspection_report", "date": "2026-10-01",
            "mode": "on_site", "inspectors": ["a"], "findings": "f", "corrective_actions": "c"}));
        assert_eq!(
            inspection.validity(),
            (Some(d(2026, 10, 1)), Some(d(2027, 3, 31)))
        );
        let deletion = parse(json!({"kind": "deletion_certificate", "date": "2027-04-10",
            "what": "w", "method": "m", "witnessed_by": "x"}));
        assert_eq!(deletion.validity(), (Some(d(2027, 4, 10)), None));
    }

    #[test]
    fn a_missing_date_is_refused_when_parsing() {
        let error = serde_json::from_value::<EvidenceFields>(json!({"kind": "privacy_mark",
            "valid_from": "2025-01-01"}))
        .unwrap_err();
        assert!(
            error.to_string().contains("missing field `valid_until`"),
            "{error}"
        );
    }
}
