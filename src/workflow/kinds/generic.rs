//! The `generic` kind: a JSON object context, for simple processes with no domain guards.
//! Organisation scopes are read from `context.organisations.<scope>`.

use crate::workflow::registry::Registry;

/// The registry of the `generic` kind.
pub fn registry() -> Registry<serde_json::Value> {
    let mut r = Registry::new("generic");
    r.org_scope("root_consignor").org_scope("applicant");
    r
}
