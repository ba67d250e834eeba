//! Two instances of the server over one PostgreSQL, one RabbitMQ and one S3 bucket, with
//! writers on both, and the instance that runs the projections and the relay killed (-9) in
//! the middle: the other takes both over, every acknowledged write is in the log exactly once,
//! the read models say what the log says on either instance, and the broker receives every
//! event at least once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};

use crate::support::process::ServerProcess;
use crate::support::{artifact_form, rootfs_artifact, s3_settings};
use http_edge::auth::TokenKind;

const MANAGEMENT: &str = "/api/management/v1/deployments";
const DEVICE: &str = "/api/devices/v1/deployments/device/deployments";
/// Writers per instance, and deployments each writer creates (one device each, which then
/// asks for it and reports three statuses, each through the instance its turn names).
const WRITERS: usize = 3;
const DEPLOYMENTS_PER_WRITER: usize = 8;

fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A durable queue bound to everything on `exchange`, declared before any instance publishes,
/// and a consumer that records each message's id (the event id) until the test ends.
async fn subscribe(exchange: &str) -> (Arc<Mutex<Vec<String>>>, Connection) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers on TEST_AMQP_URL");
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            exchange.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            exchange.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = channel
        .basic_consume(
            exchange.into(),
            "scale-out-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn({
        let received = received.clone();
        async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let id = delivery.properties.message_id().as_ref().unwrap();
                received.lock().unwrap().push(id.to_string());
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
        }
    });
    (received, connection)
}

/// Where a writer sends its next request: the instance its turn names while the first one
/// lives, the second one after.
#[derive(Clone)]
struct Instances {
    bases: [String; 2],
    first_killed: Arc<AtomicBool>,
}

impl Instances {
    fn pick(&self, turn: usize) -> &str {
        if self.first_killed.load(Ordering::SeqCst) {
            &self.bases[1]
        } else {
            &self.bases[turn % 2]
        }
    }

    /// A read, through the instance the turn names, or the other one if that one was
    /// killed under it; it must succeed.
    async fn read(&self, turn: usize, path: &str, token: &str) -> Value {
        for attempt in 0..2 {
            let base = self.pick(turn + attempt);
            let answered = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await;
            if let Ok(response) = answered {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 200, "GET {path} on {base}: {body}");
                return body;
            }
        }
        panic!("GET {path}: no instance answered");
    }
}

/// What one writer had acknowledged: deployments created (name → id) and, per deployment,
/// the statuses its device reported with a 2xx.
#[derive(Default)]
struct Acknowledged {
    deployments: BTreeMap<String, String>,
    reports: BTreeMap<String, Vec<String>>,
}

/// A request answered by the server, or `None` when the connection failed (the instance was
/// killed under it: the write is neither acknowledged nor refused).
async fn send(request: reqwest::RequestBuilder) -> Option<(u16, Value, Duration)> {
    let started = Instant::now();
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body, started.elapsed()))
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Panics on an answer slower than a command's normal wait: with `read_wait_ms` at a minute,
/// one that waited for projections nobody runs any more shows here.
fn in_time(what: &str, took: Duration) {
    assert!(
        took < Duration::from_secs(15),
        "{what} took {took:?}: it waited for projections nobody ran"
    );
}

async fn writer(
    writer: usize,
    instances: Instances,
    admin: String,
    device_tokens: HashMap<String, String>,
    created: Arc<AtomicUsize>,
) -> Acknowledged {
    let client = reqwest::Client::new();
    let mut acknowledged = Acknowledged::default();
    for n in 0..DEPLOYMENTS_PER_WRITER {
        let name = format!("w{writer}-{n}");
        let device = format!("device-{name}");
        let base = instances.pick(writer + n);
        let started = Instant::now();
        let Ok(response) = client
            .post(format!("{base}{MANAGEMENT}/deployments"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "artifact_name": "release-1", "devices": [device]}))
            .send()
            .await
        else {
            continue;
        };
        assert_eq!(response.status(), 201, "creating {name} on {base}");
        in_time(&format!("creating {name}"), started.elapsed());
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let id = location.rsplit('/').next().unwrap().to_owned();
        created.fetch_add(1, Ordering::SeqCst);
        // Readable at once, on either instance.
        let body = instances
            .read(
                writer + n + 1,
                &format!("{MANAGEMENT}/deployments/{id}"),
                &admin,
            )
            .await;
        assert_eq!(body["name"], name.as_str(), "{body}");
        acknowledged.deployments.insert(name.clone(), id.clone());
        let token = &device_tokens[&device];
        let base = instances.pick(writer + n + 1);
        let Some((status, body, took)) = send(
            client
                .post(format!("{base}{DEVICE}/next"))
                .bearer_auth(token)
                .json(&json!({"artifact_name": "factory", "device_type": "pi"})),
        )
        .await
        else {
            continue;
        };
        assert_eq!(status, 200, "{device} asking on {base}: {body}");
        assert_eq!(body["id"], id.as_str(), "{device} is given its deployment");
        in_time(&format!("{device} asking"), took);
        let mut reported = Vec::new();
        for (turn, report) in ["downloading", "installing", "success"].iter().enumerate() {
            let base = instances.pick(writer + n + turn);
            let Some((status, body, took)) = send(
                client
                    .put(format!("{base}{DEVICE}/{id}/status"))
                    .bearer_auth(token)
                    .json(&json!({"status": report})),
            )
            .await
            else {
                break;
            };
            assert_eq!(status, 204, "{device} reporting {report} on {base}: {body}");
            in_time(&format!("{device} reporting {report}"), took);
            reported.push(report.to_string());
        }
        acknowledged.reports.insert(id, reported);
    }
    acknowledged
}

