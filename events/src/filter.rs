//! Inventory filter predicates (`{"scope", "attribute", "type", "value"}`), as Mender's
//! inventory search takes them: parsed and checked once, then matched against a device's
//! attributes. Pure, so the query side's search and the write side's targeting decide alike.
//!
//! Matching follows the document-store semantics Mender's clients expect: an array attribute
//! matches when any of its elements does; `$ne` and `$nin` also match devices without the
//! attribute; comparisons hold only between two numbers or two strings (times are RFC 3339
//! text, which orders as time does).

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

/// The comparison a predicate makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Exists,
    Regex,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Self::Eq => "$eq",
            Self::Ne => "$ne",
            Self::Gt => "$gt",
            Self::Gte => "$gte",
            Self::Lt => "$lt",
            Self::Lte => "$lte",
            Self::In => "$in",
            Self::Nin => "$nin",
            Self::Exists => "$exists",
            Self::Regex => "$regex",
        }
    }

    fn parse(name: &str) -> Result<Self, FilterError> {
        Ok(match name {
            "$eq" => Self::Eq,
            "$ne" => Self::Ne,
            "$gt" => Self::Gt,
            "$gte" => Self::Gte,
            "$lt" => Self::Lt,
            "$lte" => Self::Lte,
            "$in" => Self::In,
            "$nin" => Self::Nin,
            "$exists" => Self::Exists,
            "$regex" => Self::Regex,
            // In Mender's API description, but its store knows no such operator and refuses
            // the query; so do we, with a message that says so.
            "$ltne" => {
                return Err(FilterError(
                    "type: $ltne is not an operator the search can run".into(),
                ))
            }
            other => return Err(FilterError(format!("type: unknown operator {other:?}"))),
        })
    }
}

/// A predicate that cannot be run, with a message for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// A predicate as a client writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPredicate {
    pub scope: Option<String>,
    pub attribute: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<Value>,
}

/// A checked predicate, ready to match.
#[derive(Debug, Clone)]
pub struct Predicate {
    pub scope: String,
    pub attribute: String,
    pub operator: Operator,
    pub value: Value,
    /// The operator as written (`$eq`, ...).
    kind: &'static str,
    regex: Option<regex::Regex>,
}

fn required<'a, T>(field: &'a Option<T>, name: &str) -> Result<&'a T, FilterError> {
    field
        .as_ref()
        .ok_or_else(|| FilterError(format!("{name}: cannot be blank")))
}

impl Predicate {
    /// Checks a predicate: every field present, the value of the kind its operator takes.
    pub fn parse(raw: &RawPredicate) -> Result<Self, FilterError> {
        let scope = required(&raw.scope, "scope")?;
        let attribute = required(&raw.attribute, "attribute")?;
        let operator = Operator::parse(required(&raw.kind, "type")?)?;
        let value = required(&raw.value, "value")?.clone();
        if scope.is_empty() || attribute.is_empty() {
            return Err(FilterError("scope and attribute: cannot be blank".into()));
        }
        let regex = match (operator, &value) {
            (Operator::Exists, Value::Bool(_)) => None,
            (Operator::Exists, _) => {
                return Err(FilterError("value: $exists takes true or false".into()))
            }
            (Operator::In | Operator::Nin, Value::Array(items)) if items.iter().all(is_scalar) => {
                None
            }
            (Operator::In | Operator::Nin, _) => {
                return Err(FilterError(
                    "value: $in and $nin take an array of strings and numbers".into(),
                ))
            }
            (Operator::Regex, Value::String(pattern)) => Some(compile(pattern)?),
            (Operator::Regex, _) => return Err(FilterError("value: $regex takes a string".into())),
            (Operator::Eq | Operator::Ne, value) if is_scalar(value) || value.is_array() => None,
            (_, value) if is_scalar(value) => None,
            _ => {
                return Err(FilterError(
                    "value: must be a string or a number for this operator".into(),
                ))
            }
        };
        Ok(Self {
            scope: scope.clone(),
            attribute: attribute.clone(),
            operator,
            value,
            kind: operator.name(),
            regex,
        })
    }

    /// A predicate from a saved filter's term.
    pub fn from_term(term: &crate::inventory::FilterTerm) -> Result<Self, FilterError> {
        Self::parse(&RawPredicate {
            scope: Some(term.scope.clone()),
            attribute: Some(term.attribute.clone()),
            kind: Some(term.kind.clone()),
            value: Some(term.value.clone()),
        })
    }

    /// The term a saved filter stores for this predicate.
    pub fn term(&self) -> crate::inventory::FilterTerm {
        crate::inventory::FilterTerm {
            scope: self.scope.clone(),
            attribute: self.attribute.clone(),
            kind: self.kind.to_owned(),
            value: self.value.clone(),
        }
    }

    /// Whether a device matches, given its attribute values by (scope, name).
    pub fn matches(&self, attribute: Option<&Value>) -> bool {
        let elements = |value: &'_ Value| -> Vec<Value> {
            match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            }
        };
        match (self.operator, attribute) {
            (Operator::Exists, found) => Some(&Value::Bool(found.is_some())) == Some(&self.value),
            (Operator::Ne, None) | (Operator::Nin, None) => true,
            (_, None) => false,
            (Operator::Eq, Some(found)) => equal(found, &self.value),
            (Operator::Ne, Some(found)) => !equal(found, &self.value),
            (Operator::In, Some(found)) => self.listed(found),
            (Operator::Nin, Some(found)) => !self.listed(found),
            (Operator::Regex, Some(found)) => elements(found).iter().any(|element| {
                element.as_str().is_some_and(|text| {
                    self.regex
                        .as_ref()
                        .is_some_and(|regex| regex.is_match(text))
                })
            }),
            (operator, Some(found)) => elements(found).iter().any(|element| {
                compare(element, &self.value).is_some_and(|ordering| match operator {
                    Operator::Gt => ordering == Ordering::Greater,
                    Operator::Gte => ordering != Ordering::Less,
                    Operator::Lt => ordering == Ordering::Less,
                    Operator::Lte => ordering != Ordering::Greater,
                    _ => false,
                })
            }),
        }
    }

    fn listed(&self, found: &Value) -> bool {
        let Value::Array(listed) = &self.value else {
            return false;
        };
        listed.iter().any(|item| equal(found, item))
    }
}

