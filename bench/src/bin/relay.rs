//! AMQP relay throughput next to raw lapin publishing the same messages (bodies, properties,
//! routing keys) with the same window (two windows in flight, each confirmed in full), same
//! run, same broker.
//!
//!   cargo run --release -p bench --bin relay -- [events]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{fill, row, seconds};
use events::Position;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use query_service::read_models::ReadModels;
use query_service::relay::{properties, routing_key, Relay, RelaySettings};

const WINDOW: usize = 256;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(50_000), |n| n.parse())?;
    let amqp = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let url = event_log::conformance::fresh_postgres_url().await;
    let log = event_log::open_log(&url, 10).await?;
    fill(&log, count).await?;
    let recorded = log.read_all(Position::START, count).await?;
    // The relay's messages exactly: the same bodies, properties and routing keys.
    let messages: Vec<(Vec<u8>, BasicProperties, String)> = recorded
        .iter()
        .map(|event| {
            Ok((
                serde_json::to_vec(event)?,
                properties(event),
                routing_key(&event.event_type),
            ))
        })
        .collect::<anyhow::Result<_>>()?;

    // The limit: lapin alone publishing the same bodies, WINDOW in flight, every one confirmed.
    let exchange = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    let connection = Connection::connect(&amqp, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    let mut in_flight = None;
    for window in messages.chunks(WINDOW) {
        let mut confirms = Vec::with_capacity(window.len());
        for (payload, properties, routing_key) in window {
            confirms.push(
                channel
                    .basic_publish(
                        exchange.as_str().into(),
                        routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties.clone(),
                    )
                    .await?,
            );
        }
        // Two windows in flight, as the relay keeps them.
        if let Some(previous) = in_flight.replace(confirms) {
            for confirm in previous {
                anyhow::ensure!(confirm.await?.is_ack(), "raw publish refused");
            }
        }
    }
    for confirm in in_flight.into_iter().flatten() {
        anyhow::ensure!(confirm.await?.is_ack(), "raw publish refused");
    }
    let raw = seconds(start);
    channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await?;

    // Ours: the relay from its checkpoint at 0 to the head.
    let read_models = ReadModels::connect(&url, 4).await?;
    let settings = RelaySettings {
        amqp_url: Some(amqp),
        exchange: format!("bench-relay-{}", uuid::Uuid::new_v4().simple()),
        window: WINDOW,
        retry_ms: 100,
        ..RelaySettings::default()
    };
    let relay = Relay::new(Arc::clone(&log), read_models, settings)
        .ok_or_else(|| anyhow::anyhow!("no broker"))?;
    let mut published = relay.published();
    let head = log.head().await?;
    let start = Instant::now();
    let task = tokio::spawn(relay.run());
    tokio::time::timeout(
        Duration::from_secs(600),
        published.wait_for(|at| *at >= head),
    )
    .await??;
    let ours = seconds(start);
    task.abort();

    let rate = |s: f64| count as f64 / s;
    println!(
        "{}",
        row(
            &format!("AMQP relay, {count} events, window {WINDOW}"),
            format!("{:.0} msg/s", rate(ours)),
            format!("raw lapin, same window: {:.0} msg/s", rate(raw)),
            rate(ours) / rate(raw),
            "target ≥ 0.8×"
        )
    );
    Ok(())
}
