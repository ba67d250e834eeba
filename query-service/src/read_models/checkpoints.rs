//! What health checks and metrics ask of the read models: whether they answer, and where
//! each projection and relay has got to in the log.

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

impl ReadModels {
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