/// Waits until the instance says every projection and relay has applied the whole log.
async fn caught_up(base: &str) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail: Value = client
            .get(format!("{base}/api/internal/v1/deployments/health/detail"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let behind = |followers: &Value| {
            followers
                .as_object()
                .is_none_or(|all| all.is_empty() || all.values().any(|f| f["lag"] != 0))
        };
        if !behind(&detail["projections"]) && !behind(&detail["relays"]) {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "{base} never caught up with the log: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each deployment's statistics as the log tells them: the last status of each device (none
/// for a deployment whose device never asked).
fn statistics_from_log(log: &[events::RecordedEvent]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut statistics: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    for event in log {
        let payload = &event.payload;
        if event.event_type == "DeploymentCreated" {
            let id = payload["deployment_id"].as_str().unwrap().to_owned();
            statistics.insert(id, BTreeMap::new());
        }
        if matches!(
            event.event_type.as_str(),
            "DeviceJoinedDeployment" | "DeviceDeploymentStatusChanged"
        ) {
            let key = (
                payload["deployment_id"].as_str().unwrap().to_owned(),
                payload["device_id"].as_str().unwrap().to_owned(),
            );
            last.insert(key, payload["status"].as_str().unwrap().to_owned());
        }
    }
    for ((deployment, _), status) in last {
        *statistics
            .entry(deployment)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    statistics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_fail_over_and_lose_or_double_nothing() {
    let url = event_log::conformance::fresh_postgres_url().await;
    let s3 = s3_settings();
    let exchange = format!("test-scale-out-{}", uuid::Uuid::new_v4().simple());
    let (received, amqp) = subscribe(&exchange).await;
    let secret_key = std::env::var("TEST_S3_SECRET_KEY").unwrap();
    let environment = [
        ("DEPLOYMENTS_EVENT_LOG_URL", url.as_str()),
        ("DEPLOYMENTS_READ_MODELS_URL", url.as_str()),
        ("DEPLOYMENTS_STORAGE__BACKEND", "s3"),
        ("DEPLOYMENTS_STORAGE__S3__BUCKET", s3.bucket.as_str()),
        (
            "DEPLOYMENTS_STORAGE__S3__ENDPOINT",
            s3.endpoint.as_deref().unwrap(),
        ),
        (
            "DEPLOYMENTS_STORAGE__S3__ACCESS_KEY_ID",
            s3.access_key_id.as_deref().unwrap(),
        ),
        ("DEPLOYMENTS_STORAGE__S3__SECRET_ACCESS_KEY", &secret_key),
        ("DEPLOYMENTS_STORAGE__S3__FORCE_PATH_STYLE", "true"),
        ("DEPLOYMENTS_STORAGE__S3__CREATE_BUCKET", "true"),
        ("DEPLOYMENTS_RELAY__AMQP_URL", &amqp_url()),
        ("DEPLOYMENTS_RELAY__EXCHANGE", &exchange),
        ("DEPLOYMENTS_RELAY__RETRY_MS", "100"),
        ("DEPLOYMENTS_PROJECTOR__TAKEOVER_INTERVAL_MS", "200"),
        // A command that waited for projections nobody runs would take a minute: the
        // writers' time limit tells it from one served by the instance that took over.
        ("DEPLOYMENTS_READ_WAIT_MS", "60000"),
    ];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // The first instance starts alone, so it is the one that holds the projections and the
    // relay when it is killed.
    let mut first = ServerProcess::start(dirs[0].path(), &environment).await;
    caught_up(&first.base).await;
    let second = ServerProcess::start(dirs[1].path(), &environment).await;
    let admin = first.admin();

    let files = tempfile::tempdir().unwrap();
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    let (status, body, _) = send(
        reqwest::Client::new()
            .post(first.url(&format!("{MANAGEMENT}/artifacts")))
            .bearer_auth(&admin)
            .multipart(artifact_form(&release)),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");

    let instances = Instances {
        bases: [first.base.clone(), second.base.clone()],
        first_killed: Arc::new(AtomicBool::new(false)),
    };
    let created = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2 * WRITERS)
        .map(|w| {
            let tokens = (0..DEPLOYMENTS_PER_WRITER)
                .map(|n| {
                    let device = format!("device-w{w}-{n}");
                    let token = first.token(&device, TokenKind::Device);
                    (device, token)
                })
                .collect();
            tokio::spawn(writer(
                w,
                instances.clone(),
                admin.clone(),
                tokens,
                created.clone(),
            ))
        })
        .collect();

    // A third of the way in, the instance holding the projections and the relay dies.
    let deadline = Instant::now() + Duration::from_secs(120);
    while created.load(Ordering::SeqCst) < 2 * WRITERS * DEPLOYMENTS_PER_WRITER / 3 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    instances.first_killed.store(true, Ordering::SeqCst);
    first.kill();
    let mut acknowledged = Acknowledged::default();
    for writer in writers {
        let done = writer.await.expect("a writer failed");
        acknowledged.deployments.extend(done.deployments);
        acknowledged.reports.extend(done.reports);
    }
    assert!(
        acknowledged.deployments.len() > 2 * WRITERS * DEPLOYMENTS_PER_WRITER / 2,
        "too few writes were acknowledged to tell anything: {}",
        acknowledged.deployments.len()
    );

    // The survivor took the projections and the relay over: it catches up alone.
    caught_up(&second.base).await;
    let log = event_log::open_log(&url, 2).await.unwrap();
    let events = log
        .read_all(events::Position::START, 1_000_000)
        .await
        .unwrap();

    // Nothing acknowledged is missing, and nothing is in the log twice.
    let mut created_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut reports: BTreeMap<(String, String), usize> = BTreeMap::new();
    for event in &events {
        match event.event_type.as_str() {
            "DeploymentCreated" => {
                *created_names
                    .entry(event.payload["name"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            "DeviceDeploymentStatusChanged" => {
                let key = (
                    event.payload["deployment_id"].as_str().unwrap().to_owned(),
                    event.payload["status"].as_str().unwrap().to_owned(),
                );
                *reports.entry(key).or_default() += 1;
            }
            _ => {}
        }
    }
    for (name, count) in &created_names {
        assert_eq!(*count, 1, "{name} was created {count} times in the log");
    }
    for ((deployment, status), count) in &reports {
        assert_eq!(*count, 1, "{deployment}: {status} recorded {count} times");
    }
    for name in acknowledged.deployments.keys() {
        assert!(
            created_names.contains_key(name),
            "{name} was acknowledged but is not in the log"
        );
    }
    for (deployment, statuses) in &acknowledged.reports {
        for status in statuses {
            assert!(
                reports.contains_key(&(deployment.clone(), status.clone())),
                "{deployment}: {status} was acknowledged but is not in the log"
            );
        }
    }

    // The broker received every event of the log, some perhaps twice (the relay's last
    // windows before the kill are sent again by its successor), and nothing else.
    let in_log: BTreeSet<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (distinct, duplicates) = loop {
        let got = received.lock().unwrap().clone();
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        if distinct.len() >= in_log.len() || Instant::now() > deadline {
            let duplicates = got.len() - distinct.len();
            break (distinct, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        distinct.difference(&in_log).count(),
        0,
        "messages for events that are not in the log"
    );
    assert_eq!(
        in_log.difference(&distinct).count(),
        0,
        "events of the log the broker never received ({} of {}; {duplicates} duplicates)",
        in_log.difference(&distinct).count(),
        in_log.len()
    );
    eprintln!(
        "AMQP: {} events, {} messages, {duplicates} duplicates",
        in_log.len(),
        in_log.len() + duplicates
    );

    // The read models say what the log says, on the survivor and on the first instance once
    // it is back.
    first.restart().await;
    let expected = statistics_from_log(&events);
    assert_eq!(expected.len(), created_names.len());
    let client = reqwest::Client::new();
    for base in [&second.base, &first.base] {
        let (status, listed) = get(
            &client,
            &format!("{base}{MANAGEMENT}/deployments?per_page=500"),
            &admin,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            listed.as_array().unwrap().len(),
            created_names.len(),
            "{base}"
        );
        for (deployment, counts) in &expected {
            let (status, statistics) = get(
                &client,
                &format!("{base}{MANAGEMENT}/deployments/{deployment}/statistics"),
                &admin,
            )
            .await;
            assert_eq!(status, 200, "{statistics}");
            for (name, value) in statistics.as_object().unwrap() {
                let wanted = counts.get(name).copied().unwrap_or(0);
                assert_eq!(
                    value.as_u64(),
                    Some(wanted),
                    "{base}: {deployment} {name}: {statistics} (log: {counts:?})"
                );
            }
        }
    }

    // Back, the first instance is a standby: its writes are readable at once on the other.
    let (status, body, took) = send(
        client
            .post(first.url(&format!("{MANAGEMENT}/deployments")))
            .bearer_auth(&admin)
            .json(&json!({"name": "after-the-restart", "artifact_name": "release-1", "devices": ["late"]})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    in_time("a write on the restarted instance", took);
    let (status, listed) = get(
        &client,
        &format!(
            "{}{MANAGEMENT}/deployments?search=after-the-restart",
            second.base
        ),
        &admin,
    )
    .await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(1)));

    let channel = amqp.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(exchange.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}
