//! Request metrics in Prometheus text format: requests by route, method and status, and
//! latency histograms by route. Recorded by the request middleware into one registry per
//! process; the services append their own gauges when they render it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Latency {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Latency>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// Counts one served request.
pub fn record_request(route: &str, method: &str, status: u16, seconds: f64) {
    let mut registry = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *registry
        .requests
        .entry((route.to_owned(), method.to_owned(), status))
        .or_default() += 1;
    let latency = registry.latency.entry(route.to_owned()).or_default();
    for (bucket, bound) in latency.buckets.iter_mut().zip(BUCKETS) {
        if seconds <= bound {
            *bucket += 1;
        }
    }
    latency.count += 1;
    latency.sum += seconds;
}

/// Escapes a label value for the text format.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The request metrics in Prometheus text format.
pub fn render_requests() -> String {
    let registry = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = String::new();
    text.push_str(
        "# HELP http_requests_total HTTP requests served, by route, method and status.\n",
    );
    text.push_str("# TYPE http_requests_total counter\n");
    for ((route, method, status), count) in &registry.requests {
        let _ = writeln!(
            text,
            "http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
            label(route),
            label(method)
        );
    }
    text.push_str("# HELP http_request_duration_seconds Time to answer a request, by route.\n");
    text.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (route, latency) in &registry.latency {
        let route = label(route);
        for (bound, count) in BUCKETS.iter().zip(latency.buckets) {
            let _ = writeln!(
                text,
                "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            text,
            "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            latency.count
        );
        let _ = writeln!(
            text,
            "http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
            latency.sum
        );
        let _ = writeln!(
            text,
            "http_request_duration_seconds_count{{route=\"{route}\"}} {}",
            latency.count
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_and_bucketed() {
        record_request("/test/route", "GET", 204, 0.003);
        record_request("/test/route", "GET", 204, 0.2);
        record_request("/test/route", "GET", 500, 0.2);
        let text = render_requests();
        assert!(
            text.contains(
                "http_requests_total{route=\"/test/route\",method=\"GET\",status=\"204\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "http_request_duration_seconds_bucket{route=\"/test/route\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("http_request_duration_seconds_bucket{route=\"/test/route\",le=\"0.25\"} 3"));
        assert!(text.contains("http_request_duration_seconds_count{route=\"/test/route\"} 3"));
        assert_eq!(label("a\"b"), "a\\\"b");
    }
}
