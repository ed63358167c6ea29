//! The query engine for SQL a person wrote: the explorer, saved questions, dashboard cards and
//! public share links all run through [`run`] or [`stream`].
//!
//! What keeps one such query from taking the box, in order:
//! 1. It runs on the pages' reader: a read-only DuckDB instance over the published snapshot
//!    that cannot write, read files or the network, load extensions or change its settings
//!    (`crate::App::reader`), with its own share of `memory_budget`.
//! 2. It must be exactly one SELECT: DuckDB itself parses it first (`json_serialize_sql`,
//!    which serialises only SELECT statements), so `SET`, `PRAGMA`, `CREATE TEMP TABLE`,
//!    `COPY`, `ATTACH`, `INSTALL` and two statements in one request are refused before anything
//!    runs. (duckdb-rs' `prepare` would run every statement but the last.)
//! 3. Variables are bound as parameters ([`magpie_questions::variables`]).
//! 4. It is interrupted after `explore.timeout`, when its request goes away, or on Cancel.
//! 5. At most `explore.max_rows` rows are kept for display; the rest are only counted.
//!    Downloads stream every row without keeping any.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duckdb::Connection;
use duckdb::types::Value;
use magpie_core::values::{self, Streamed};
use magpie_questions::variables::{Param, Template, Values, VarDecl};
use serde::Serialize;

use crate::pool::{CancelSlot, cancel};
use crate::{App, WebError};

/// A column of a result: its name and DuckDB type.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A result as the API sends it.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Rows in the whole result (all were read; only the first `max_rows` are kept).
    pub row_count: u64,
    pub truncated: bool,
    pub elapsed_ms: u64,
}

/// What to run: SQL with variables, their declarations and values.
#[derive(Debug, Clone)]
pub struct Request {
    pub sql: String,
    pub decls: BTreeMap<String, VarDecl>,
    pub values: Values,
}

impl Request {
    /// SQL without declared variables (they are text).
    pub fn plain(sql: &str, values: Values) -> Self {
        Self {
            sql: sql.to_string(),
            decls: BTreeMap::new(),
            values,
        }
    }

    /// The SQL with `?` placeholders and its parameters.
    fn bind(&self) -> Result<(String, Vec<Value>), WebError> {
        let template =
            Template::parse(&self.sql).map_err(|e| WebError::BadRequest(e.to_string()))?;
        let bound = template
            .bind(&self.decls, &self.values)
            .map_err(|e| WebError::BadRequest(e.to_string()))?;
        let params = bound.params.into_iter().map(to_duckdb).collect();
        Ok((bound.sql, params))
    }
}

