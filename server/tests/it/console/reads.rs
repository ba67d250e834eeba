//! What the console's pages read over plain HTTP: a deployment at a past moment, the audit
//! feed through the API's filters and cursors, and the live feed's answers when the API
//! cannot follow.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use super::{
    accepted_device, artifacts, ask_for_next, client, console_server, create_deployment, feed,
    get_page, read_deployment, report, sign_in, DEPLOYMENTS,
};
use crate::support::TestServer;

/// The text of the element with `id` in `page`, up to its first tag.
fn text_of<'a>(page: &'a str, id: &str) -> &'a str {
    let marker = format!(r#"id="{id}">"#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {page}"))
        + marker.len();
    page[start..].split('<').next().unwrap()
}

/// The value of `attribute` on the element with `id` in `page`, if it has one.
fn attribute_of<'a>(page: &'a str, id: &str, attribute: &str) -> Option<&'a str> {
    let start = page
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let tag_start = page[..start].rfind('<').unwrap();
    let tag = &page[tag_start..tag_start + page[tag_start..].find('>').unwrap()];
    let marker = format!(r#" {attribute}=""#);
    let value = tag.find(&marker)? + marker.len();
    tag[value..].split('"').next()
}

/// The Position column of the events table, top to bottom.
fn positions(page: &str) -> Vec<u64> {
    let body = &page[page.find("<tbody>").unwrap()..page.find("</tbody>").unwrap()];
    body.split("<tr><td>")
        .skip(1)
        .map(|row| row.split('<').next().unwrap().parse().unwrap())
        .collect()
}

