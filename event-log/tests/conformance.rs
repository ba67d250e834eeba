//! The event-log contract, run against every backend this machine can host.

use std::sync::Arc;

use event_log::batching::BatchingLog;
use event_log::conformance::{self, fresh_postgres_url};
use event_log::memory::MemoryEventLog;
use event_log::postgres::PostgresEventLog;
use event_log::sqlite::SqliteEventLog;
use event_log::EventLog;

async fn postgres() -> Arc<dyn EventLog> {
    Arc::new(
        PostgresEventLog::connect(&fresh_postgres_url().await, 10)
            .await
            .unwrap(),
    )
}

async fn sqlite() -> Arc<dyn EventLog> {
    let dir = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}", dir.join("events.db").display());
    Arc::new(SqliteEventLog::open(&url).await.unwrap())
}

async fn batched_postgres() -> Arc<dyn EventLog> {
    Arc::new(BatchingLog::new(postgres().await, 64))
}

async fn batched_sqlite() -> Arc<dyn EventLog> {
    Arc::new(BatchingLog::new(sqlite().await, 64))
}

async fn memory() -> Arc<dyn EventLog> {
    Arc::new(MemoryEventLog::default())
}

macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            suite!(@cases $backend;
                appends_and_reads_a_stream,
                wrong_expected_version_is_a_conflict_and_appends_nothing,
                re_appending_known_events_appends_nothing,
                tenants_own_separate_streams,
                a_batch_commits_each_request_on_its_own,
                read_all_pages_in_one_total_order,
                a_subscription_resumes_from_its_checkpoint_and_goes_live,
                concurrent_writers_and_a_subscriber_agree_on_one_order,
                an_atomic_batch_commits_all_or_nothing,
                a_tenant_reads_only_its_own_events_in_order,
                a_selection_reads_only_the_events_it_picks,
                an_audit_query_picks_by_stream_prefix_and_type_from_either_end,
                readers_publish_how_far_they_applied_the_log
            );
        }
    };
    (@cases $backend:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::conformance::$case(super::$backend().await).await;
            }
        )*
    };
}

suite!(postgres);
suite!(sqlite);
suite!(batched_postgres);
suite!(batched_sqlite);
suite!(memory);

/// KurrentDB runs only where a server is given:
/// `EVENTSTORE_URL=esdb://127.0.0.1:2113?tls=false cargo test -p event-log --features kurrentdb -- --ignored`.
/// The cases write under tenants of their own, so a server that holds other data will do.
#[cfg(feature = "kurrentdb")]
mod kurrentdb {
    use std::sync::Arc;

    use event_log::conformance;
    use event_log::kurrentdb::KurrentEventLog;
    use event_log::EventLog;

    async fn server() -> Arc<dyn EventLog> {
        let url = std::env::var("EVENTSTORE_URL")
            .expect("EVENTSTORE_URL names the KurrentDB server to test against");
        Arc::new(KurrentEventLog::connect(&url).await.unwrap())
    }

    macro_rules! cases {
        ($($case:ident),*) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs a KurrentDB server: set EVENTSTORE_URL and pass --ignored"]
                async fn $case() {
                    conformance::$case(server().await).await;
                }
            )*
        };
    }

    cases!(
        appends_and_reads_a_stream,
        wrong_expected_version_is_a_conflict_and_appends_nothing,
        re_appending_known_events_appends_nothing,
        tenants_own_separate_streams,
        a_batch_commits_each_request_on_its_own,
        read_all_pages_in_one_total_order,
        a_subscription_resumes_from_its_checkpoint_and_goes_live,
        concurrent_writers_and_a_subscriber_agree_on_one_order,
        a_tenant_reads_only_its_own_events_in_order,
        a_selection_reads_only_the_events_it_picks,
        an_audit_query_picks_by_stream_prefix_and_type_from_either_end
    );
}
