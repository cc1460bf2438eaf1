//! Hand-written SQL that Postgres prepares once per connection. Diesel's `sql_query` is never
//! cached (every run pays a Parse and a Describe before its Bind and Execute); a [`Prepared`]
//! statement is cached by its text like the query builder's own statements, so from its
//! second run on a connection it costs one round trip. The hot paths whose SQL diesel's DSL
//! cannot spell (data-modifying CTEs, upserts with a conditional update) use it.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Double, Jsonb, Nullable, Text, Untyped, Uuid as SqlUuid};
use diesel::{QueryResult, result::Error};
use uuid::Uuid;

/// One bound value, with the SQL type it is sent as.
#[derive(Debug, Clone)]
pub enum Bind {
    Uuid(Uuid),
    OptionalUuid(Option<Uuid>),
    Text(String),
    Float(f64),
    Bool(bool),
    Json(serde_json::Value),
}

/// A fixed statement and its binds. The text numbers its parameters `$1`..`$n` as Postgres
/// does; a parameter may appear more than once.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: &'static str,
    binds: Vec<Bind>,
}

impl Prepared {
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            binds: Vec::new(),
        }
    }

    /// Adds the next parameter (`$1` first).
    pub fn bind(mut self, value: Bind) -> Self {
        self.binds.push(value);
        self
    }

    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>, number: usize) -> QueryResult<()> {
        let bind = self.binds.get(number.wrapping_sub(1)).ok_or_else(|| {
            Error::QueryBuilderError(
                format!("${number} has no bound value in: {}", self.sql).into(),
            )
        })?;
        match bind {
            Bind::Uuid(value) => out.push_bind_param::<SqlUuid, _>(value),
            Bind::OptionalUuid(value) => out.push_bind_param::<Nullable<SqlUuid>, _>(value),
            Bind::Text(value) => out.push_bind_param::<Text, _>(value),
            Bind::Float(value) => out.push_bind_param::<Double, _>(value),
            Bind::Bool(value) => out.push_bind_param::<Bool, _>(value),
            Bind::Json(value) => out.push_bind_param::<Jsonb, _>(value),
        }
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Diesel writes its own placeholder for each bind, numbered in the order they are
        // pushed, so the text is passed through up to each `$N` and the bind pushed there.
        // The statements are this crate's own: no `$` appears in a literal.
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let number: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                Error::QueryBuilderError(format!("a `$` without a number in: {}", self.sql).into())
            })?;
            self.push(&mut out, number)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// Not a static id: the statement cache then keys the prepared statement by its text and bind
/// types, which is what makes it reusable across calls.
impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(query: &Prepared) -> String {
        diesel::debug_query::<Pg, _>(query).to_string()
    }

    #[test]
    fn each_parameter_is_bound_where_it_appears() {
        let query = Prepared::new("SELECT $1 + $2, $1")
            .bind(Bind::Float(1.5))
            .bind(Bind::Float(2.0));
        let text = rendered(&query);
        assert!(text.starts_with("SELECT $1 + $2, $3"), "{text}");
        assert!(text.contains("[1.5, 2.0, 1.5]"), "{text}");
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error_not_a_panic() {
        let query = Prepared::new("SELECT $2").bind(Bind::Bool(true));
        let mut sql = String::new();
        let mut builder = <Pg as diesel::backend::Backend>::QueryBuilder::default();
        let error = query.to_sql(&mut builder, &Pg).unwrap_err();
        sql.push_str(&error.to_string());
        assert!(sql.contains("$2 has no bound value"), "{sql}");
    }
}
