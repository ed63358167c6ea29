//! A small pool of DuckDB connections for the web handlers.
//!
//! DuckDB connections are `Send` but not `Sync`, and queries block: each query takes a free
//! connection and runs on tokio's blocking threads, so the async workers keep serving. The
//! connections are clones of one database instance (one buffer pool, one memory limit).

use std::sync::{Arc, Mutex};

use duckdb::Connection;
use tokio::sync::Semaphore;

use crate::WebError;

/// Read connections shared by the handlers.
#[derive(Clone)]
pub struct ReadPool {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// `size` clones of `root` (at least one).
    pub fn new(root: &Connection, size: usize) -> Result<Self, WebError> {
        let idle = (0..size.max(1))
            .map(|_| root.try_clone())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(idle.len())),
            idle: Arc::new(Mutex::new(idle)),
        })
    }

    /// Run `work` on a free connection, off the async workers.
    pub async fn run<T, F>(&self, work: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, WebError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| WebError::Unavailable("the connection pool is closed".into()))?;
        let idle = Arc::clone(&self.idle);
        tokio::task::spawn_blocking(move || {
            let conn = idle
                .lock()
                .map_err(|_| WebError::Unavailable("a query panicked".into()))?
                .pop()
                .ok_or_else(|| WebError::Unavailable("no free connection".into()))?;
            // A panic in a query (duckdb-rs panics on some type mismatches) must not take the
            // connection with it: it goes back to the pool and the request gets an error.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&conn)))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(WebError::Internal(format!("a query panicked: {what}")))
                });
            if let Ok(mut idle) = idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| WebError::Unavailable(format!("query task failed: {e}")))?
    }
}
