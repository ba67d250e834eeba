//! Artifacts, releases (artifacts grouped by name) and each tenant's storage usage.

use async_trait::async_trait;
use events::artifact::ArtifactUploaded;
use events::{DomainEvent, RecordedEvent};
use sqlx::{Any, Transaction};

use super::stored_time;
use crate::projector::Projection;

pub struct ArtifactsProjection;

type Tx = Transaction<'static, Any>;

#[async_trait]
impl Projection for ArtifactsProjection {
    fn name(&self) -> &'static str {
        "artifacts"
    }

    async fn apply(&self, tx: &mut Tx, events: &[RecordedEvent]) -> anyhow::Result<()> {
        // Artifact events are few and far between: one at a time is fast enough.
        for event in events {
            apply_one(tx, event).await?;
        }
        Ok(())
    }
}

async fn apply_one(tx: &mut Tx, event: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = event.tenant.as_str();
    match event.decode()? {
        DomainEvent::ArtifactUploaded(uploaded) => artifact_uploaded(tx, tenant, uploaded).await,
        DomainEvent::ArtifactDescriptionChanged(changed) => {
            sqlx::query(
                "UPDATE artifacts SET description = $3, modified = $4
                     WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(changed.artifact_id.to_string())
            .bind(changed.description)
            .bind(stored_time(event.metadata.occurred_at))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
        DomainEvent::ArtifactDeleted(deleted) => {
            sqlx::query("DELETE FROM artifacts WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(deleted.artifact_id.to_string())
                .execute(&mut **tx)
                .await?;
            add_usage(tx, tenant, -(deleted.size as i64)).await
        }
        _ => Ok(()),
    }
}

async fn artifact_uploaded(
    tx: &mut Tx,
    tenant: &str,
    uploaded: ArtifactUploaded,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO artifacts (tenant, id, name, description, device_types, modified, size, document)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(uploaded.artifact_id.to_string())
    .bind(&uploaded.name)
    .bind(&uploaded.description)
    .bind(serde_json::to_string(&uploaded.device_types_compatible)?)
    .bind(stored_time(uploaded.modified))
    .bind(uploaded.size as i64)
    .bind(serde_json::to_string(&uploaded)?)
    .execute(&mut **tx)
    .await?;
    add_usage(tx, tenant, uploaded.size as i64).await
}

async fn add_usage(tx: &mut Tx, tenant: &str, bytes: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO storage_usage (tenant, bytes) VALUES ($1, $2)
         ON CONFLICT (tenant) DO UPDATE SET bytes = storage_usage.bytes + excluded.bytes",
    )
    .bind(tenant)
    .bind(bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
