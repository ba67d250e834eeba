//! The AMQP relay: publishes every event of the log, in order, to a durable topic exchange
//! for other services.
//!
//! At least once: a batch is published with publisher confirms, and the relay's checkpoint
//! moves only once the broker confirmed all of it. A nack, a lost connection or a crash
//! publishes the unconfirmed part again after reconnecting, so consumers deduplicate by
//! `message_id` (the event id). One instance relays at a time (the same database lock the
//! projectors use); the others wait to take over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_log::{EventLog, Subscription};
use events::{Position, RecordedEvent};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::read_models::ReadModels;

/// Relay settings; the relay runs only when `amqp_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// The broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`; unset, nothing is published.
    pub amqp_url: Option<String>,
    /// The durable topic exchange events are published to.
    pub exchange: String,
    /// Events published per window; the relay keeps two windows in flight, and moves its
    /// checkpoint past a window once the broker has confirmed all of it.
    pub window: usize,
    /// Pause before reconnecting after a failure, in milliseconds (doubling up to 30 s).
    pub retry_ms: u64,
    /// PEM file of the root certificate(s) an `amqps://` broker's certificate must chain to,
    /// instead of the system's trusted roots.
    pub tls_root_certificate: Option<std::path::PathBuf>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            amqp_url: None,
            exchange: "deployments.events".to_owned(),
            window: 256,
            retry_ms: 500,
            tls_root_certificate: None,
        }
    }
}

const RELAY: &str = "amqp";

/// Connects to the broker at `url`; over `amqps://`, trusting the certificates in
/// `root_certificate` when given (read at each connection, so a renewed CA file is used at the
/// next reconnection), else the system's roots.
pub async fn connect(url: &str, root_certificate: Option<&Path>) -> anyhow::Result<Connection> {
    let Some(file) = root_certificate else {
        return Ok(Connection::connect(url, ConnectionProperties::default()).await?);
    };
    let roots = std::fs::read_to_string(file)
        .with_context(|| format!("reading relay.tls_root_certificate {}", file.display()))?;
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(roots),
    };
    Ok(Connection::connect_with_config(
        url,
        ConnectionProperties::default(),
        tls,
        lapin::runtime::default_runtime()?,
    )
    .await?)
}

/// `deployments.v1.<aggregate>.<event>`: `DeviceDeploymentStatusChanged` is
/// `deployments.v1.device.deployment_status_changed`.
pub fn routing_key(event_type: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for character in event_type.chars() {
        if character.is_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        if let Some(word) = words.last_mut() {
            word.extend(character.to_lowercase());
        }
    }
    let aggregate = words.first().cloned().unwrap_or_default();
    let event = words.get(1..).unwrap_or_default().join("_");
    format!("deployments.v1.{aggregate}.{event}")
}

/// The AMQP properties of an event's message: its id, type, time and where it sits in the log.
pub fn properties(event: &RecordedEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "tenant".into(),
        AMQPValue::LongString(LongString::from(event.tenant.0.clone())),
    );
    headers.insert(
        "stream".into(),
        AMQPValue::LongString(LongString::from(event.stream.0.clone())),
    );
    headers.insert(
        "stream_version".into(),
        AMQPValue::LongLongInt(event.stream_version as i64),
    );
    headers.insert(
        "position".into(),
        AMQPValue::LongLongInt(event.position.0 as i64),
    );
    headers.insert(
        "schema_version".into(),
        AMQPValue::LongLongInt(i64::from(event.schema_version)),
    );
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        // 2: persistent, so a broker restart keeps what it confirmed.
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(event.event_id.to_string()))
        .with_type(ShortString::from(event.event_type.clone()))
        .with_timestamp(event.metadata.occurred_at.timestamp().max(0) as u64)
        .with_headers(headers)
}

pub struct Relay {
    log: Arc<dyn EventLog>,
    read_models: ReadModels,
    settings: RelaySettings,
    url: String,
    published: watch::Sender<Position>,
}

impl Relay {
    /// `None` when no broker is configured.
    pub fn new(
        log: Arc<dyn EventLog>,
        read_models: ReadModels,
        settings: RelaySettings,
    ) -> Option<Self> {
        let url = settings.amqp_url.clone()?;
        Some(Self {
            log,
            read_models,
            settings,
            url,
            published: watch::channel(Position::START).0,
        })
    }

    /// The position up to which the broker has confirmed every event.
    pub fn published(&self) -> watch::Receiver<Position> {
        self.published.subscribe()
    }

