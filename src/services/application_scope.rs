//! Which applications and targets a viewer may see, as SQL.
//!
//! The application list and the inbox are filtered, counted, ordered and paged by the database,
//! so a municipality with ten thousand applications loads one page of them, not all. The rule is
//! the one [`super::applications`] applies to a single application: a viewer sees an
//! application when one of its organisations filed it or is the contractor applied for (a
//! *party*), and of its targets those addressed to a municipality where the viewer holds a
//! municipal role and those below a node of one of the viewer's contractor organisations (the
//! intermediate tiers, which endorse it).
//!
//! Tables are aliased `a` (`subcontract_applications`), `t` (`application_targets`) and `i`
//! (`workflow_instances`); the nodes below the viewer's own are the recursive `mine` CTE.

use crate::services::access::Viewer;
pub use crate::services::sql::Sql;

/// The viewer's visibility rule, ready to be written into queries.
#[derive(Debug)]
pub struct Scope<'v> {
    viewer: &'v Viewer,
}

impl<'v> Scope<'v> {
    pub fn new(viewer: &'v Viewer) -> Self {
        Self { viewer }
    }

    fn has_nodes(&self) -> bool {
        !self.viewer.contractor.is_empty()
    }

    /// The `WITH RECURSIVE mine(id)` prefix (the nodes of the viewer's contractor organisations
    /// and every node below them), or nothing when the viewer holds no contractor role.
    pub fn with(&self, sql: &mut Sql) {
        if !self.has_nodes() {
            return;
        }
        sql.push("WITH RECURSIVE mine(id) AS (SELECT id FROM chain_nodes WHERE ")
            .in_list("contractor_id", &self.viewer.contractor)
            .push(" UNION SELECT c.id FROM chain_nodes c JOIN mine ON c.parent_id = mine.id) ");
    }

    /// The viewer is a party to application `a`.
    pub fn party(&self, sql: &mut Sql) {
        sql.push("(")
            .in_list("a.applicant_id", &self.viewer.member)
            .push(" OR ")
            .in_list("a.contractor_id", &self.viewer.member)
            .push(")");
    }

    /// Target `t` is addressed to the viewer's municipality or passes through its nodes.
    fn reaches(&self, sql: &mut Sql) {
        sql.push("(")
            .in_list("t.municipality_id", &self.viewer.municipal);
        if self.has_nodes() {
            sql.push(" OR t.parent_node_id IN (SELECT id FROM mine)");
        }
        sql.push(")");
    }

    /// Target `t` of application `a` is visible to the viewer.
    pub fn target(&self, sql: &mut Sql) {
        sql.push("(");
        self.party(sql);
        sql.push(" OR ");
        self.reaches(sql);
        sql.push(")");
    }

    /// Application `a` is visible to the viewer.
    pub fn application(&self, sql: &mut Sql) {
        sql.push("(");
        self.party(sql);
        sql.push(
            " OR EXISTS (SELECT 1 FROM application_targets t WHERE t.application_id = a.id AND ",
        );
        self.reaches(sql);
        sql.push("))");
    }

    /// Application `a` has a target visible to the viewer that meets `condition` (written
    /// over `t`, `i` and `n`, the target's node).
    pub fn any_target(&self, sql: &mut Sql, condition: impl FnOnce(&mut Sql)) {
        sql.push(
            "EXISTS (SELECT 1 FROM application_targets t \
             JOIN workflow_instances i ON i.id = t.instance_id \
             JOIN chain_nodes n ON n.id = t.node_id \
             WHERE t.application_id = a.id AND ",
        );
        self.target(sql);
        sql.push(" AND ");
        condition(sql);
        sql.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbBackend;

    fn viewer(municipal: &[&str], contractor: &[&str]) -> Viewer {
        let set = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
        Viewer {
            user_id: "u".to_owned(),
            municipal: set(municipal),
            municipal_writer: set(municipal),
            contractor: set(contractor),
            member: municipal
                .iter()
                .chain(contractor)
                .map(|x| (*x).to_owned())
                .collect(),
        }
    }

    #[test]
    fn a_municipal_viewer_needs_no_node_walk() {
        let v = viewer(&["meguro"], &[]);
        let scope = Scope::new(&v);
        let mut sql = Sql::new(DbBackend::Sqlite);
        scope.with(&mut sql);
        scope.application(&mut sql);
        assert!(!sql.text().contains("mine"), "{}", sql.text());
        assert!(
            sql.text().contains("t.municipality_id IN (?)"),
            "{}",
            sql.text()
        );
    }

    #[test]
    fn a_contractor_sees_the_targets_below_its_nodes() {
        let v = viewer(&[], &["kokuhoren"]);
        let scope = Scope::new(&v);
        let mut sql = Sql::new(DbBackend::Postgres);
        scope.with(&mut sql);
        scope.application(&mut sql);
        assert!(
            sql.text().starts_with("WITH RECURSIVE mine(id)"),
            "{}",
            sql.text()
        );
        assert!(sql
            .text()
            .contains("t.parent_node_id IN (SELECT id FROM mine)"));
        assert!(
            sql.text()
                .contains("(1 = 0 OR t.parent_node_id IN (SELECT id FROM mine))"),
            "{}",
            sql.text()
        );
    }
}
