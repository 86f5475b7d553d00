//! Who may see what, decided on the server for every object.
//!
//! - A municipality's staff (officer, chief, manager, auditor, admin) see their own consignment
//!   items' chains, the applications addressed to them (only their own decision of a joint one)
//!   and the evidence of every organisation in those chains.
//! - A contractor's users see their organisation's nodes, the nodes directly below them, the
//!   applications their organisation files, endorses or is named in, and the evidence of their
//!   own organisation and of the organisations directly below them. They also see that their
//!   node's ancestors are permitted (BRIEF C5), but no more of those ancestors than that.
//! - Anything else answers 404, as if it did not exist.

use std::collections::BTreeSet;

use crate::workflow::Grant;

/// Roles that act for a municipality (the root consignor) rather than for a contractor.
pub const MUNICIPAL_ROLES: &[&str] = &["admin", "officer", "chief", "manager", "auditor"];

/// Roles that may change a municipality's data (items, classifications, verification).
pub const MUNICIPAL_WRITERS: &[&str] = &["admin", "officer", "chief", "manager"];

/// The organisations a signed-in user acts for today, by capacity.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user_id: String,
    /// Organisations where the user holds a municipal role.
    pub municipal: BTreeSet<String>,
    /// Organisations where the user may change municipal data.
    pub municipal_writer: BTreeSet<String>,
    /// Organisations where the user holds the contractor role.
    pub contractor: BTreeSet<String>,
    /// Every organisation the user holds any role in.
    pub member: BTreeSet<String>,
}

impl Viewer {
    /// The viewer for a user's grants of today.
    pub fn new(user_id: &str, grants: &[Grant]) -> Self {
        let mut v = Self {
            user_id: user_id.to_owned(),
            ..Self::default()
        };
        for g in grants {
            let Some(org) = &g.org else { continue };
            v.member.insert(org.clone());
            if MUNICIPAL_ROLES.contains(&g.role.as_str()) {
                v.municipal.insert(org.clone());
            }
            if MUNICIPAL_WRITERS.contains(&g.role.as_str()) {
                v.municipal_writer.insert(org.clone());
            }
            if g.role == "contractor" {
                v.contractor.insert(org.clone());
            }
        }
        v
    }

    /// Is the user a member (any role) of `org`?
    pub fn is_member(&self, org: &str) -> bool {
        self.member.contains(org)
    }

    /// Does the user act for municipality `org`?
    pub fn is_municipal(&self, org: &str) -> bool {
        self.municipal.contains(org)
    }

    /// May the user change municipality `org`'s data?
    pub fn writes_for(&self, org: &str) -> bool {
        self.municipal_writer.contains(org)
    }

    /// Is the user a contractor user of `org`?
    pub fn is_contractor(&self, org: &str) -> bool {
        self.contractor.contains(org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: &str, org: &str) -> Grant {
        Grant {
            role: role.to_owned(),
            org: Some(org.to_owned()),
        }
    }

    #[test]
    fn capacities_follow_roles() {
        let v = Viewer::new(
            "u",
            &[grant("auditor", "meguro"), grant("contractor", "kokuhoren")],
        );
        assert!(v.is_municipal("meguro"));
        assert!(!v.writes_for("meguro"));
        assert!(v.is_contractor("kokuhoren"));
        assert!(!v.is_municipal("kokuhoren"));
        assert!(v.is_member("kokuhoren") && v.is_member("meguro"));
        assert!(!v.is_member("shinjuku"));
    }
}