/// The deployment's page as it was when it was created: its device not yet in it, and the
/// slider at the start of its life, which the present read spans.
async fn a_deployment_at_its_creation_shows_its_device_pending(postgres: bool) {
    let server = console_server(postgres, true).await;
    server.upload_rootfs("release-1").await;
    let (device, token) = accepted_device(&server, "52:54:00:00:0b:01").await;
    let id = create_deployment(&server, "then and now", &[&device]).await;
    assert_eq!(ask_for_next(&server, &token).await, 200);
    assert_eq!(report(&server, &token, &id, "downloading").await, 204);
    let signed = sign_in(&server).await;
    let page = format!("/ui/deployments/{id}");
    let (_, now, _) = get_page(&server, &signed.cookie, &page).await;
    assert_eq!(
        (text_of(&now, "in-progress"), text_of(&now, "pending")),
        ("1", "0")
    );
    assert_eq!(attribute_of(&now, "as-of-slider", "value"), Some("100"));

    let deployment = read_deployment(&server, &id).await;
    let created = deployment["created"].as_str().unwrap().to_owned();
    // The moment the log recorded its creation (a few microseconds after the `created` the
    // command stamped it with, which time travel places just before it existed).
    let recorded = feed(&server, "stream=deployments&type=DeploymentCreated")
        .await
        .into_iter()
        .find(|event| event["payload"]["deployment_id"] == id.as_str())
        .unwrap()["occurred_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let then = format!("{page}?as_of={}", recorded.replace('+', "%2B"));
    let (status, past, _) = get_page(&server, &signed.cookie, &then).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(
        (text_of(&past, "in-progress"), text_of(&past, "pending")),
        ("0", "1"),
        "{past}"
    );
    assert_eq!(
        attribute_of(&past, "as-of-slider", "data-from"),
        Some(created.as_str())
    );
    assert_eq!(attribute_of(&past, "as-of-slider", "data-to"), Some(""));

    // Once it has finished, the slider of a past moment spans to its end, which only the
    // present knows.
    let abort = server
        .client
        .put(server.url(&format!("{DEPLOYMENTS}/{id}/status")))
        .bearer_auth(server.admin())
        .json(&json!({"status": "aborted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(abort.status(), 204);
    let deployment = read_deployment(&server, &id).await;
    let finished = deployment["finished"].as_str().unwrap();
    let (_, past, _) = get_page(&server, &signed.cookie, &then).await;
    assert_eq!(
        attribute_of(&past, "as-of-slider", "data-to"),
        Some(finished)
    );
    assert_eq!(text_of(&past, "pending"), "1", "still as it was then");
    // The slider stands where the moment falls in that life, to the nearest percent.
    let time = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
    let (from, to) = (time(&created), time(finished));
    let percent = |at: chrono::DateTime<chrono::FixedOffset>| {
        let span = (to - from).num_milliseconds();
        ((at - from).num_milliseconds() * 100 + span / 2) / span
    };
    assert_eq!(
        attribute_of(&past, "as-of-slider", "value"),
        Some(percent(time(&recorded)).to_string().as_str())
    );
    let middle = from + (to - from) / 2;
    let (status, past, _) = get_page(
        &server,
        &signed.cookie,
        &format!("{page}?as_of={}", middle.to_rfc3339().replace('+', "%2B")),
    )
    .await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(attribute_of(&past, "as-of-slider", "value"), Some("50"));
}

/// Changes an artifact's description `times` times: as many events of one type.
async fn describe_many_times(server: &TestServer, times: usize) {
    let artifact = artifacts(server).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..times {
        let response = server
            .client
            .put(server.url(&format!(
                "/api/management/v1/deployments/artifacts/{artifact}"
            )))
            .bearer_auth(server.admin())
            .json(&json!({"description": format!("take {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
}

/// The events page: the newest events unless a cursor says otherwise, filtered by the API,
/// a next page only where there is one, and the live tail after the newest shown.
async fn the_events_page_shows_the_newest_and_pages_from_a_cursor(postgres: bool) {
    let server = console_server(postgres, true).await;
    server.upload_rootfs("release-1").await;
    // Before any deployment uses the artifact, whose description is then fixed.
    describe_many_times(&server, 55).await;
    create_deployment(&server, "first", &["d1"]).await;
    create_deployment(&server, "second", &["d2"]).await;
    let head = server.head().await.0;
    let signed = sign_in(&server).await;

    let (status, page, _) = get_page(&server, &signed.cookie, "/ui/events").await;
    assert_eq!(status, 200);
    assert!(
        text_of(&page, "window").starts_with("The newest events"),
        "{page}"
    );
    let newest = positions(&page);
    assert_eq!(newest.len(), 50);
    assert_eq!(*newest.last().unwrap(), head);
    assert!(
        newest.windows(2).all(|pair| pair[0] < pair[1]),
        "oldest first"
    );
    assert_eq!(
        attribute_of(&page, "events", "data-after"),
        Some(head.to_string().as_str()),
        "the live tail starts after the newest shown"
    );
    assert!(!page.contains(r#"rel="next""#), "nothing after the newest");
    assert!(page.contains(&format!(r#"href="/ui/events?before={}""#, newest[0])));

    // From the start: a full page, and a next one that reaches the newest and follows it.
    let (_, page, _) = get_page(&server, &signed.cookie, "/ui/events?after=0").await;
    let oldest = positions(&page);
    assert_eq!(oldest.len(), 50);
    assert_eq!(
        attribute_of(&page, "events", "data-after"),
        None,
        "a page short of the newest does not follow the log"
    );
    let next = format!("/ui/events?after={}", oldest[49]);
    assert!(
        page.contains(&format!(r#"rel="next" href="{next}""#)),
        "{page}"
    );
    let (_, page, _) = get_page(&server, &signed.cookie, &next).await;
    let rest = positions(&page);
    assert!(rest[0] > oldest[49] && *rest.last().unwrap() == head);
    assert!(!page.contains(r#"rel="next""#));
    assert_eq!(
        attribute_of(&page, "events", "data-after"),
        Some(head.to_string().as_str())
    );

    // Filters go to the API: a stream's start, and a type; the newest matching are shown,
    // however far back they lie.
    let (_, page, _) = get_page(&server, &signed.cookie, "/ui/events?stream=deploy").await;
    assert_eq!(page.matches("<td>deployments</td>").count(), 2, "{page}");
    assert!(!page.contains("<td>artifacts</td>"), "{page}");
    assert_eq!(
        attribute_of(&page, "events", "data-stream"),
        Some("deploy"),
        "the live tail filters alike"
    );
    let (_, page, _) = get_page(
        &server,
        &signed.cookie,
        "/ui/events?type=DeploymentCreated&after=0",
    )
    .await;
    assert_eq!(positions(&page).len(), 2, "{page}");
    assert_eq!(page.matches("<td>DeploymentCreated</td>").count(), 2);
    let (status, page, _) =
        get_page(&server, &signed.cookie, "/ui/events?type=no%20such%20type").await;
    assert_eq!(status, 200);
    assert!(page.contains("type must be an event type"), "{page}");
}

/// `/ui/live` for a session the API no longer takes is 204 (EventSource then stops); for one
/// it takes, the tail after `?after=`.
async fn the_live_feed_starts_after_a_position_and_ends_with_the_session(postgres: bool) {
    let server = console_server(postgres, true).await;
    let response = client()
        .get(server.url("/ui/live"))
        .header("cookie", "deployments_session=not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    server.upload_rootfs("release-1").await;
    let signed = sign_in(&server).await;
    let response = client()
        .get(server.url("/ui/live?after=0"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), chunks.next())
            .await
            .expect("the events already recorded arrive at once")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first: Value = serde_json::from_str(
        text.lines()
            .find_map(|line| line.strip_prefix("data:"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(first["position"], 1, "{text}");
    assert!(!text.contains("event:"), "events are unnamed: {text}");
}

configured_on_both_backends!(
    a_deployment_at_its_creation_shows_its_device_pending,
    the_events_page_shows_the_newest_and_pages_from_a_cursor,
    the_live_feed_starts_after_a_position_and_ends_with_the_session
);

/// A console whose API cannot be reached (the split query service with the gateway away)
/// answers the live feed with a retry delay and an end, which EventSource reconnects after,
/// rather than an error status, after which it would never reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_asks_the_browser_to_retry_while_the_api_fails() {
    let closed = crate::support::process::free_port();
    let console = console::routes(console::Api::remote(&format!("http://127.0.0.1:{closed}")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, console).await });
    let response = client()
        .get(format!("http://{address}/ui/live"))
        .header("cookie", "deployments_session=any.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the answer ends")
        .unwrap();
    assert_eq!(body, "retry: 5000\n\n");
}
