//! `GET /deployments`: filters, order, paging.

use chrono::{DateTime, Utc};

use super::*;

/// A deployment created at `seconds` after the Unix epoch.
async fn created_at_second(
    fixture: &Fixture,
    name: &str,
    artifact: &str,
    seconds: i64,
) -> DeploymentId {
    let id = DeploymentId::new();
    let at = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap();
    fixture
        .record(
            &deployment_stream(id),
            vec![created_at(id, name, artifact, &["d1"], at)],
        )
        .await;
    id
}

pub async fn list_filters_by_deployment_status(fixture: Fixture) {
    let pending = deployment(&fixture, "waiting", &["p1"]).await;
    let running = deployment(&fixture, "running", &["r1", "r2"]).await;
    let done = deployment(&fixture, "done", &["f1"]).await;
    on_device(
        &fixture,
        "r1",
        vec![
            joined(running, "r1", Pending),
            changed(running, "r1", Downloading),
        ],
    )
    .await;
    on_device(
        &fixture,
        "f1",
        vec![joined(done, "f1", Pending), changed(done, "f1", Success)],
    )
    .await;
    for (status, expected) in [
        ("pending", pending),
        ("inprogress", running),
        ("finished", done),
    ] {
        let answer = fixture.get(&format!("{DEPLOYMENTS}?status={status}")).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.ids(), vec![expected.to_string()], "status={status}");
        assert_eq!(answer.json[0]["status"], status);
        assert_eq!(answer.header("x-total-count"), "1");
    }
    let all = fixture.get(DEPLOYMENTS).await;
    assert_eq!(all.ids().len(), 3);
    assert_eq!(all.header("x-total-count"), "3");
}

pub async fn list_searches_names_and_artifact_names_ignoring_case(fixture: Fixture) {
    let spring = created_at_second(&fixture, "Spring Rollout", "release-1", 1_000).await;
    let autumn = created_at_second(&fixture, "autumn", "Firmware_X", 2_000).await;
    let full = created_at_second(&fixture, "100% done", "other", 3_000).await;
    let search = |text: &str| format!("{DEPLOYMENTS}?search={text}");
    assert_eq!(
        fixture.get(&search("ROLLOUT")).await.ids(),
        [spring.to_string()]
    );
    assert_eq!(
        fixture.get(&search("firmware_x")).await.ids(),
        [autumn.to_string()]
    );
    // LIKE's wildcards are taken literally.
    assert_eq!(fixture.get(&search("%25")).await.ids(), [full.to_string()]);
    assert_eq!(
        fixture.get(&search("e_1")).await.ids(),
        Vec::<String>::new()
    );
    let both = fixture.get(&search("r")).await;
    assert_eq!(
        both.ids(),
        [full.to_string(), autumn.to_string(), spring.to_string()]
    );
    assert_eq!(both.header("x-total-count"), "3");
}

pub async fn list_filters_by_creation_time_inclusively(fixture: Fixture) {
    let t0 = 1_700_000_000;
    let first = created_at_second(&fixture, "first", "a", t0)
        .await
        .to_string();
    let second = created_at_second(&fixture, "second", "a", t0 + 10)
        .await
        .to_string();
    let third = created_at_second(&fixture, "third", "a", t0 + 20)
        .await
        .to_string();
    let fixture = &fixture;
    let ids =
        |query: String| async move { fixture.get(&format!("{DEPLOYMENTS}?{query}")).await.ids() };
    assert_eq!(
        ids(format!("created_after={}", t0 + 10)).await,
        [third, second.clone()]
    );
    assert_eq!(
        ids(format!("created_before={}", t0 + 10)).await,
        [second.clone(), first]
    );
    assert_eq!(
        ids(format!("created_after={0}&created_before={0}", t0 + 10)).await,
        [second]
    );
    assert_eq!(ids(format!("created_after={}", t0 + 21)).await.len(), 0);
    assert_eq!(ids(format!("created_before={}", t0 - 1)).await.len(), 0);
}

