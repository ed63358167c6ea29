//! The connections page queries run on, and the queue in front of them.
//!
//! DuckDB connections are `Send` but not `Sync`, and queries block: each query takes a permit,
//! then a free connection, and runs on tokio's blocking threads, so the async workers keep
//! serving. The permit travels with the blocking work and is released only when the query has
//! finished and its connection is back, never when the request that asked for it goes away
//! (the client hung up, or a sibling query failed). Such a request's query is interrupted
//! instead, so abandoned work stops early.
//!
//! A request waits for a permit at most [`QUEUE_WAIT`], with at most [`MAX_WAITING`] others;
//! beyond that it gets a 503 with `Retry-After` ([`WebError::Busy`]). A query that runs past
//! the query timeout is interrupted (503). A query that runs out of DuckDB's memory beside
//! others runs again alone, holding every permit, so a burst of heavy pages slows down instead
//! of failing.
//!
//! The connections belong to a [`Source`] of connections that can be replaced while queries
//! run ([`ConnectionPool::replace`]): the web's read pool moves to each newly published
//! snapshot that way; queries already running finish on the connections they hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use duckdb::{Connection, InterruptHandle};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::WebError;

/// Longest a request waits for a free connection before it is told to come back.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Requests that may wait for a connection at once; more are told to come back at once.
pub const MAX_WAITING: usize = 256;

/// One set of connections to one DuckDB instance.
struct Source {
    idle: Mutex<Vec<Connection>>,
}

/// Where a running query's interrupt handle is kept, so that someone else (a Cancel button, a
/// timeout, a dropped request) can stop it.
pub type CancelSlot = Arc<Mutex<Option<Arc<InterruptHandle>>>>;

/// Interrupt the query in `slot`, if one runs.
pub fn cancel(slot: &CancelSlot) {
    interrupt(slot);
}

/// A fixed number of connections, the queue in front of them, and their timeouts.
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Arc<Inner>,
}

struct Inner {
    source: RwLock<Arc<Source>>,
    permits: Arc<Semaphore>,
    size: u32,
    waiting: AtomicUsize,
    timeout: Duration,
    queue_wait: Duration,
    /// Run on every new connection (e.g. its search path).
    init: RwLock<Option<String>>,
}

impl ConnectionPool {
    /// `size` clones of `root` (at least one); queries longer than `timeout` are interrupted.
    pub fn new(root: &Connection, size: usize, timeout: Duration) -> Result<Self, WebError> {
        Self::with_init(root, size, timeout, None)
    }

    /// Like [`ConnectionPool::new`], running `init` on every connection first (session
    /// settings such as the search path belong to a connection, not to its database).
    pub fn with_init(
        root: &Connection,
        size: usize,
        timeout: Duration,
        init: Option<&str>,
    ) -> Result<Self, WebError> {
        let size = size.clamp(1, 64);
        Ok(Self {
            inner: Arc::new(Inner {
                source: RwLock::new(Arc::new(clones(root, size, init)?)),
                permits: Arc::new(Semaphore::new(size)),
                size: size as u32,
                waiting: AtomicUsize::new(0),
                timeout,
                queue_wait: QUEUE_WAIT,
                init: RwLock::new(init.map(str::to_string)),
            }),
        })
    }

