//! SQL text the read-model stores and projections share: numbered placeholders, conditions
//! with the values they bind, and `LIKE` patterns.

/// Times in read models: RFC 3339 UTC with microseconds, so text order is time order.
pub fn stored_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `$first, $first+1, …` for `count` bound values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\\` taken literally.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for character in text.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Conditions that follow a query's fixed parameters (`tenant = $1`, …): ` AND …` clauses,
/// each binding the next text value, numbered in the order they are added.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Conditions {
    /// The clauses, each starting with ` AND `.
    pub sql: String,
    /// The values the clauses bind, in placeholder order.
    pub values: Vec<String>,
    /// Parameters the query binds before these.
    fixed: usize,
}

impl Conditions {
    /// Conditions whose values come after the query's `fixed` parameters.
    pub fn after(fixed: usize) -> Self {
        Self {
            fixed,
            ..Self::default()
        }
    }

    /// ` AND condition($n)`, `$n` binding `value`.
    pub fn bind(&mut self, condition: impl FnOnce(usize) -> String, value: String) {
        self.values.push(value);
        let number = self.fixed + self.values.len();
        self.sql.push_str(&format!(" AND {}", condition(number)));
    }

    /// ` AND column IN (…)` over `values`.
    pub fn any_of(&mut self, column: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<String> = values.into_iter().collect();
        let among = placeholders(self.fixed + self.values.len() + 1, values.len());
        self.values.extend(values);
        self.sql.push_str(&format!(" AND {column} IN ({among})"));
    }

    /// ` AND condition`, binding nothing.
    pub fn add(&mut self, condition: &str) {
        self.sql.push_str(&format!(" AND {condition}"));
    }

    /// How many rows of `table` of the tenant these conditions let through (the tenant is
    /// the one fixed parameter).
    pub async fn count(
        &self,
        pool: &sqlx::AnyPool,
        table: &str,
        tenant: &str,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1{}", self.sql);
        let mut count = sqlx::query_scalar(&sql).bind(tenant);
        for value in &self.values {
            count = count.bind(value.as_str());
        }
        count.fetch_one(pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_the_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn conditions_number_their_values_after_the_fixed_parameters() {
        let mut conditions = Conditions::after(2);
        conditions.bind(|n| format!("name = ${n}"), "a".into());
        conditions.add("1 = 0");
        conditions.any_of("status", ["x".to_owned(), "y".to_owned()]);
        assert_eq!(
            conditions.sql,
            " AND name = $3 AND 1 = 0 AND status IN ($4, $5)"
        );
        assert_eq!(conditions.values, ["a", "x", "y"]);
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("Spring_1"), "%spring\\_1%");
        assert_eq!(contains_pattern("50%\\"), "%50\\%\\\\%");
    }
}
