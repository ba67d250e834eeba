//! The console's buttons over plain HTTP: each posts its form with the session's token, and
//! its effect is read back through the API.

use serde_json::json;

use super::{
    accepted_device, artifacts, client, console_server, create_deployment_of, eventually, get_page,
    plain_upload, post_form, read_deployment, sign_in, Signed,
};
use crate::support::{rootfs_artifact, TestServer};

const DEVICES: &str = "/api/management/v2/devauth/devices";

/// Posts a button's form (the token, and `fields`) to `path`, which goes back to its page
/// saying `done`.
async fn press(
    server: &TestServer,
    signed: &Signed,
    path: &str,
    fields: &[(&str, &str)],
    done: &str,
) {
    let form = [&[("csrf", signed.csrf.as_str())][..], fields].concat();
    let (status, page, headers) = post_form(server, signed, path, &form).await;
    assert_eq!(status, 303, "{path}: {page}");
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.contains(&format!("notice={}", done.replace(' ', "+"))),
        "{path}: {location}"
    );
}

/// Pause, resume and "start the next phase" on a deployment's page.
async fn a_deployment_is_paused_resumed_and_its_next_phase_started(postgres: bool) {
    let server = console_server(postgres, true).await;
    server.upload_rootfs("release-1").await;
    let id = create_deployment_of(
        &server,
        json!({"name": "phased", "artifact_name": "release-1",
            "devices": ["p0", "p1", "p2", "p3"],
            "phases": [{"batch_size": 50}, {"start_ts": "2099-01-01T00:00:00Z"}]}),
    )
    .await;
    let signed = sign_in(&server).await;
    let page = format!("/ui/deployments/{id}");
    let (_, shown, _) = get_page(&server, &signed.cookie, &page).await;
    for action in ["pause", "next-phase", "abort"] {
        assert!(
            shown.contains(&format!(r#"data-action="{action}""#)),
            "{action}: {shown}"
        );
    }

    press(&server, &signed, &format!("{page}/pause"), &[], "Paused").await;
    assert_eq!(read_deployment(&server, &id).await["paused"], true);
    let (_, shown, _) = get_page(&server, &signed.cookie, &page).await;
    assert!(shown.contains(r#"data-action="resume""#), "{shown}");

    press(&server, &signed, &format!("{page}/resume"), &[], "Resumed").await;
    assert_ne!(read_deployment(&server, &id).await["paused"], true);

    press(
        &server,
        &signed,
        &format!("{page}/next-phase"),
        &[],
        "The next phase",
    )
    .await;
    let phases = read_deployment(&server, &id).await["phases"].clone();
    assert!(
        phases[1]["start_ts"].as_str().unwrap() < "2099",
        "the second phase starts now: {phases}"
    );
    // A second time there is no phase left: the API's refusal comes back on the page.
    let (status, _, headers) = post_form(
        &server,
        &signed,
        &format!("{page}/next-phase"),
        &[("csrf", &signed.csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .contains("no+phase+left"),
        "{headers:?}"
    );
}

/// Reject, dismiss, decommission, and removing a device from its group.
async fn devices_are_rejected_dismissed_decommissioned_and_ungrouped(postgres: bool) {
    let server = console_server(postgres, true).await;
    let (rejected, _) = accepted_device(&server, "52:54:00:00:0a:01").await;
    let (grouped, _) = accepted_device(&server, "52:54:00:00:0a:02").await;
    let signed = sign_in(&server).await;

    press(
        &server,
        &signed,
        &format!("/ui/devices/{rejected}/reject"),
        &[("status", "accepted")],
        "Rejected",
    )
    .await;
    let device = eventually(&server, &format!("{DEVICES}/{rejected}"), |device| {
        device["status"] == "rejected"
    })
    .await;
    assert_eq!(device["auth_sets"][0]["status"], "rejected", "{device}");

    press(
        &server,
        &signed,
        &format!("/ui/devices/{rejected}/dismiss"),
        &[("status", "rejected")],
        "Dismissed",
    )
    .await;
    eventually(&server, &format!("{DEVICES}/{rejected}"), |device| {
        device["auth_sets"].as_array().is_some_and(Vec::is_empty)
    })
    .await;

    let group_of = format!("/api/management/v1/inventory/devices/{grouped}/group");
    press(
        &server,
        &signed,
        &format!("/ui/devices/{grouped}/group"),
        &[("group", "lab")],
        "Group set",
    )
    .await;
    assert_eq!(
        server.get(&group_of, Some(&server.admin())).await.1,
        json!({"group": "lab"})
    );
    let (_, shown, _) = get_page(&server, &signed.cookie, &format!("/ui/devices/{grouped}")).await;
    assert!(shown.contains("Remove from lab"), "{shown}");
    press(
        &server,
        &signed,
        &format!("/ui/devices/{grouped}/ungroup"),
        &[("group", "lab")],
        "Removed",
    )
    .await;
    assert_eq!(
        server.get(&group_of, Some(&server.admin())).await.1,
        json!({"group": null})
    );

    press(
        &server,
        &signed,
        &format!("/ui/devices/{grouped}/decommission"),
        &[("status", "accepted")],
        "Decommissioned",
    )
    .await;
    let (status, _) = server
        .get(&format!("{DEVICES}/{grouped}"), Some(&server.admin()))
        .await;
    assert_eq!(status, 404, "a decommissioned device is gone");
}

/// The releases page's form without its script: the token travels as the form's first
/// field (never in the URL), and the upload reaches the API whole.
async fn a_plain_upload_form_sends_its_token_as_a_field(postgres: bool) {
    let server = console_server(postgres, true).await;
    let signed = sign_in(&server).await;
    let (status, page, _) = get_page(&server, &signed.cookie, "/ui/releases").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/ui/releases/upload""#), "{page}");
    assert!(
        !page.contains(&format!("csrf={}", signed.csrf)),
        "a token in a URL"
    );
    let form_start = page.find(r#"id="upload""#).unwrap();
    let form = &page[form_start..];
    assert!(
        form.find(r#"name="csrf""#).unwrap() < form.find(r#"name="artifact""#).unwrap(),
        "the token comes before the file"
    );

    let files = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(files.path(), "plain-form", &["pi"], 64 * 1024);
    let response = client()
        .post(server.url("/ui/releases/upload"))
        .header("cookie", &signed.cookie)
        .multipart(plain_upload(&file, Some(&signed.csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/ui/releases?notice=Uploaded."
    );
    let artifacts = artifacts(&server).await;
    assert_eq!(artifacts[0]["name"], "plain-form", "{artifacts}");
    assert_eq!(
        artifacts[0]["size"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len(),
        "the file arrived whole"
    );
}

configured_on_both_backends!(
    a_deployment_is_paused_resumed_and_its_next_phase_started,
    devices_are_rejected_dismissed_decommissioned_and_ungrouped,
    a_plain_upload_form_sends_its_token_as_a_field
);