    /// Wait at most `wait` for a connection instead of [`QUEUE_WAIT`] (call before use).
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.queue_wait = wait;
        }
        self
    }

    /// Move every later query to clones of `root`, each set up by `init`; running ones finish
    /// where they are.
    pub fn replace(&self, root: &Connection, init: Option<&str>) -> Result<(), WebError> {
        let fresh = Arc::new(clones(root, self.inner.size as usize, init)?);
        if let Ok(mut current) = self.inner.init.write() {
            *current = init.map(str::to_string);
        }
        let mut source = self
            .inner
            .source
            .write()
            .map_err(|_| WebError::Internal("the connection pool is poisoned".into()))?;
        *source = fresh;
        Ok(())
    }

    /// Run `work` on a free connection, off the async workers.
    pub async fn run<T, F>(&self, work: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, WebError> + Send + Sync + 'static,
    {
        self.run_limited(self.inner.timeout, CancelSlot::default(), work)
            .await
    }

    /// Run `work` with its own time limit, its interrupt handle kept in `slot` while it runs
    /// (for a Cancel button).
    pub async fn run_limited<T, F>(
        &self,
        timeout: Duration,
        slot: CancelSlot,
        work: F,
    ) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, WebError> + Send + Sync + 'static,
    {
        let work = Arc::new(work);
        let permit = self.admit(1).await?;
        match self
            .run_with(permit, timeout, Arc::clone(&slot), Arc::clone(&work))
            .await
        {
            Err(WebError::Db(e)) if magpie_core::warehouse::reader::is_out_of_memory(&e) => {
                tracing::warn!(
                    error = %e.to_string().lines().next().unwrap_or_default(),
                    "a page query ran out of DuckDB's memory beside others: running it again alone"
                );
                metrics::counter!("magpie_web_query_retried_alone_total").increment(1);
                let all = self.admit(self.inner.size).await?;
                match self.run_with(all, timeout, slot, work).await {
                    Err(WebError::Db(e))
                        if magpie_core::warehouse::reader::is_out_of_memory(&e) =>
                    {
                        tracing::warn!(error = %e, "a page query does not fit DuckDB's memory even alone");
                        Err(WebError::Busy(
                            "this page needs more memory than magpie may use right now: try a shorter range, or raise memory_budget".into(),
                        ))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Wait in the bounded queue for `n` permits.
    async fn admit(&self, n: u32) -> Result<OwnedSemaphorePermit, WebError> {
        let permits = Arc::clone(&self.inner.permits);
        if let Ok(permit) = Arc::clone(&permits).try_acquire_many_owned(n) {
            return Ok(permit);
        }
        if self.inner.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let waited =
            tokio::time::timeout(self.inner.queue_wait, permits.acquire_many_owned(n)).await;
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(WebError::Unavailable(
                "the connection pool is closed".into(),
            )),
            Err(_) => Err(busy()),
        }
    }

    /// Run `work` under `permit`, which is released only after the query ends.
    async fn run_with<T, F>(
        &self,
        permit: OwnedSemaphorePermit,
        timeout: Duration,
        running: CancelSlot,
        work: Arc<F>,
    ) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, WebError> + Send + Sync + 'static,
    {
        let source = self
            .inner
            .source
            .read()
            .map_err(|_| WebError::Internal("the connection pool is poisoned".into()))?
            .clone();
        let slot = Arc::clone(&running);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = source
                .idle
                .lock()
                .map_err(|_| WebError::Internal("the connection pool is poisoned".into()))?
                .pop()
                .ok_or_else(|| WebError::Internal("a permit without a free connection".into()))?;
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(conn.interrupt_handle());
            }
            // A panic in a query (duckdb-rs panics on some type mismatches) must not take the
            // connection with it: it goes back to the pool and the request gets an error.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&conn)))
                .unwrap_or_else(|panic| {
                    Err(WebError::Internal(format!(
                        "a query panicked: {}",
                        magpie_core::scheduler::engine::panic_message(panic.as_ref())
                    )))
                });
            if let Ok(mut slot) = slot.lock() {
                *slot = None;
            }
            if let Ok(mut idle) = source.idle.lock() {
                idle.push(conn);
            }
            result
        });
        // Interrupt the query if this request is dropped before it ends.
        let mut guard = InterruptOnDrop(Some(Arc::clone(&running)));
        let result = match tokio::time::timeout(timeout, task).await {
            Ok(joined) => {
                joined.map_err(|e| WebError::Internal(format!("query task failed: {e}")))?
            }
            Err(_) => {
                interrupt(&running);
                return Err(WebError::Busy(format!(
                    "a query took longer than {} s and was stopped",
                    timeout.as_secs()
                )));
            }
        };
        guard.0 = None;
        result
    }
}

/// Interrupts the query in its slot when dropped while still armed.
struct InterruptOnDrop(Option<Arc<Mutex<Option<Arc<InterruptHandle>>>>>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            interrupt(&slot);
        }
    }
}

