//! The frame every page shares, and the pieces several pages draw. maud escapes every value
//! it interpolates, so names and messages from users and devices show as text.

use axum::http::StatusCode;
use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Devices,
    Releases,
    Deployments,
    Events,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Dashboard, "/ui/", "Dashboard"),
    (Section::Devices, "/ui/devices", "Devices"),
    (Section::Releases, "/ui/releases", "Releases"),
    (Section::Deployments, "/ui/deployments", "Deployments"),
    (Section::Events, "/ui/events", "Events"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Deployments" }
            link rel="stylesheet" href="/ui/assets/console.css";
            script src="/ui/assets/console.js" defer {}
        }
    }
}

/// A page of the signed-in console.
pub fn page(title: &str, section: Section, csrf: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Deployments" }
                    nav aria-label="Sections" {
                        ul {
                            @for (each, href, label) in SECTIONS {
                                li {
                                    @if each == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    span #live-status.live role="status" aria-live="polite" {}
                    a.api-reference href="/ui/api" { "API" }
                    form.sign-out method="post" action="/ui/sign-out" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main #main data-csrf=(csrf) {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A page outside the signed-in frame: sign-in and errors, in a narrow column.
pub fn bare(title: &str, body: &Markup) -> Html<String> {
    outside(title, true, body)
}

/// A public page outside the signed-in frame, as wide as the console's: the API reference,
/// whose tables of parameters a narrow column would break a letter a line.
pub fn public(title: &str, body: &Markup) -> Html<String> {
    outside(title, false, body)
}

fn outside(title: &str, narrow: bool, body: &Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main #main.narrow[narrow] {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

pub fn error_panel(status: StatusCode, message: &str) -> Markup {
    html! {
        p.error role="alert" { (message) }
        p.muted { "Status " (status.as_u16()) ". " a href="/ui/" { "Back to the dashboard" } }
    }
}

/// A message after an action, or nothing.
pub fn notice(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.notice role="status" { (message) }
        }
    }
}

/// A deployment's devices counted as Mender's GUI counts them for its progress bar.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub successes: u64,
    pub failures: u64,
    pub in_progress: u64,
    pub pending: u64,
    pub paused: u64,
}

impl Progress {
    /// From a deployment's `statistics` and its device counts: devices not yet in it count
    /// as pending.
    pub fn of(statistics: &Value, max_devices: u64, device_count: u64) -> Self {
        let count = |names: &[&str]| -> u64 {
            names
                .iter()
                .map(|name| statistics[*name].as_u64().unwrap_or(0))
                .sum()
        };
        Self {
            successes: count(&["success", "already-installed", "noartifact"]),
            failures: count(&["failure", "aborted", "decommissioned"]),
            in_progress: count(&["downloading", "installing", "rebooting"]),
            pending: count(&["pending"]) + max_devices.saturating_sub(device_count),
            paused: count(&[
                "pause_before_installing",
                "pause_before_rebooting",
                "pause_before_committing",
            ]),
        }
    }

    pub fn total(&self) -> u64 {
        self.successes + self.failures + self.in_progress + self.pending + self.paused
    }
}

/// A bar of a deployment's progress, drawn in SVG so its widths need no inline style (the
/// Content-Security-Policy allows none).
pub fn progress_bar(progress: &Progress) -> Markup {
    let total = progress.total().max(1) as f64;
    let segments = [
        ("success", progress.successes),
        ("failure", progress.failures),
        ("in-progress", progress.in_progress),
        ("paused", progress.paused),
    ];
    let mut x = 0.0;
    let rects: Vec<(&str, f64, f64)> = segments
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(class, count)| {
            let width = *count as f64 * 100.0 / total;
            let rect = (*class, x, width);
            x += width;
            rect
        })
        .collect();
    let label = format!(
        "{} succeeded, {} failed, {} in progress, {} paused, {} pending",
        progress.successes,
        progress.failures,
        progress.in_progress,
        progress.paused,
        progress.pending
    );
    html! {
        svg.progress role="img" aria-label=(label) viewBox="0 0 100 4" preserveAspectRatio="none"
            data-successes=(progress.successes) data-failures=(progress.failures)
            data-in-progress=(progress.in_progress) data-pending=(progress.pending) {
            title { (label) }
            rect.pending x="0" y="0" width="100" height="4" {}
            @for (class, x, width) in rects {
                rect class=(class) x=(format!("{x:.3}")) y="0" width=(format!("{width:.3}")) height="4" {}
            }
        }
    }
}

/// Previous and next links of a paged list.
pub fn pager(base: &str, page: u64, per_page: u64, total: u64) -> Markup {
    let last = total.div_ceil(per_page).max(1);
    let join = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 {
                a rel="prev" href=(format!("{base}{join}page={}", page - 1)) { "← Previous" }
            }
            span { "Page " (page) " of " (last) " (" (total) ")" }
            @if page < last {
                a rel="next" href=(format!("{base}{join}page={}", page + 1)) { "Next →" }
            }
        }
    }
}

/// A time as the API gives it (RFC 3339), shortened for a table.
pub fn short_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_counts_as_menders_gui_does() {
        let statistics = json!({"success": 2, "already-installed": 1, "noartifact": 1,
            "failure": 1, "aborted": 1, "decommissioned": 1, "downloading": 1,
            "installing": 1, "rebooting": 1, "pending": 2, "pause_before_installing": 1});
        let progress = Progress::of(&statistics, 20, 15);
        assert_eq!(
            progress,
            Progress {
                successes: 4,
                failures: 3,
                in_progress: 3,
                pending: 7,
                paused: 1
            }
        );
    }

    #[test]
    fn user_text_is_escaped() {
        let markup = notice(Some("<img src=x onerror=alert(1)>"));
        assert!(markup
            .into_string()
            .contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
