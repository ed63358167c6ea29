//! Versioned schema migrations: SQL files compiled into the binary, applied in order, each in
//! its own transaction, and recorded in `schema_migrations`.

use std::path::Path;

use duckdb::Connection;

use super::WarehouseError;

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this version of magpie knows, oldest first. Never edit a released one:
/// add a new file.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "listening_events",
        sql: include_str!("../../migrations/0001_listening_events.sql"),
    },
    Migration {
        version: 2,
        name: "model_runs",
        sql: include_str!("../../migrations/0002_model_runs.sql"),
    },
    Migration {
        version: 3,
        name: "spotify_polling",
        sql: include_str!("../../migrations/0003_spotify_polling.sql"),
    },
    Migration {
        version: 4,
        name: "enrichment",
        sql: include_str!("../../migrations/0004_enrichment.sql"),
    },
    Migration {
        version: 5,
        name: "flow_runs",
        sql: include_str!("../../migrations/0005_flow_runs.sql"),
    },
    Migration {
        version: 6,
        name: "market",
        sql: include_str!("../../migrations/0006_market.sql"),
    },
    Migration {
        version: 7,
        name: "question_alerts",
        sql: include_str!("../../migrations/0007_question_alerts.sql"),
    },
    Migration {
        version: 8,
        name: "recheck_supplied_mbids",
        sql: include_str!("../../migrations/0008_recheck_supplied_mbids.sql"),
    },
    Migration {
        version: 9,
        name: "incremental_state",
        sql: include_str!("../../migrations/0009_incremental_state.sql"),
    },
    Migration {
        version: 10,
        name: "listener_filters",
        sql: include_str!("../../migrations/0010_listener_filters.sql"),
    },
];

fn latest_known() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)";

/// Bring the schema up to date, refusing a warehouse written by a newer magpie.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), WarehouseError> {
    let db = |source| WarehouseError::DuckDb {
        path: path.to_path_buf(),
        source,
    };
    // Reading the version first: on an up-to-date warehouse (every start but the first) the
    // open then writes nothing.
    let current = match current_version(conn).map_err(db)? {
        Some(version) => version,
        None => {
            conn.execute_batch(CREATE_TABLE).map_err(db)?;
            0
        }
    };
    if current > latest_known() {
        return Err(WarehouseError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: latest_known(),
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let fail = |source| WarehouseError::Migration {
            path: path.to_path_buf(),
            version: m.version,
            name: m.name,
            source,
        };
        conn.execute_batch("BEGIN TRANSACTION").map_err(fail)?;
        let applied = conn.execute_batch(m.sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)",
                duckdb::params![m.version, m.name],
            )
        });
        match applied {
            Ok(_) => conn.execute_batch("COMMIT").map_err(fail)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(fail(e));
            }
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied warehouse migration"
        );
    }
    Ok(())
}

/// For read-only opens: the schema must be one this magpie can read.
pub(super) fn check_version(conn: &Connection, path: &Path) -> Result<(), WarehouseError> {
    let current = current_version(conn)
        .map_err(|source| WarehouseError::DuckDb {
            path: path.to_path_buf(),
            source,
        })?
        .unwrap_or(0);
    if current > latest_known() {
        return Err(WarehouseError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: latest_known(),
        });
    }
    Ok(())
}

/// The schema version applied, or `None` when the warehouse has no `schema_migrations` yet.
/// (`duckdb_tables()`, not `information_schema.tables`: the view costs another 2-3 ms of each
/// start once the catalog is loaded.)
fn current_version(conn: &Connection) -> duckdb::Result<Option<i64>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables()
         WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map(Some)
}