pub async fn list_sorts_newest_first_unless_asked_oldest_first(fixture: Fixture) {
    let mut oldest_first = Vec::new();
    for (n, name) in ["a", "b", "c"].iter().enumerate() {
        oldest_first.push(
            created_at_second(&fixture, name, "x", 5_000 + n as i64)
                .await
                .to_string(),
        );
    }
    let newest_first: Vec<String> = oldest_first.iter().rev().cloned().collect();
    assert_eq!(fixture.get(DEPLOYMENTS).await.ids(), newest_first);
    let sorted = |sort: &str| format!("{DEPLOYMENTS}?sort={sort}");
    assert_eq!(fixture.get(&sorted("desc")).await.ids(), newest_first);
    assert_eq!(fixture.get(&sorted("asc")).await.ids(), oldest_first);
    assert_eq!(fixture.get(&sorted("ASC")).await.ids(), oldest_first);
}

pub async fn list_refuses_bad_paging_and_filters_with_400(fixture: Fixture) {
    deployment(&fixture, "any", &["d1"]).await;
    for (query, message) in [
        ("page=0", "Param page is out of bounds"),
        ("page=-1", "Can't parse param page"),
        ("page=two", "Can't parse param page"),
        ("per_page=0", "Param per_page is out of bounds"),
        ("per_page=501", "Param per_page is out of bounds"),
        ("per_page=ten", "Can't parse param per_page"),
        ("status=aborted", "unknown status aborted"),
        (
            "sort=up",
            "invalid form value: must be one of \"asc\" or \"desc\"",
        ),
        (
            "created_after=yesterday",
            "timestamp parsing failed for created_after parameter: invalid timestamp: yesterday",
        ),
        (
            "created_before=1.5",
            "timestamp parsing failed for created_before parameter: invalid timestamp: 1.5",
        ),
    ] {
        fixture
            .refused(&format!("{DEPLOYMENTS}?{query}"), message)
            .await;
    }
    let widest = fixture
        .get(&format!("{DEPLOYMENTS}?page=1&per_page=500"))
        .await;
    assert_eq!(widest.status, 200);
    assert_eq!(widest.ids().len(), 1);
}

pub async fn list_pages_carry_links_and_the_total(fixture: Fixture) {
    let mut oldest_first = Vec::new();
    for n in 0..5 {
        oldest_first.push(
            created_at_second(&fixture, &format!("rollout {n}"), "x", 9_000 + n)
                .await
                .to_string(),
        );
    }
    created_at_second(&fixture, "unrelated", "y", 9_100).await;
    let page = |number: u32| format!("{DEPLOYMENTS}?search=rollout&per_page=2&page={number}");
    let mut seen = Vec::new();
    for number in 1..=3 {
        let answer = fixture.get(&page(number)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.header("x-total-count"), "5");
        let link = answer.header("link");
        assert!(
            link.contains(&format!(
                "<{DEPLOYMENTS}?page=1&per_page=2&search=rollout>; rel=\"first\""
            )),
            "{link}"
        );
        assert_eq!(link.contains("rel=\"prev\""), number > 1, "{link}");
        assert_eq!(link.contains("rel=\"next\""), number < 3, "{link}");
        if number > 1 {
            assert!(link.contains(&format!(
                "page={}&per_page=2&search=rollout>; rel=\"prev\"",
                number - 1
            )));
        }
        if number < 3 {
            assert!(link.contains(&format!(
                "page={}&per_page=2&search=rollout>; rel=\"next\"",
                number + 1
            )));
        }
        seen.extend(answer.ids());
    }
    let newest_first: Vec<String> = oldest_first.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
    let beyond = fixture.get(&page(4)).await;
    assert_eq!(beyond.ids().len(), 0);
    assert_eq!(beyond.header("x-total-count"), "5");
}
