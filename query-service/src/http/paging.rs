//! Mender's paging: `page` (from 1) and `per_page` (1 to 500, default 20), read leniently or
//! strictly, with `Link` and `X-Total-Count` headers on the answer.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue};

use crate::error::ApiError;
use crate::read_models::Window;

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub per_page: u64,
}

impl Paging {
    /// Mender's reading for the artifact and release lists: a page below 1 or unreadable is
    /// page 1, and a `per_page` out of range or unreadable is the default.
    pub fn lenient(query: &BTreeMap<String, String>) -> Self {
        let read = |name: &str| query.get(name).and_then(|text| text.parse::<u64>().ok());
        Self {
            page: read("page")
                .filter(|page| (1..=u64::MAX / MAX_PER_PAGE).contains(page))
                .unwrap_or(1),
            per_page: read("per_page")
                .filter(|per_page| (1..=MAX_PER_PAGE).contains(per_page))
                .unwrap_or(DEFAULT_PER_PAGE),
        }
    }

    /// Mender's reading for the deployment lists: a missing or empty parameter takes its
    /// default, anything else must be a number in range (`page` from 1, `per_page` from 1 to
    /// `max_per_page`) or the request is refused with Mender's message.
    pub fn strict(query: &BTreeMap<String, String>, max_per_page: u64) -> Result<Self, ApiError> {
        let read = |name: &str, max: u64, default: u64| -> Result<u64, ApiError> {
            let Some(text) = query.get(name).filter(|text| !text.is_empty()) else {
                return Ok(default);
            };
            // Mender parses these as 32-bit numbers: larger ones are unreadable, not too large.
            let value = text
                .parse::<u32>()
                .map_err(|_| ApiError::BadRequest(format!("Can't parse param {name}")))?;
            if !(1..=max).contains(&u64::from(value)) {
                return Err(ApiError::BadRequest(format!(
                    "Param {name} is out of bounds"
                )));
            }
            Ok(u64::from(value))
        };
        Ok(Self {
            page: read("page", u64::from(u32::MAX), 1)?,
            per_page: read("per_page", max_per_page, DEFAULT_PER_PAGE)?,
        })
    }

    /// The rows of the list this page holds.
    pub fn window(&self) -> Window {
        Window {
            limit: self.per_page as i64,
            offset: ((self.page - 1) * self.per_page) as i64,
        }
    }

    /// `Link` (first, prev, next) and `X-Total-Count`; other query parameters are kept.
    pub fn headers(&self, path: &str, query: &BTreeMap<String, String>, total: u64) -> HeaderMap {
        let link = |page: u64, relation: &str| {
            let mut parameters = query.clone();
            parameters.insert("page".into(), page.to_string());
            parameters.insert("per_page".into(), self.per_page.to_string());
            let query: Vec<String> = parameters
                .iter()
                .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
                .collect();
            format!("<{path}?{}>; rel=\"{relation}\"", query.join("&"))
        };
        let mut links = vec![link(1, "first")];
        if self.page > 1 {
            links.push(link(self.page - 1, "prev"));
        }
        if self.page * self.per_page < total {
            links.push(link(self.page + 1, "next"));
        }
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
            headers.insert("link", value);
        }
        headers.insert("x-total-count", HeaderValue::from(total));
        headers
    }
}

// deviceauth's and inventory's paging (mender-server's rest utils): strict, with messages of
// their own, and a `Link` header line per relation.

/// The query's parameters in order, repeated keys kept.
pub fn parameters(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

pub fn values<'a>(
    parameters: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    parameters
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// deviceauth's paging: `page` from 1, `per_page` from 1 to 500 (default 20), refused with
/// its messages otherwise.
pub fn paging(parameters: &[(String, String)]) -> Result<(i64, i64), ApiError> {
    let read = |name: &str, default: i64| -> Result<i64, ApiError> {
        let Some(text) = values(parameters, name).next() else {
            return Ok(default);
        };
        let value: i64 = text
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid {name} query: \"{text}\"")))?;
        if value < 1 {
            return Err(ApiError::BadRequest(format!(
                "invalid {name} query: value must be a non-zero positive integer"
            )));
        }
        Ok(value)
    };
    let page = read("page", 1)?;
    let per_page = read("per_page", DEFAULT_PER_PAGE as i64)?;
    if per_page > MAX_PER_PAGE as i64 {
        return Err(ApiError::BadRequest(format!(
            "parameter \"per_page\" above limit (max: {MAX_PER_PAGE})"
        )));
    }
    Ok((page, per_page))
}

