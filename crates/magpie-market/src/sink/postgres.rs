//! The optional PostgreSQL (or TimescaleDB) copy of the market data, for users who outgrow
//! the box: every closed Parquet file is loaded once, by binary `COPY`, in one transaction
//! together with its name in `market.loaded_files`. The files stay the source, so a
//! PostgreSQL outage or a crash loses nothing and loads nothing twice: what is not loaded yet
//! is loaded at the next pass.
//!
//! Tables `market.tickers`, `market.quotes` and `market.trades` take the files' columns plus
//! the partition's `date`, `currency` and `kind`; where the `timescaledb` extension is
//! installed they are hypertables on `exchange_time`.

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{
    Array, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::pin_mut;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use crate::rows::Dataset;
use crate::sink::files;
use crate::status::MarketHandle;

/// Why a load pass stopped (the files not loaded yet are tried again at the next pass).
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("PostgreSQL: {}", with_cause(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// tokio-postgres says "error connecting to server" and keeps the reason (refused, timed
/// out, password) in its source. Neither names the URL.
fn with_cause(error: &tokio_postgres::Error) -> String {
    match error.source() {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// What one pass loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub files: u64,
    pub rows: u64,
}

/// A connection to PostgreSQL that loads the market folder's closed files.
pub struct PostgresLoader {
    client: Client,
    hypertables: bool,
    loaded: HashSet<String>,
    tables: HashSet<Dataset>,
}

impl PostgresLoader {
    /// Connect (the URL is never logged), create `market.loaded_files` if needed and read
    /// which files are already there.
    pub async fn connect(url: &str) -> Result<Self, PostgresError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the PostgreSQL connection ended");
            }
        });
        client
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS market;
                 CREATE TABLE IF NOT EXISTS market.loaded_files (
                     path TEXT PRIMARY KEY,
                     rows BIGINT NOT NULL,
                     loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await?;
        let available = client
            .query_opt(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
                &[],
            )
            .await?
            .is_some();
        // Creating the extension needs rights the user may not have: then plain tables.
        let hypertables = available
            && client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                .await
                .is_ok();
        let loaded = client
            .query("SELECT path FROM market.loaded_files", &[])
            .await?
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        Ok(Self {
            client,
            hypertables,
            loaded,
            tables: HashSet::new(),
        })
    }

    /// Whether the tables are TimescaleDB hypertables.
    pub fn hypertables(&self) -> bool {
        self.hypertables
    }

    /// Load every closed file under `root` that is not in PostgreSQL yet, oldest name first.
    pub async fn load_new(&mut self, root: &Path) -> Result<Loaded, PostgresError> {
        let mut present: Vec<(String, PathBuf)> = files::under(root, "parquet")
            .into_iter()
            .filter_map(|path| {
                let name = path
                    .strip_prefix(root)
                    .ok()?
                    .to_string_lossy()
                    .replace('\\', "/");
                Some((name, path))
            })
            .collect();
        present.sort();
        // Names of files that retention has deleted are forgotten: over months of running,
        // ~1,700 files a day would otherwise pile up here.
        let on_disk: HashSet<&str> = present.iter().map(|(name, _)| name.as_str()).collect();
        self.loaded.retain(|name| on_disk.contains(name.as_str()));
        let mut loaded = Loaded::default();
        for (name, path) in present {
            if self.loaded.contains(&name) {
                continue;
            }
            let Some(partition) = FilePartition::parse(&name) else {
                continue;
            };
            if let Some(rows) = self.load_file(&path, &name, &partition).await? {
                loaded.rows += rows;
                loaded.files += 1;
            }
            self.loaded.insert(name);
        }
        Ok(loaded)
    }

    /// Load one file; `None` when `market.loaded_files` already has it.
    async fn load_file(
        &mut self,
        path: &Path,
        name: &str,
        partition: &FilePartition,
    ) -> Result<Option<u64>, PostgresError> {
        // Reading and decoding is blocking work: off the async workers.
        let owned = path.to_path_buf();
        let (schema, batches) = tokio::task::spawn_blocking(move || read(&owned))
            .await
            .map_err(|e| PostgresError::File {
                path: path.display().to_string(),
                message: format!("the reading task failed: {e}"),
            })??;
        let columns = columns(&schema).map_err(|message| PostgresError::File {
            path: path.display().to_string(),
            message,
        })?;
        self.ensure_table(partition.dataset, &columns).await?;
        let mut names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
        names.extend(["date", "currency", "kind"].map(String::from));
        let mut types: Vec<Type> = columns.iter().map(|c| c.kind.pg_type()).collect();
        types.extend([Type::DATE, Type::TEXT, Type::TEXT]);

        let tx = self.client.transaction().await?;
        // The set in memory is a cache; the table is the record (a file restored after its
        // name was forgotten is not loaded again).
        if tx
            .query_opt(
                "SELECT 1 FROM market.loaded_files WHERE path = $1",
                &[&name],
            )
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let sink = tx
            .copy_in(&format!(
                "COPY market.{} ({}) FROM STDIN (FORMAT binary)",
                partition.dataset.folder(),
                names.join(", ")
            ))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        let mut cells: Vec<Cell> = Vec::with_capacity(types.len());
        for batch in &batches {
            for row in 0..batch.num_rows() {
                cells.clear();
                for (index, column) in columns.iter().enumerate() {
                    cells.push(Cell::read(column.kind, batch.column(index).as_ref(), row));
                }
                cells.push(Cell::Date(Some(partition.date)));
                cells.push(Cell::Text(Some(&partition.currency)));
                cells.push(Cell::Text(Some(&partition.kind)));
                let values: Vec<&(dyn ToSql + Sync)> =
                    cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                writer.as_mut().write(&values).await?;
            }
        }
        let rows = writer.finish().await?;
        tx.execute(
            "INSERT INTO market.loaded_files (path, rows) VALUES ($1, $2)",
            &[&name, &(rows as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    /// Create the dataset's table (and hypertable) from the first file's columns.
    async fn ensure_table(
        &mut self,
        dataset: Dataset,
        columns: &[Column],
    ) -> Result<(), PostgresError> {
        if self.tables.contains(&dataset) {
            return Ok(());
        }
        let table = format!("market.{}", dataset.folder());
        let mut definitions: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "\"{}\" {}{}",
                    c.name,
                    c.kind.sql_type(),
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect();
        definitions.extend([
            "date DATE NOT NULL".to_string(),
            "currency TEXT NOT NULL".to_string(),
            "kind TEXT NOT NULL".to_string(),
        ]);
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({});
                 CREATE INDEX IF NOT EXISTS {}_instrument_time ON {table} (instrument, exchange_time)",
                definitions.join(", "),
                dataset.folder()
            ))
            .await?;
        if self.hypertables {
            self.client
                .execute(
                    "SELECT create_hypertable($1::text::regclass, 'exchange_time', if_not_exists => TRUE, migrate_data => TRUE)",
                    &[&table],
                )
                .await?;
        }
        self.tables.insert(dataset);
        Ok(())
    }
}

/// Load new files every `every` until `stop` is cancelled, then make one last pass (the
/// collector cancels after its writer has closed the files). A failed pass is reported in the
/// status and retried at the next, on a new connection.
pub(crate) async fn keep_loading(
    url: String,
    root: PathBuf,
    every: Duration,
    handle: MarketHandle,
    stop: CancellationToken,
) {
    let mut loader = None;
    loop {
        let stopping = stop.is_cancelled();
        if stopping {
            // Bounded: an unreachable server must not hold up the shutdown.
            let last = tokio::time::timeout(LAST_PASS, pass(&mut loader, &url, &root, &handle));
            if last.await.is_err() {
                tracing::warn!(
                    "the last PostgreSQL load did not finish in time; the next start loads the rest"
                );
            }
            return;
        }
        pass(&mut loader, &url, &root, &handle).await;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

const LAST_PASS: Duration = Duration::from_secs(30);

async fn pass(loader: &mut Option<PostgresLoader>, url: &str, root: &Path, handle: &MarketHandle) {
    if loader.is_none() {
        match PostgresLoader::connect(url).await {
            Ok(connected) => {
                let hypertables = connected.hypertables();
                handle.update_postgres(|s| {
                    s.connected = true;
                    s.hypertables = hypertables;
                });
                *loader = Some(connected);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to PostgreSQL; the files wait for the next pass");
                handle.update_postgres(|s| {
                    s.connected = false;
                    s.last_error = Some(e.to_string());
                });
                return;
            }
        }
    }
    let Some(active) = loader.as_mut() else {
        return;
    };
    match active.load_new(root).await {
        Ok(loaded) => {
            metrics::counter!("magpie_market_postgres_rows_total").increment(loaded.rows);
            handle.update_postgres(|s| {
                s.files_loaded += loaded.files;
                s.rows_loaded += loaded.rows;
                s.last_load_at = Some(Utc::now());
                s.last_error = None;
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "loading market files into PostgreSQL stopped; retrying at the next pass");
            metrics::counter!("magpie_market_postgres_errors_total").increment(1);
            handle.update_postgres(|s| {
                s.connected = false;
                s.last_error = Some(e.to_string());
            });
            // A new connection next time, which reads again what is already loaded.
            *loader = None;
        }
    }
}

/// A closed file's dataset and partition, from its path relative to the market folder:
/// `quotes/date=2026-11-23/currency=BTC/kind=option/part-….parquet`.
#[derive(Debug, PartialEq)]
struct FilePartition {
    dataset: Dataset,
    date: NaiveDate,
    currency: String,
    kind: String,
}

impl FilePartition {
    fn parse(relative: &str) -> Option<Self> {
        let mut parts = relative.split('/');
        let folder = parts.next()?;
        let dataset = Dataset::ALL.into_iter().find(|d| d.folder() == folder)?;
        let mut value = |key: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(key))
                .and_then(|p| p.strip_prefix('='))
                .map(str::to_string)
        };
        let date = NaiveDate::parse_from_str(&value("date")?, "%Y-%m-%d").ok()?;
        Some(Self {
            dataset,
            date,
            currency: value("currency")?,
            kind: value("kind")?,
        })
    }
}

fn read(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), PostgresError> {
    let error = |message: String| PostgresError::File {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| error(e.to_string()))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    Ok((schema, batches))
}

/// A file column and how it is written.
struct Column {
    name: String,
    kind: Kind,
    nullable: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int64,
    Int32,
    Float64,
    Text,
    Millis,
    Micros,
}

impl Kind {
    fn sql_type(self) -> &'static str {
        match self {
            Kind::Int64 => "BIGINT",
            Kind::Int32 => "INTEGER",
            Kind::Float64 => "DOUBLE PRECISION",
            Kind::Text => "TEXT",
            Kind::Millis | Kind::Micros => "TIMESTAMPTZ",
        }
    }

    fn pg_type(self) -> Type {
        match self {
            Kind::Int64 => Type::INT8,
            Kind::Int32 => Type::INT4,
            Kind::Float64 => Type::FLOAT8,
            Kind::Text => Type::TEXT,
            Kind::Millis | Kind::Micros => Type::TIMESTAMPTZ,
        }
    }
}

fn columns(schema: &SchemaRef) -> Result<Vec<Column>, String> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let kind = match field.data_type() {
                DataType::Int64 => Kind::Int64,
                DataType::Int32 => Kind::Int32,
                DataType::Float64 => Kind::Float64,
                DataType::Utf8 => Kind::Text,
                DataType::Timestamp(TimeUnit::Millisecond, _) => Kind::Millis,
                DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::Micros,
                other => {
                    return Err(format!(
                        "column `{}` has a type the PostgreSQL copy does not know: {other}",
                        field.name()
                    ));
                }
            };
            Ok(Column {
                name: field.name().clone(),
                kind,
                nullable: field.is_nullable(),
            })
        })
        .collect()
}