fn is_scalar(value: &Value) -> bool {
    value.is_string() || value.is_number()
}

/// Equal as the store compares: the same value, or an element of an array attribute.
fn equal(found: &Value, wanted: &Value) -> bool {
    if same(found, wanted) {
        return true;
    }
    match found {
        Value::Array(items) => items.iter().any(|item| same(item, wanted)),
        _ => false,
    }
}

/// Numbers compare by value (2 and 2.0 are equal), everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A pattern, plain or written `/pattern/flags` with the flags `i`, `m`, `s` and `x`.
fn compile(pattern: &str) -> Result<regex::Regex, FilterError> {
    let (body, flags) = match pattern
        .strip_prefix('/')
        .and_then(|rest| rest.rsplit_once('/'))
    {
        Some((body, flags)) if flags.chars().all(|flag| "imsx".contains(flag)) => (body, flags),
        _ => (pattern, ""),
    };
    let mut builder = regex::RegexBuilder::new(body);
    builder
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'))
        .ignore_whitespace(flags.contains('x'))
        // A pattern is a client's input: bound what compiling it may take.
        .size_limit(1 << 20);
    builder
        .build()
        .map_err(|error| FilterError(format!("value: not a valid regular expression: {error}")))
}

/// Every predicate of a filter must match (they are ANDed).
pub fn all_match<'a>(
    predicates: &[Predicate],
    attribute: impl Fn(&str, &str) -> Option<&'a Value>,
) -> bool {
    predicates
        .iter()
        .all(|predicate| predicate.matches(attribute(&predicate.scope, &predicate.attribute)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn predicate(kind: &str, value: Value) -> Result<Predicate, FilterError> {
        Predicate::parse(&RawPredicate {
            scope: Some("inventory".into()),
            attribute: Some("a".into()),
            kind: Some(kind.into()),
            value: Some(value),
        })
    }

    fn check(kind: &str, value: Value, attribute: Option<Value>) -> bool {
        predicate(kind, value).unwrap().matches(attribute.as_ref())
    }

    #[test]
    fn equality_reaches_into_arrays_and_numbers_compare_by_value() {
        assert!(check("$eq", json!("rpi4"), Some(json!(["rpi3", "rpi4"]))));
        assert!(!check("$eq", json!("rpi5"), Some(json!(["rpi3", "rpi4"]))));
        assert!(check("$eq", json!(2), Some(json!(2.0))));
        assert!(!check("$eq", json!("2"), Some(json!(2))));
        assert!(check("$ne", json!("x"), None), "absent is not equal");
        assert!(!check("$ne", json!("rpi4"), Some(json!(["rpi4"]))));
    }

    #[test]
    fn orderings_hold_only_between_values_of_one_kind() {
        assert!(check("$gt", json!(10), Some(json!(11))));
        assert!(!check("$gt", json!(10), Some(json!(10))));
        assert!(check("$gte", json!(10), Some(json!(10))));
        assert!(check("$lt", json!("b"), Some(json!("a"))));
        assert!(check("$lte", json!(1), Some(json!([5, 1]))));
        assert!(
            !check("$gt", json!(1), Some(json!("2"))),
            "string against number"
        );
        assert!(!check("$lt", json!(1), None));
    }

    #[test]
    fn membership_existence_and_patterns() {
        assert!(check("$in", json!(["a", "b"]), Some(json!("b"))));
        assert!(!check("$in", json!(["a", "b"]), Some(json!("c"))));
        assert!(check("$nin", json!(["a"]), Some(json!("c"))));
        assert!(check("$nin", json!(["a"]), None));
        assert!(check("$exists", json!(true), Some(json!(""))));
        assert!(check("$exists", json!(false), None));
        assert!(!check("$exists", json!(true), None));
        assert!(check("$regex", json!("^fw-2\\."), Some(json!("fw-2.3"))));
        assert!(!check("$regex", json!("^fw-2\\."), Some(json!("fw-3.0"))));
        assert!(check("$regex", json!("/^FW/i"), Some(json!("fw-3.0"))));
    }

    #[test]
    fn bad_predicates_are_refused_with_the_field() {
        for (kind, value, field) in [
            ("$exists", json!("yes"), "value"),
            ("$in", json!("a"), "value"),
            ("$regex", json!("(unclosed"), "value"),
            ("$gt", json!([1]), "value"),
            ("$like", json!("a"), "type"),
            ("$ltne", json!(1), "type"),
        ] {
            let error = predicate(kind, value).unwrap_err();
            assert!(error.0.starts_with(field), "{kind}: {error}");
        }
        let missing = Predicate::parse(&RawPredicate {
            scope: Some("inventory".into()),
            attribute: None,
            kind: Some("$eq".into()),
            value: Some(json!(1)),
        });
        assert!(missing.unwrap_err().0.starts_with("attribute"));
    }
}
