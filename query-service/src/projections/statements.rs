//! Multi-row statements for both engines, so that a projection writes many rows in one round
//! trip.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};

type Tx = Transaction<'static, Any>;

/// Parameters per statement: few statements for many rows, and well under either engine's
/// limit of bound parameters (32 766 for SQLite, 65 535 for PostgreSQL).
const PARAMETERS_PER_STATEMENT: usize = 2800;

/// A value bound into a multi-row statement.
pub enum Param {
    Text(Option<String>),
    Int(Option<i64>),
}

impl Param {
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(Some(value.into()))
    }

    fn bind<'q>(self, query: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        match self {
            Self::Text(value) => query.bind(value),
            Self::Int(value) => query.bind(value),
        }
    }
}

/// `count` parameters numbered from `from`: `$from, $from+1, …` on PostgreSQL; on SQLite
/// anonymous `?`s, bound in order, because SQLite looks each numbered name up in a list, which
/// makes binding a statement of n of them take n² steps.
fn placeholders(tx: &Tx, from: usize, count: usize) -> String {
    if tx.backend_name() == "SQLite" {
        return vec!["?"; count].join(", ");
    }
    crate::read_models::sql::placeholders(from, count)
}

/// Runs `{select} WHERE fixed = … AND … AND column IN (…)` over `values`, a statement per
/// chunk.
pub async fn select_in(
    tx: &mut Tx,
    select: &str,
    fixed: &[(&str, &str)],
    (column, values): (&str, &[&str]),
) -> anyhow::Result<Vec<AnyRow>> {
    let mut rows = Vec::new();
    for chunk in values.chunks(PARAMETERS_PER_STATEMENT - fixed.len()) {
        let mut conditions: Vec<String> = Vec::new();
        for (n, (name, _)) in fixed.iter().enumerate() {
            conditions.push(format!("{name} = {}", placeholders(tx, n + 1, 1)));
        }
        let among = placeholders(tx, fixed.len() + 1, chunk.len());
        conditions.push(format!("{column} IN ({among})"));
        let sql = format!("{select} WHERE {}", conditions.join(" AND "));
        let mut query = sqlx::query(&sql);
        for value in fixed.iter().map(|(_, value)| value).chain(chunk) {
            query = query.bind(*value);
        }
        rows.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// Writes `rows` as `{insert} VALUES (…), (…) {conflict}`, a statement per chunk. Each key
/// appears once in `rows`, as an upsert touching a row twice in one statement is an error.
pub async fn insert_rows(
    tx: &mut Tx,
    insert: &str,
    conflict: &str,
    rows: Vec<Vec<Param>>,
) -> anyhow::Result<()> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Param>> = rows
            .by_ref()
            .take((PARAMETERS_PER_STATEMENT / width).max(1))
            .collect();
        let values: Vec<String> = (0..chunk.len())
            .map(|row| format!("({})", placeholders(tx, 1 + row * width, width)))
            .collect();
        let sql = format!("{insert} VALUES {} {conflict}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for param in chunk.into_iter().flatten() {
            query = param.bind(query);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
