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
}
