//! What health checks and metrics ask of the read models: whether they answer, where each
//! projection and relay has got to in the log, and how the fleet stands.

use sqlx::AnyPool;

use super::ReadModels;

/// Where one projection or relay has got to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Checkpoint {
    /// The projection's or relay's name.
    pub name: String,
    /// The last log position it applied or published.
    pub position: i64,
}

/// What follows the log and keeps a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follower {
    /// A projection: its checkpoint lives in the generation reads use.
    Projection,
    /// A relay: its checkpoint lives in the configured database and outlives every rebuild.
    Relay,
}

/// What the fleet gauges count, by status, over every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Devices by admission status (pending, accepted, rejected, preauthorized, noauth).
    Devices,
    /// Deployments by status (pending, inprogress, finished).
    Deployments,
}

impl Counted {
    /// Every status there is, so a status nothing is in any more shows 0 rather than its
    /// last count.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Counted::Devices => &["pending", "accepted", "rejected", "preauthorized", "noauth"],
            Counted::Deployments => &["pending", "inprogress", "finished"],
        }
    }
}

impl ReadModels {
    /// How many devices or deployments are in each status, over every tenant.
    pub async fn counts_by_status(&self, of: Counted) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = match of {
            Counted::Devices => "SELECT status, COUNT(*) FROM devices GROUP BY status",
            Counted::Deployments => "SELECT status, COUNT(*) FROM deployments GROUP BY status",
        };
        sqlx::query_as(sql).fetch_all(&self.pool()).await
    }

    /// Whether the database of the generation reads use answers a query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool()).await?;
        Ok(())
    }

    /// The checkpoint of every projection or every relay, by name.
    pub async fn checkpoints(&self, of: Follower) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let (sql, pool): (&str, AnyPool) = match of {
            Follower::Projection => (
                "SELECT projection AS name, position FROM projection_checkpoints
                 ORDER BY projection",
                self.pool(),
            ),
            Follower::Relay => (
                "SELECT relay AS name, position FROM relay_checkpoints ORDER BY relay",
                self.base().clone(),
            ),
        };
        sqlx::query_as(sql).fetch_all(&pool).await
    }
}