/// One `Link` header line per relation, as deviceauth and inventory send them: first always,
/// prev past the first page, next when there is more, last when the total is known. The query
/// is re-encoded with its keys sorted.
pub fn links(
    path: &str,
    parameters: &[(String, String)],
    (page, per_page): (i64, i64),
    more: bool,
    total: Option<i64>,
) -> HeaderMap {
    let link = |page: i64, relation: &str| {
        let mut kept: Vec<(&str, String)> = parameters
            .iter()
            .filter(|(name, _)| name != "page" && name != "per_page")
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        kept.push(("page", page.to_string()));
        kept.push(("per_page", per_page.to_string()));
        kept.sort_by(|a, b| a.0.cmp(b.0));
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        format!("<{path}?{query}>; rel=\"{relation}\"")
    };
    let mut relations = vec![link(1, "first")];
    if page > 1 {
        relations.push(link(page - 1, "prev"));
    }
    if more {
        relations.push(link(page + 1, "next"));
    }
    if let Some(total) = total {
        relations.push(link(((total + per_page - 1) / per_page).max(1), "last"));
    }
    let mut headers = HeaderMap::new();
    for relation in relations {
        if let Ok(value) = HeaderValue::from_str(&relation) {
            headers.append("link", value);
        }
    }
    headers
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b':') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lenient_paging_falls_back_to_defaults() {
        let paging = Paging::lenient(&query(&[("page", "-3"), ("per_page", "1000")]));
        assert_eq!(
            paging,
            Paging {
                page: 1,
                per_page: 20
            }
        );
        let paging = Paging::lenient(&query(&[("page", "3"), ("per_page", "abc")]));
        assert_eq!(
            paging,
            Paging {
                page: 3,
                per_page: 20
            }
        );
        assert_eq!(Paging::lenient(&query(&[("per_page", "7")])).per_page, 7);
    }

    #[test]
    fn strict_paging_takes_defaults_for_missing_or_empty_parameters() {
        let paging = Paging::strict(&query(&[("page", "")]), MAX_PER_PAGE).unwrap();
        assert_eq!(
            paging,
            Paging {
                page: 1,
                per_page: 20
            }
        );
        let paging = Paging::strict(&query(&[("page", "4"), ("per_page", "500")]), 500).unwrap();
        assert_eq!(
            paging,
            Paging {
                page: 4,
                per_page: 500
            }
        );
    }

    #[test]
    fn strict_paging_refuses_what_mender_refuses_with_its_messages() {
        let refused = |pairs: &[(&str, &str)], max: u64| match Paging::strict(&query(pairs), max) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{pairs:?} gave {other:?}"),
        };
        assert_eq!(
            refused(&[("page", "0")], 500),
            "Param page is out of bounds"
        );
        assert_eq!(refused(&[("page", "-1")], 500), "Can't parse param page");
        assert_eq!(refused(&[("page", "x")], 500), "Can't parse param page");
        assert_eq!(
            refused(&[("page", "99999999999")], 500),
            "Can't parse param page"
        );
        assert_eq!(
            refused(&[("per_page", "0")], 500),
            "Param per_page is out of bounds"
        );
        assert_eq!(
            refused(&[("per_page", "501")], 500),
            "Param per_page is out of bounds"
        );
        assert_eq!(
            refused(&[("per_page", "21")], 20),
            "Param per_page is out of bounds"
        );
        assert_eq!(
            refused(&[("per_page", "1.5")], 500),
            "Can't parse param per_page"
        );
    }

    #[test]
    fn links_keep_other_parameters_and_say_where_more_is() {
        let q = query(&[("name", "my release"), ("page", "2"), ("per_page", "10")]);
        let paging = Paging::lenient(&q);
        let headers = paging.headers("/x", &q, 35);
        let link = headers["link"].to_str().unwrap();
        assert!(
            link.contains("</x?name=my%20release&page=1&per_page=10>; rel=\"first\""),
            "{link}"
        );
        assert!(link.contains("page=1&per_page=10>; rel=\"prev\""));
        assert!(link.contains("page=3&per_page=10>; rel=\"next\""));
        assert_eq!(headers["x-total-count"], "35");
        let last = Paging {
            page: 4,
            per_page: 10,
        }
        .headers("/x", &q, 35);
        assert!(!last["link"].to_str().unwrap().contains("next"));
    }

    #[test]
    fn paging_refuses_what_deviceauth_refuses() {
        let refused = |query: &str| match paging(&parameters(Some(query))) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{query}: {other:?}"),
        };
        assert_eq!(
            refused("per_page=501"),
            "parameter \"per_page\" above limit (max: 500)"
        );
        assert_eq!(refused("page=x"), "invalid page query: \"x\"");
        assert_eq!(
            refused("page=0"),
            "invalid page query: value must be a non-zero positive integer"
        );
        assert_eq!(paging(&parameters(None)).unwrap(), (1, 20));
        assert_eq!(
            paging(&parameters(Some("page=3&per_page=500"))).unwrap(),
            (3, 500)
        );
    }

    #[test]
    fn each_fleet_link_is_a_line_of_its_own_with_keys_sorted() {
        let parameters = parameters(Some("status=pending&page=2&per_page=1&id=a"));
        let headers = links("/x", &parameters, (2, 1), true, Some(5));
        let lines: Vec<_> = headers
            .get_all("link")
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "</x?id=a&page=1&per_page=1&status=pending>; rel=\"first\"",
                "</x?id=a&page=1&per_page=1&status=pending>; rel=\"prev\"",
                "</x?id=a&page=3&per_page=1&status=pending>; rel=\"next\"",
                "</x?id=a&page=5&per_page=1&status=pending>; rel=\"last\"",
            ]
        );
        let first_page = links("/x", &parameters, (1, 1), false, None);
        assert_eq!(first_page.get_all("link").iter().count(), 1);
    }
}
