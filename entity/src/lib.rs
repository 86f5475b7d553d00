//! sea-orm entities (generated shape; no business logic; behaviour lives in `itaku::services`).
//! Timestamps are `DateTimeUtc` everywhere: SQLite stores them as RFC 3339 text with a `+00:00`
//! offset, so text order is time order, and PostgreSQL as `timestamptz`.

pub mod admin_event;
pub mod application_sequence;
pub mod application_target;
pub mod audit_anchor;
pub mod audit_anchor_head;
pub mod audit_record;
pub mod chain_node;
pub mod chart_version;
pub mod committee_submission;
pub mod consignment_item;
pub mod deputy;
pub mod document_event;
pub mod document_setting;
pub mod evidence_file;
pub mod evidence_record;
pub mod file;
pub mod ismap_entry;
pub mod ismap_import;
pub mod mail_digest_item;
pub mod membership;
pub mod obligation;
pub mod obligation_event;
pub mod organisation;
pub mod outbox;
pub mod pia_assessment;
pub mod pia_file;
pub mod revoked_token;
pub mod subcontract_application;
pub mod timer;
pub mod user;
pub mod workflow_definition;
pub mod workflow_instance;

/// The entities under their conventional names.
pub mod prelude {
    pub use super::admin_event::Entity as AdminEvent;
    pub use super::application_sequence::Entity as ApplicationSequence;
    pub use super::application_target::Entity as ApplicationTarget;
    pub use super::audit_anchor::Entity as AuditAnchor;
    pub use super::audit_anchor_head::Entity as AuditAnchorHead;
    pub use super::audit_record::Entity as AuditRecord;
    pub use super::chain_node::Entity as ChainNode;
    pub use super::chart_version::Entity as ChartVersion;
    pub use super::committee_submission::Entity as CommitteeSubmission;
    pub use super::consignment_item::Entity as ConsignmentItem;
    pub use super::deputy::Entity as Deputy;
    pub use super::document_event::Entity as DocumentEvent;
    pub use super::document_setting::Entity as DocumentSetting;
    pub use super::evidence_file::Entity as EvidenceFile;
    pub use super::evidence_record::Entity as EvidenceRecord;
    pub use super::file::Entity as File;
    pub use super::ismap_entry::Entity as IsmapEntry;
    pub use super::ismap_import::Entity as IsmapImport;
    pub use super::mail_digest_item::Entity as MailDigestItem;
    pub use super::membership::Entity as Membership;
    pub use super::obligation::Entity as Obligation;
    pub use super::obligation_event::Entity as ObligationEvent;
    pub use super::organisation::Entity as Organisation;
    pub use super::outbox::Entity as Outbox;
    pub use super::pia_assessment::Entity as PiaAssessment;
    pub use super::pia_file::Entity as PiaFile;
    pub use super::revoked_token::Entity as RevokedToken;
    pub use super::subcontract_application::Entity as SubcontractApplication;
    pub use super::timer::Entity as Timer;
    pub use super::user::Entity as User;
    pub use super::workflow_definition::Entity as WorkflowDefinition;
    pub use super::workflow_instance::Entity as WorkflowInstance;
}
