//! Names of the product's vocabulary that code, definitions and the database share.

pub mod evidence;
pub mod files;
pub mod fiscal;
pub mod numbers;
pub mod obligations;
pub mod policy;

/// Roles a membership or deputyship can carry (see GLOSSARY.md).
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

/// Mail templates that `notify` effects may name.
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
    "permission_suspended_by_cascade",
    "permission_reinstated",
    "obligation_due",
    "obligation_overdue",
    "obligation_escalated",
    "obligation_submitted",
    "obligation_accepted",
    "obligation_returned",
    "daily_digest",
];

/// Recipient groups that `notify` effects may address.
pub const RECIPIENTS: &[&str] = &[
    "submitter",
    "applicant_org",
    "root_consignor",
    "next_actors",
    "post_reviewers",
    "role_holders",
];

/// Whether `role` is one of [`ROLES`].
pub fn is_known_role(role: &str) -> bool {
    ROLES.contains(&role)
}

/// Documents the `write_document` effect may produce.
pub const DOCUMENT_KINDS: &[&str] = &["permission_notice", "rejection_notice"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_recognised_exactly() {
        assert!(is_known_role("chief"));
        assert!(!is_known_role("Chief"));
        assert!(!is_known_role("superuser"));
    }
}
