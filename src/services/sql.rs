//! Hand-written SQL for the few queries the query builder cannot say (recursive CTEs,
//! `EXISTS` over joins): the text with its parameters, placeholders in the backend's syntax.

use sea_orm::sea_query::{Expr, InsertStatement, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, DbBackend, EntityTrait, Iterable as _,
    Statement, Value,
};

/// The insert of `row`'s set columns into its table, and the `SELECT` of their values it
/// inserts from: an `INSERT … SELECT`, so that the caller can make the insert conditional with
/// a `WHERE` on the select.
pub fn insert_select<A: ActiveModelTrait>(row: &A) -> (InsertStatement, SelectStatement) {
    let (columns, values): (Vec<_>, Vec<_>) = <A::Entity as EntityTrait>::Column::iter()
        .filter_map(|column| match row.get(column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) => {
                Some((column, Expr::val(value)))
            }
            ActiveValue::NotSet => None,
        })
        .unzip();
    let select = Query::select().exprs(values).to_owned();
    let insert = Query::insert()
        .into_table(A::Entity::default())
        .columns(columns)
        .to_owned();
    (insert, select)
}

/// Rows where any of `lists` holds, each `column IN (values)`; none when every list is empty.
/// Only the lists that are not empty are written, so the condition stays one an index can
/// serve: the query builder writes an empty `IN` as a bound `1 = 2`, which the generic plan of
/// a prepared statement cannot drop.
pub fn any_in<C: ColumnTrait>(lists: impl IntoIterator<Item = (C, Vec<String>)>) -> Condition {
    let mut any = Condition::any();
    let mut written = false;
    for (column, values) in lists {
        if !values.is_empty() {
            any = any.add(column.is_in(values));
            written = true;
        }
    }
    if written {
        any
    } else {
        any.add(Expr::cust("1 = 0"))
    }
}

/// SQL text with its parameters, placeholders in the backend's syntax.
#[derive(Debug)]
pub struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text as it is.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let n = self.values.len();
                self.text.push_str(&format!("${n}"));
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// `column IN (…)` over `items`; an empty set matches nothing.
    pub fn in_list<'a>(
        &mut self,
        column: &str,
        items: impl IntoIterator<Item = &'a String>,
    ) -> &mut Self {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return self.push("1 = 0");
        }
        self.push(column).push(" IN (");
        for (ix, item) in items.enumerate() {
            if ix > 0 {
                self.push(", ");
            }
            self.bind(item.clone());
        }
        self.push(")")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_in_writes_only_the_lists_that_are_not_empty() {
        use entity::obligation::{Column, Entity};
        use sea_orm::{EntityTrait, QueryFilter, QueryTrait};
        let sql = |lists: [(Column, Vec<String>); 2]| {
            Entity::find()
                .filter(any_in(lists))
                .build(DbBackend::Postgres)
                .to_string()
        };
        let one = sql([
            (Column::OrganisationId, Vec::new()),
            (Column::MunicipalityId, vec!["meguro".to_owned()]),
        ]);
        assert!(
            one.ends_with(r#"WHERE "obligations"."municipality_id" IN ('meguro')"#),
            "{one}"
        );
        let both = sql([
            (Column::OrganisationId, vec!["kokuhoren".to_owned()]),
            (Column::MunicipalityId, vec!["meguro".to_owned()]),
        ]);
        assert!(
            both.contains(r#""organisation_id" IN ('kokuhoren') OR"#),
            "{both}"
        );
        let none = sql([
            (Column::OrganisationId, Vec::new()),
            (Column::MunicipalityId, Vec::new()),
        ]);
        assert!(none.ends_with("WHERE 1 = 0"), "{none}");
    }

    #[test]
    fn placeholders_follow_the_backend() {
        for (backend, expected) in [
            (DbBackend::Postgres, "x IN ($1, $2) AND y = $3"),
            (DbBackend::Sqlite, "x IN (?, ?) AND y = ?"),
        ] {
            let mut sql = Sql::new(backend);
            let items = ["a".to_owned(), "b".to_owned()];
            sql.in_list("x", &items).push(" AND y = ").bind(3_i64);
            assert_eq!(sql.text, expected);
            assert_eq!(sql.values.len(), 3);
        }
    }

    #[test]
    fn an_empty_set_matches_nothing() {
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.in_list("x", &Vec::<String>::new());
        assert_eq!(sql.text, "1 = 0");
        assert!(sql.values.is_empty());
    }
}