fn to_duckdb(param: Param) -> Value {
    match param {
        Param::Text(s) => Value::Text(s),
        Param::Int(i) => Value::BigInt(i),
        Param::Float(f) => Value::Double(f),
        Param::Date(d) => Value::Date32(
            (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32,
        ),
    }
}

/// Running queries by the id their client gave, for Cancel.
#[derive(Default)]
pub struct Running {
    slots: Mutex<BTreeMap<String, CancelSlot>>,
}

impl Running {
    /// Interrupt the query `id`; whether one was running.
    pub fn cancel(&self, id: &str) -> bool {
        let slot = self.slots.lock().ok().and_then(|s| s.get(id).cloned());
        match slot {
            Some(slot) => {
                cancel(&slot);
                true
            }
            None => false,
        }
    }

    fn register(&self, id: Option<&str>) -> (CancelSlot, Option<String>) {
        let slot = CancelSlot::default();
        let id = id
            .filter(|i| (1..=64).contains(&i.len()))
            .map(str::to_string);
        if let (Some(id), Ok(mut slots)) = (&id, self.slots.lock()) {
            slots.insert(id.clone(), Arc::clone(&slot));
        }
        (slot, id)
    }

    fn forget(&self, id: Option<String>) {
        if let (Some(id), Ok(mut slots)) = (id, self.slots.lock()) {
            slots.remove(&id);
        }
    }
}

/// Refuse anything but exactly one SELECT, with DuckDB's own reason.
fn check_select(conn: &Connection, sql: &str) -> Result<(), WebError> {
    magpie_core::warehouse::reader::check_single_select(conn, sql).map_err(WebError::BadRequest)
}

/// The name DuckDB shows for a column's type.
fn type_name(kind: &duckdb::arrow::datatypes::DataType) -> String {
    use duckdb::arrow::datatypes::DataType as T;
    match kind {
        T::Boolean => "BOOLEAN".into(),
        T::Int8 => "TINYINT".into(),
        T::Int16 => "SMALLINT".into(),
        T::Int32 => "INTEGER".into(),
        T::Int64 => "BIGINT".into(),
        T::UInt8 => "UTINYINT".into(),
        T::UInt16 => "USMALLINT".into(),
        T::UInt32 => "UINTEGER".into(),
        T::UInt64 => "UBIGINT".into(),
        T::Float32 => "FLOAT".into(),
        T::Float64 => "DOUBLE".into(),
        T::Decimal128(p, s) | T::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "VARCHAR".into(),
        T::Date32 | T::Date64 => "DATE".into(),
        T::Timestamp(_, None) => "TIMESTAMP".into(),
        T::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        T::Time32(_) | T::Time64(_) => "TIME".into(),
        T::Interval(_) => "INTERVAL".into(),
        T::List(_) | T::LargeList(_) | T::FixedSizeList(_, _) => "LIST".into(),
        T::Struct(_) => "STRUCT".into(),
        T::Map(_, _) => "MAP".into(),
        T::Null => "NULL".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// Run `request`, keeping at most `max_rows` rows, within `timeout`; `query_id` lets a Cancel
/// interrupt it.
pub async fn run(
    app: &App,
    request: Request,
    max_rows: usize,
    timeout: Duration,
    query_id: Option<&str>,
) -> Result<QueryResult, WebError> {
    let (sql, params) = request.bind()?;
    let (slot, id) = app.running().register(query_id);
    let started = Instant::now();
    let result = app
        .reader()
        .run_limited(timeout, slot, move |conn| {
            execute(conn, &sql, &params, max_rows)
        })
        .await;
    app.running().forget(id);
    let result = result.map_err(interrupted);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(WebError::BadRequest(_)) => "refused",
        Err(WebError::Busy(_)) => "stopped",
        Err(_) => "error",
    };
    metrics::counter!("magpie_explore_queries_total", "outcome" => outcome).increment(1);
    let mut result = result?;
    result.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// Like [`run`], but the result is kept in the pages' cache until the next published build,
/// and requests for the same SQL and values meanwhile share one run: for dashboard cards and
/// public links, which many visitors ask for with the same values. Limited by the pages'
/// query timeout.
pub async fn run_cached(
    app: &App,
    request: Request,
    max_rows: usize,
) -> Result<std::sync::Arc<QueryResult>, WebError> {
    let (sql, params) = request.bind()?;
    let key = format!("card\u{1}{sql}\u{1}{params:?}\u{1}{max_rows}");
    // DuckDB's own errors stay as they are inside: the pool runs a query that ran out of
    // memory beside others again alone, and recognises it by its error.
    app.cached(key, move |conn| {
        let started = Instant::now();
        let mut result = execute(conn, &sql, &params, max_rows)?;
        result.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(result)
    })
    .await
    .map_err(interrupted)
}

/// Check and run one SELECT with `params` on `conn`, keeping `max_rows` rows and counting
/// the rest.
fn execute(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    max_rows: usize,
) -> Result<QueryResult, WebError> {
    check_select(conn, sql)?;
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(duckdb::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut columns: Option<Vec<Column>> = None;
    while let Some(row) = rows.next()? {
        let statement = row.as_ref();
        if columns.is_none() {
            columns = Some(
                statement
                    .column_names()
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| Column {
                        name,
                        kind: type_name(&statement.column_type(i)),
                    })
                    .collect(),
            );
        }
        count += 1;
        if out.len() < max_rows {
            let mut values = Vec::with_capacity(statement.column_count());
            for i in 0..statement.column_count() {
                values.push(
                    if statement.column_type(i) == duckdb::arrow::datatypes::DataType::Null {
                        serde_json::Value::Null
                    } else {
                        values::to_json(&row.get::<_, Value>(i)?)
                    },
                );
            }
            out.push(values);
        }
    }
    drop(rows);
    let columns = columns.unwrap_or_else(|| {
        stmt.column_names()
            .into_iter()
            .map(|name| Column {
                name,
                kind: String::new(),
            })
            .collect()
    });
    Ok(QueryResult {
        columns,
        truncated: count > out.len() as u64,
        rows: out,
        row_count: count,
        elapsed_ms: 0,
    })
}

/// DuckDB's errors about a person's SQL are theirs to read (a 400 with DuckDB's message);
/// "Interrupted" is a Cancel (or the request went away).
fn interrupted(error: WebError) -> WebError {
    match error {
        WebError::Db(e) if e.to_string().contains("Interrupted") => {
            WebError::BadRequest("the query was cancelled".into())
        }
        WebError::Db(e) => WebError::BadRequest(e.to_string()),
        other => other,
    }
}

/// The format of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    Csv,
    Json,
}

/// Stream every row of `request` as CSV or a JSON array into `sink`, keeping none: the
/// bytes arrive in chunks of about 64 KiB. Ends early (without error) when `sink` is closed
/// (the client went away). Bounded by `timeout`.
pub async fn stream(
    app: &App,
    request: Request,
    format: Download,
    timeout: Duration,
    sink: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
) -> Result<u64, WebError> {
    let (sql, params) = request.bind()?;
    metrics::counter!("magpie_explore_downloads_total").increment(1);
    app.reader()
        .run_limited(timeout, CancelSlot::default(), move |conn| {
            check_select(conn, &sql)?;
            let mut out = Chunked::new(sink.clone());
            let mut columns = Vec::new();
            let mut rows = 0u64;
            let csv = format == Download::Csv;
            if format == Download::Json {
                out.push(b"[");
            }
            let streamed = values::stream_params(conn, &sql, &params, |event| {
                match (event, csv) {
                    (Streamed::Columns(names), true) => out.push(&csv_line(names)?),
                    (Streamed::Columns(names), false) => columns = names.to_vec(),
                    (Streamed::Row(row), true) => {
                        out.push(&csv_line(row.iter().map(values::to_text))?);
                        rows += 1;
                    }
                    (Streamed::Row(row), false) => {
                        let object: serde_json::Map<String, serde_json::Value> = columns
                            .iter()
                            .cloned()
                            .zip(row.iter().map(values::to_json))
                            .collect();
                        if rows > 0 {
                            out.push(b",\n");
                        }
                        out.push(&serde_json::to_vec(&object).map_err(io)?);
                        rows += 1;
                    }
                }
                Ok::<bool, StreamError>(!out.closed)
            });
            match streamed {
                Ok(_) => {}
                Err(StreamError::Db(e)) => return Err(WebError::Db(e)),
                Err(StreamError::Io(e)) => return Err(WebError::Internal(e)),
            }
            if format == Download::Json {
                out.push(b"]\n");
            }
            out.flush();
            Ok(rows)
        })
        .await
}

/// Errors inside a download.
enum StreamError {
    Db(duckdb::Error),
    Io(String),
}

impl From<duckdb::Error> for StreamError {
    fn from(e: duckdb::Error) -> Self {
        StreamError::Db(e)
    }
}

fn io(e: impl std::fmt::Display) -> StreamError {
    StreamError::Io(e.to_string())
}

/// One CSV record, quoted as needed, with its line end.
fn csv_line<I>(record: I) -> Result<Vec<u8>, StreamError>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(record).map_err(io)?;
    w.into_inner().map_err(io)
}

/// Bytes gathered into chunks for the response body; `closed` once the client is gone.
struct Chunked {
    sink: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buffer: Vec<u8>,
    closed: bool,
}

impl Chunked {
    const CHUNK: usize = 64 * 1024;

    fn new(sink: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Self {
        Self {
            sink,
            buffer: Vec::with_capacity(Self::CHUNK),
            closed: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Self::CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.buffer.is_empty() || self.closed {
            return;
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.buffer));
        // On a blocking thread: wait for the client to take the previous chunks.
        if self.sink.blocking_send(Ok(chunk)).is_err() {
            self.closed = true;
        }
    }
}
