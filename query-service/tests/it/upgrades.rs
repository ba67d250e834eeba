//! Read models of an earlier release, migrated by this one: what a new read model derives from
//! rows already projected is there without a rebuild.

use crate::support::{fresh_urls, Backend};
use events::TenantId;
use query_service::read_models::ReadModels;

/// Devices projected before the device counts existed are counted by the migration that
/// brings the counts.
async fn devices_projected_before_the_counts_are_counted(backend: Backend) {
    let (_, url) = fresh_urls(backend).await;
    let read_models = ReadModels::connect(&url, 2).await.unwrap();
    let pool = read_models.pool();
    // The read models as the release before the counts left them: its migrations applied,
    // its devices projected, no counts.
    sqlx::raw_sql(
        "DROP TABLE device_counts;
         DELETE FROM schema_migrations WHERE migration_set = 'read-models' AND version = 12;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let devices = [
        ("", "d1", "accepted"),
        ("", "d2", "accepted"),
        ("", "d3", "pending"),
        ("", "d4", "noauth"),
        ("other", "d1", "rejected"),
    ];
    for (tenant, id, status) in devices {
        sqlx::query(
            "INSERT INTO devices (tenant, id, status, identity_data, created_ts, updated_ts)
             VALUES ($1, $2, $3, '{}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        )
        .bind(tenant)
        .bind(id)
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    drop(read_models);

    let upgraded = ReadModels::connect(&url, 2).await.unwrap();
    let count = |tenant: &'static str, status: Option<&'static str>| {
        let devices = upgraded.devices();
        async move { devices.count(&TenantId::new(tenant), status).await.unwrap() }
    };
    assert_eq!(count("", Some("accepted")).await, 2);
    assert_eq!(count("", Some("pending")).await, 1);
    assert_eq!(count("", Some("noauth")).await, 1);
    assert_eq!(count("", Some("rejected")).await, 0);
    assert_eq!(count("", None).await, 4);
    assert_eq!(count("other", Some("rejected")).await, 1);
    assert_eq!(count("other", None).await, 1);
    assert_eq!(count("nobody", None).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_devices_projected_before_the_counts_are_counted() {
    devices_projected_before_the_counts_are_counted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_devices_projected_before_the_counts_are_counted() {
    devices_projected_before_the_counts_are_counted(Backend::Postgres).await;
}
