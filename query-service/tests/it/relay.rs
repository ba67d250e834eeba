//! The AMQP relay against the real RabbitMQ on this machine: a consumer with its own durable
//! queue receives every event of a workload exactly as the log holds it, although the broker's
//! app is stopped and started and the relay is killed along the way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{fresh_urls, workload, Backend};
use events::Position;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use query_service::read_models::ReadModels;
use query_service::relay::{Relay, RelaySettings};

fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn rabbitmqctl(command: &str) {
    let output = std::process::Command::new("rabbitmqctl")
        .arg(command)
        .output()
        .expect("rabbitmqctl is installed beside the broker");
    assert!(
        output.status.success(),
        "rabbitmqctl {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the consumer saw of one message.
#[derive(Debug, Clone)]
struct Received {
    message_id: String,
    stream: String,
    stream_version: i64,
    routing_key: String,
    event_type: String,
}

fn header(headers: &FieldTable, name: &str) -> Option<AMQPValue> {
    headers
        .inner()
        .iter()
        .find(|(key, _)| key.as_str() == name)
        .map(|(_, value)| value.clone())
}

/// Declares the durable topic exchange `name` (as the relay does) and a queue `name` bound to
/// every event on it, before anything is published.
async fn declare_bound_queue(channel: &lapin::Channel, name: &str, durable_queue: bool) {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: durable_queue,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            name.into(),
            name.into(),
            "deployments.v1.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Consumes `queue` until stopped, reconnecting while the broker is away.
async fn consume(queue: String, received: Arc<Mutex<Vec<Received>>>) {
    loop {
        let outcome: Result<(), lapin::Error> = async {
            let connection =
                Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel.basic_qos(500, BasicQosOptions::default()).await?;
            let mut deliveries = channel
                .basic_consume(
                    queue.as_str().into(),
                    "test-consumer".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            while let Some(delivery) = deliveries.next().await {
                let delivery = delivery?;
                let properties = &delivery.properties;
                let headers = properties.headers().clone().unwrap_or_default();
                let stream = match header(&headers, "stream") {
                    Some(AMQPValue::LongString(text)) => text.to_string(),
                    other => panic!("stream header missing: {other:?}"),
                };
                let stream_version = match header(&headers, "stream_version") {
                    Some(AMQPValue::LongLongInt(version)) => version,
                    other => panic!("stream_version header missing: {other:?}"),
                };
                assert!(matches!(
                    header(&headers, "tenant"),
                    Some(AMQPValue::LongString(_))
                ));
                assert!(matches!(
                    header(&headers, "position"),
                    Some(AMQPValue::LongLongInt(_))
                ));
                assert_eq!(
                    properties.content_type().as_ref().map(|t| t.as_str()),
                    Some("application/json")
                );
                assert_eq!(*properties.delivery_mode(), Some(2));
                let envelope: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
                received.lock().unwrap().push(Received {
                    message_id: properties.message_id().as_ref().unwrap().to_string(),
                    stream,
                    stream_version,
                    routing_key: delivery.routing_key.to_string(),
                    event_type: envelope["event_type"].as_str().unwrap().to_owned(),
                });
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            eprintln!("consumer reconnecting: {error}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_arrives_once_deduplicated_in_stream_order_through_broker_restarts() {
    let (log_url, read_url) = fresh_urls(Backend::Postgres).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let settings = RelaySettings {
        amqp_url: Some(amqp_url()),
        exchange: name.clone(),
        window: 100,
        retry_ms: 200,
        tls_root_certificate: None,
    };

    // The consumer's queue exists before anything is published: durable, so it keeps what the
    // broker confirmed across the restart.
    let setup = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = setup.create_channel().await.unwrap();
    declare_bound_queue(&channel, &name, true).await;
    drop(channel);
    drop(setup);

    let received = Arc::new(Mutex::new(Vec::new()));
    let consumer = tokio::spawn(consume(name.clone(), received.clone()));
    let relay = Relay::new(log.clone(), read_models.clone(), settings.clone()).unwrap();
    let mut published = relay.published();
    let first_relay = tokio::spawn(relay.run());

    let first_half = workload(&log, 25, 1).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        published.wait_for(|at| at.0 >= first_half.0 / 2),
    )
    .await
    .expect("the relay publishes")
    .unwrap();
    // The broker goes away in the middle of the stream, and the relay is killed.
    rabbitmqctl("stop_app");
    let during = workload(&log, 10, 2).await;
    first_relay.abort();
    rabbitmqctl("start_app");
    let relay = Relay::new(log.clone(), read_models.clone(), settings).unwrap();
    let mut published = relay.published();
    let second_relay = tokio::spawn(relay.run());
    let head = workload(&log, 15, 3).await;
    assert!(head > during);
    tokio::time::timeout(
        Duration::from_secs(60),
        published.wait_for(|at| *at >= head),
    )
    .await
    .expect("the relay catches up after the broker returns")
    .unwrap();

    let recorded = log.read_all(Position::START, 100_000).await.unwrap();
    let expected: HashSet<String> = recorded
        .iter()
        .map(|event| event.event_id.to_string())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ids: HashSet<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.message_id.clone())
            .collect();
        if ids == expected || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second_relay.abort();
    consumer.abort();

    let received = received.lock().unwrap().clone();
    let mut first_seen: Vec<Received> = Vec::new();
    let mut seen = HashSet::new();
    for message in received {
        if seen.insert(message.message_id.clone()) {
            first_seen.push(message);
        }
    }
    let ids: HashSet<String> = first_seen.iter().map(|r| r.message_id.clone()).collect();
    assert_eq!(ids, expected, "nothing lost, nothing invented");
    // In stream order for every stream.
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    for message in &first_seen {
        versions
            .entry(message.stream.clone())
            .or_default()
            .push(message.stream_version);
    }
    for (stream, order) in versions {
        assert_eq!(
            order,
            (1..=order.len() as i64).collect::<Vec<_>>(),
            "{stream}"
        );
    }
    let by_type: BTreeMap<&str, &str> = first_seen
        .iter()
        .map(|message| (message.event_type.as_str(), message.routing_key.as_str()))
        .collect();
    assert_eq!(
        by_type["DeploymentCreated"],
        "deployments.v1.deployment.created"
    );

    let cleanup = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = cleanup.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(name.as_str().into(), Default::default())
        .await;
}

/// Over TLS: the throwaway amqps-only node of scripts/amqps-test-broker, whose certificate
/// comes from a CA only `relay.tls_root_certificate` names. With it, every event arrives;
/// without it, the broker is refused for its certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_go_to_a_broker_over_tls_that_the_root_certificate_vouches_for() {
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start the TLS broker with eval \"$(scripts/amqps-test-broker)\" (./scripts/test does)")
        })
    };
    let (url, ca) = (
        env("TEST_AMQPS_URL"),
        std::path::PathBuf::from(env("TEST_AMQPS_CA")),
    );
    let refused = query_service::relay::connect(&url, None).await.unwrap_err();
    assert!(
        format!("{refused:#}")
            .to_lowercase()
            .contains("certificate"),
        "{refused:#}"
    );

    let (log_url, read_url) = fresh_urls(Backend::Sqlite).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();
    let name = format!("tls-{}", uuid::Uuid::new_v4().simple());
    let settings = RelaySettings {
        amqp_url: Some(url.clone()),
        exchange: name.clone(),
        window: 100,
        retry_ms: 200,
        tls_root_certificate: Some(ca.clone()),
    };
    let setup = query_service::relay::connect(&url, Some(&ca))
        .await
        .unwrap();
    let channel = setup.create_channel().await.unwrap();
    declare_bound_queue(&channel, &name, false).await;

    let relay = Relay::new(log.clone(), read_models, settings).unwrap();
    let mut published = relay.published();
    let running = tokio::spawn(relay.run());
    let head = workload(&log, 5, 1).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        published.wait_for(|at| *at >= head),
    )
    .await
    .expect("the relay publishes over TLS")
    .unwrap();
    running.abort();
    let queued = channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(u64::from(queued.message_count()), head.0);
}