    /// Relays until the task is dropped, reconnecting with backoff after any failure.
    pub async fn run(self) {
        let first = Duration::from_millis(self.settings.retry_ms.max(1));
        let mut pause = first;
        loop {
            let lock = match self
                .read_models
                .lock_projection("relay:amqp", 0, first)
                .await
            {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::error!(%error, "cannot take the relay lock");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            let started = self.published.borrow().0;
            if let Err(error) = self.relay().await {
                tracing::warn!(error = %format!("{error:#}"), "relay interrupted; reconnecting");
            }
            drop(lock);
            // Back off only while nothing gets through.
            pause = if self.published.borrow().0 > started {
                first
            } else {
                (pause * 2).min(Duration::from_secs(30))
            };
            tokio::time::sleep(pause).await;
        }
    }

    async fn checkpoint(&self) -> anyhow::Result<Position> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (relay, position) VALUES ($1, 0)
             ON CONFLICT (relay) DO NOTHING",
        )
        .bind(RELAY)
        .execute(self.read_models.base())
        .await?;
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE relay = $1")
                .bind(RELAY)
                .fetch_one(self.read_models.base())
                .await?;
        Ok(Position(position as u64))
    }

    async fn relay(&self) -> anyhow::Result<()> {
        let connection = connect(&self.url, self.settings.tls_root_certificate.as_deref())
            .await
            .context("connecting to the broker")?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let exchange = ShortString::from(self.settings.exchange.clone());
        channel
            .exchange_declare(
                exchange.clone(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the exchange")?;
        let checkpoint = self.checkpoint().await?;
        self.published.send_replace(checkpoint);
        // Two windows in flight: while the broker confirms one, the next is read from the log
        // and published, so neither the confirms nor the checkpoint's commit stalls the
        // stream. The checkpoint still moves only past events the broker confirmed.
        let (to_confirm, confirming) = mpsc::channel(1);
        tokio::try_join!(
            self.publish_windows(&channel, &exchange, checkpoint, to_confirm),
            self.confirm_windows(checkpoint, confirming),
        )?;
        Ok(())
    }

    /// Publishes the log from `from` on, a window at a time, once the previous window but
    /// one is confirmed.
    async fn publish_windows(
        &self,
        channel: &Channel,
        exchange: &ShortString,
        from: Position,
        to_confirm: mpsc::Sender<Published>,
    ) -> anyhow::Result<()> {
        let mut subscription =
            Subscription::new(self.log.clone(), from, self.settings.window.max(1));
        loop {
            let batch = subscription.next_batch().await?;
            let Some(last) = batch.last().map(|event| event.position) else {
                continue;
            };
            let slot = to_confirm
                .reserve()
                .await
                .context("the confirming side stopped")?;
            let mut confirms = Vec::with_capacity(batch.len());
            for event in &batch {
                let payload = serde_json::to_vec(event)?;
                let confirm = channel
                    .basic_publish(
                        exchange.clone(),
                        ShortString::from(routing_key(&event.event_type)),
                        BasicPublishOptions::default(),
                        &payload,
                        properties(event),
                    )
                    .await?;
                confirms.push((confirm, event.event_id));
            }
            slot.send(Published { confirms, last });
        }
    }

    /// Waits for each published window's confirms, then moves the checkpoint past it.
    async fn confirm_windows(
        &self,
        from: Position,
        mut confirming: mpsc::Receiver<Published>,
    ) -> anyhow::Result<()> {
        let mut checkpoint = from;
        while let Some(published) = confirming.recv().await {
            for (confirm, event_id) in published.confirms {
                if !confirm.await?.is_ack() {
                    anyhow::bail!("the broker refused event {event_id}");
                }
            }
            let moved = sqlx::query(
                "UPDATE relay_checkpoints SET position = $1 WHERE relay = $2 AND position = $3",
            )
            .bind(published.last.0 as i64)
            .bind(RELAY)
            .bind(checkpoint.0 as i64)
            .execute(self.read_models.base())
            .await?;
            if moved.rows_affected() != 1 {
                anyhow::bail!("the relay checkpoint moved under this instance");
            }
            checkpoint = published.last;
            self.published.send_replace(checkpoint);
        }
        Ok(())
    }
}

/// A published window: the broker's pending confirms, and the position of its last event.
struct Published {
    confirms: Vec<(PublisherConfirm, Uuid)>,
    last: Position,
}

#[cfg(test)]
mod tests {
    use super::routing_key;

    #[test]
    fn routing_keys_name_the_aggregate_and_the_event() {
        assert_eq!(
            routing_key("DeploymentCreated"),
            "deployments.v1.deployment.created"
        );
        assert_eq!(
            routing_key("DeviceDeploymentStatusChanged"),
            "deployments.v1.device.deployment_status_changed"
        );
        assert_eq!(
            routing_key("ArtifactUploaded"),
            "deployments.v1.artifact.uploaded"
        );
    }
}