/// One value of a row on its way into `COPY … (FORMAT binary)`.
#[derive(Debug)]
enum Cell<'a> {
    Int64(Option<i64>),
    Int32(Option<i32>),
    Float64(Option<f64>),
    Text(Option<&'a str>),
    Time(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
}

impl<'a> Cell<'a> {
    fn read(kind: Kind, array: &'a dyn Array, row: usize) -> Self {
        let any = array.as_any();
        let valid = array.is_valid(row);
        match kind {
            Kind::Int64 => Cell::Int64(
                any.downcast_ref::<Int64Array>()
                    .filter(|_| valid)
                    .map(|a| a.value(row)),
            ),
            Kind::Int32 => Cell::Int32(
                any.downcast_ref::<Int32Array>()
                    .filter(|_| valid)
                    .map(|a| a.value(row)),
            ),
            Kind::Float64 => Cell::Float64(
                any.downcast_ref::<Float64Array>()
                    .filter(|_| valid)
                    .map(|a| a.value(row)),
            ),
            Kind::Text => Cell::Text(
                any.downcast_ref::<StringArray>()
                    .filter(|_| valid)
                    .map(|a| a.value(row)),
            ),
            Kind::Millis => Cell::Time(
                any.downcast_ref::<TimestampMillisecondArray>()
                    .filter(|_| valid)
                    .and_then(|a| DateTime::from_timestamp_millis(a.value(row))),
            ),
            Kind::Micros => Cell::Time(
                any.downcast_ref::<TimestampMicrosecondArray>()
                    .filter(|_| valid)
                    .and_then(|a| DateTime::from_timestamp_micros(a.value(row))),
            ),
        }
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Cell::Int64(v) => v.to_sql(ty, out),
            Cell::Int32(v) => v.to_sql(ty, out),
            Cell::Float64(v) => v.to_sql(ty, out),
            Cell::Text(v) => v.to_sql(ty, out),
            Cell::Time(v) => v.to_sql(ty, out),
            Cell::Date(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::INT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::DATE,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_path_names_its_dataset_and_partition() {
        let p = FilePartition::parse(
            "quotes/date=2026-11-23/currency=BTC/kind=option/part-000001.parquet",
        )
        .unwrap();
        assert_eq!(p.dataset, Dataset::Quotes);
        assert_eq!(Some(p.date), NaiveDate::from_ymd_opt(2026, 11, 23));
        assert_eq!((p.currency.as_str(), p.kind.as_str()), ("BTC", "option"));
        for (path, dataset) in [
            (
                "tickers/date=2026-11-23/currency=ETH/kind=option/a.parquet",
                Dataset::Tickers,
            ),
            (
                "trades/date=2026-11-23/currency=BTC/kind=future/b.parquet",
                Dataset::Trades,
            ),
        ] {
            assert_eq!(FilePartition::parse(path).unwrap().dataset, dataset);
        }
        assert!(
            FilePartition::parse("other/date=2026-11-23/currency=BTC/kind=option/x.parquet")
                .is_none()
        );
        assert!(
            FilePartition::parse("quotes/date=someday/currency=BTC/kind=option/x.parquet")
                .is_none()
        );
        assert!(FilePartition::parse("quotes/date=2026-11-23/x.parquet").is_none());
    }

    #[test]
    fn every_column_of_the_written_files_has_a_postgres_type() {
        for dataset in Dataset::ALL {
            let schema = crate::sink::parquet::schema(dataset);
            let columns = columns(&schema).unwrap();
            assert_eq!(columns.len(), schema.fields().len());
            assert!(columns.iter().any(|c| c.name == "exchange_time"));
        }
    }
}
