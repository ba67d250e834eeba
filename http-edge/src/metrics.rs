//! Metrics through the `metrics` facade, rendered in Prometheus text format by
//! `metrics-exporter-prometheus`: one recorder per process, installed the first time anything
//! is recorded or rendered. The request middleware records every request; each service sets its
//! own gauges (log head, lags, fleet) just before rendering, so a scrape sees them fresh.
//!
//! Every name starts with `deployments_`. Labels are bounded: `route` is the route's pattern
//! (`unmatched` for requests no route took), `method` one of the standard methods or `other`,
//! `status` the status code.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by route, method and status.
pub const REQUESTS: &str = "deployments_http_requests_total";
/// Time to answer a request, by route and method.
pub const LATENCY: &str = "deployments_http_request_duration_seconds";

/// Upper bounds of the latency buckets, in seconds: up to a minute, for uploads and long
/// reads of the past.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// How often recorded latencies are folded into their histograms when nobody scrapes (they
/// are buffered until then).
const UPKEEP: Duration = Duration::from_secs(5);

fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_owned()), &BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // A program embedding these services may have installed a recorder of its own; it
        // then gets the metrics, and /metrics shows none.
        if metrics::set_global_recorder(recorder).is_ok() {
            metrics::describe_counter!(
                REQUESTS,
                "HTTP requests served, by route, method and status."
            );
            metrics::describe_histogram!(
                LATENCY,
                metrics::Unit::Seconds,
                "Time to answer a request, by route and method."
            );
        }
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            });
        handle
    })
}

/// Makes sure the recorder is installed, so that what a service records before its first
/// request is kept.
pub fn install() {
    handle();
}

/// Counts one served request.
pub fn record_request(route: &str, method: &str, status: u16, seconds: f64) {
    install();
    let method = standard_method(method);
    metrics::counter!(REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(LATENCY, "route" => route.to_owned(), "method" => method).record(seconds);
}

fn standard_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Everything recorded in this process, in Prometheus text format.
pub fn render() -> String {
    handle().render()
}

/// Gauges read at scrape time from the server answering it (its log's head, its fleet):
/// appended to the process's recorded metrics rather than set in the process-wide recorder,
/// where another server in the same process (tests run many) would overwrite them between
/// setting and rendering.
#[derive(Default)]
pub struct Scrape {
    text: String,
    described: std::collections::BTreeSet<&'static str>,
}

impl Scrape {
    /// One sample of gauge `name`; `labels` are (name, value) pairs.
    pub fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        use std::fmt::Write;
        if self.described.insert(name) {
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge");
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(label, value)| {
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                format!("{label}=\"{value}\"")
            })
            .collect();
        let labels = match labels.is_empty() {
            true => String::new(),
            false => format!("{{{}}}", labels.join(",")),
        };
        let _ = writeln!(self.text, "{name}{labels} {value}");
    }

    /// Whether the event log answers, and its last position when it does (`head`, from
    /// asking it): every service that reads the log shows both.
    pub fn event_log(&mut self, head: Option<u64>) {
        if let Some(head) = head {
            self.gauge(
                "deployments_event_log_head",
                "The log's last position.",
                &[],
                head as f64,
            );
        }
        self.gauge(
            "deployments_event_log_up",
            "Whether the event log answers.",
            &[],
            if head.is_some() { 1.0 } else { 0.0 },
        );
    }

    /// The process's recorded metrics followed by these gauges.
    pub fn render(self) -> String {
        let mut text = render();
        text.push_str(&self.text);
        text
    }
}

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_and_bucketed_with_bounded_labels() {
        record_request("/test/route", "GET", 204, 0.003);
        record_request("/test/route", "GET", 204, 0.2);
        record_request("/test/route", "GET", 500, 45.0);
        record_request("/test/route", "BREW", 405, 0.001);
        let text = render();
        let line = |prefix: &str| {
            text.lines()
                .find(|line| line.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            line("deployments_http_requests_total{route=\"/test/route\",method=\"GET\",status=\"204\"}"),
            "2"
        );
        assert_eq!(
            line("deployments_http_requests_total{route=\"/test/route\",method=\"other\",status=\"405\"}"),
            "1"
        );
        let bucket = |le: &str| {
            line(&format!(
                "deployments_http_request_duration_seconds_bucket{{route=\"/test/route\",method=\"GET\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.25"), "2");
        assert_eq!(bucket("30"), "2");
        assert_eq!(bucket("60"), "3");
        assert_eq!(bucket("+Inf"), "3");
        assert!(text.contains("# TYPE deployments_http_request_duration_seconds histogram"));
    }
}