fn interrupt(slot: &Mutex<Option<Arc<InterruptHandle>>>) {
    if let Ok(slot) = slot.lock()
        && let Some(handle) = slot.as_ref()
    {
        handle.interrupt();
    }
}

fn busy() -> WebError {
    metrics::counter!("magpie_web_busy_total").increment(1);
    WebError::Busy("magpie is busy answering other pages: try again in a moment".into())
}

fn clones(root: &Connection, size: usize, init: Option<&str>) -> Result<Source, WebError> {
    let idle = (0..size)
        .map(|_| {
            let conn = root.try_clone()?;
            if let Some(sql) = init {
                conn.execute_batch(sql)?;
            }
            Ok(conn)
        })
        .collect::<Result<Vec<_>, duckdb::Error>>()?;
    Ok(Source {
        idle: Mutex::new(idle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn pool(size: usize, timeout: Duration) -> ConnectionPool {
        let root = Connection::open_in_memory().unwrap();
        ConnectionPool::new(&root, size, timeout).unwrap()
    }

    const FOREVER: &str = "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3";

    #[tokio::test]
    async fn a_dropped_request_keeps_its_permit_until_its_query_ends() {
        let pool = pool(1, Duration::from_secs(30));
        let abandoned = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|c| Ok(c.execute_batch(FOREVER)?)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        abandoned.abort();
        // The abandoned query is interrupted; the next request waits for its connection
        // instead of finding none.
        let n: i64 = pool
            .run(|c| Ok(c.query_row("SELECT 42", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 42);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_a_long_query_is_stopped() {
        let pool = pool(1, Duration::from_millis(300)).with_queue_wait(Duration::from_millis(50));
        let holder = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|c| Ok(c.execute_batch(FOREVER)?)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waited = pool.run(|_| Ok(())).await;
        assert!(matches!(waited, Err(WebError::Busy(_))), "{waited:?}");
        assert_eq!(waited.unwrap_err().retry_after(), Some(2));
        let stopped = holder.await.unwrap();
        assert!(
            matches!(stopped, Err(WebError::Busy(ref m)) if m.contains("stopped")),
            "{stopped:?}"
        );
        let after: i64 = pool
            .run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(after, 1, "the interrupted connection serves again");
    }

    #[tokio::test]
    async fn a_query_out_of_memory_beside_others_runs_again_alone() {
        let root = Connection::open_in_memory().unwrap();
        root.execute_batch("SET memory_limit = '8MB'; SET temp_directory = ''; SET threads = 1")
            .unwrap();
        let pool = ConnectionPool::new(&root, 2, Duration::from_secs(30)).unwrap();
        let tries = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&tries);
        let result = pool
            .run(move |c| {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Too big for 8 MB, as a query beside others can be.
                    c.execute_batch(
                        "SELECT count(*) FROM (SELECT DISTINCT i::VARCHAR || 'x' FROM range(3000000) t(i))",
                    )?;
                }
                Ok("fits alone")
            })
            .await;
        assert_eq!(result.unwrap(), "fits alone");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        // One that never fits is a clear 503, not a 500.
        let never = pool
            .run(|c| {
                Ok(c.execute_batch(
                    "SELECT count(*) FROM (SELECT DISTINCT i::VARCHAR || 'x' FROM range(3000000) t(i))",
                )?)
            })
            .await;
        assert!(
            matches!(never, Err(WebError::Busy(ref m)) if m.contains("memory")),
            "{never:?}"
        );
    }
}
