//! Domain vocabulary shared by every layer.

/// Roles known to the product (per organisation membership).
pub const ROLES: &[&str] = &[
    "admin",
    "officer",
    "chief",
    "manager",
    "contractor",
    "auditor",
    "reviewer",
    "system",
];

/// Mail templates that effects and timers may name.
pub const MAIL_TEMPLATES: &[&str] = &[
    "application_submitted",
    "application_endorsed",
    "application_returned",
    "application_permitted",
    "application_rejected",
    "application_withdrawn",
    "step_waiting",
    "post_review_requested",
    "decision_reminder",
    "decision_escalated",
    "evidence_expiring",
    "evidence_expired",
    "permission_suspended",
    "permission_reinstated",
    "obligation_due",
    "obligation_overdue",
    "obligation_escalated",
    "daily_digest",
];

/// Who a notification effect may address.
pub const RECIPIENTS: &[&str] = &[
    "submitter",
    "applicant_org",
    "root_consignor",
    "next_actors",
    "post_reviewers",
    "role_holders",
];

/// Documents the `write_document` effect may produce.
pub const DOCUMENT_KINDS: &[&str] = &["permission_notice", "rejection_notice"];
