//! Parquet files partitioned by dataset, date, currency and kind
//! (`tickers/date=2026-11-23/currency=BTC/kind=option/part-….parquet`, zstd).
//!
//! Rows are buffered per partition up to `flush_rows`, sorted by instrument and time (runs of
//! one instrument's prices compress far better than the arrival order) and written as one
//! row group into an open file. A file is written under a hidden temporary name and
//! renamed when it is complete — after `file_interval`, at a new date, or on shutdown — so
//! readers (and a crash at any moment) only ever see whole files. Leftover temporary files
//! from a crash are removed at start; folders older than the retention are deleted.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::SinkError;
use crate::rows::{Dataset, Partition, QuoteRow, Tick, TickerRow, TradeRow};

/// How files are cut.
#[derive(Debug, Clone)]
pub struct ParquetSettings {
    pub root: PathBuf,
    pub flush_rows: usize,
    pub file_interval: Duration,
    pub retention_days: u32,
}

/// Columns with few distinct values (names, states, prices and sizes on a tick grid) are
/// dictionary-encoded; the others (timestamps, IVs, greeks, index prices) are not: their
/// dictionaries would fill up and be thrown away, after costing memory.
const DICTIONARY_COLUMNS: &[&str] = &[
    "instrument",
    "state",
    "underlying_index",
    "direction",
    "liquidation",
    "best_bid_price",
    "best_bid_amount",
    "best_ask_price",
    "best_ask_amount",
    "price",
    "amount",
    "tick_direction",
];

/// What a finished file held.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    pub dataset: Dataset,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

enum Buffer {
    Tickers(Vec<TickerRow>),
    Quotes(Vec<QuoteRow>),
    Trades(Vec<TradeRow>),
}

impl Buffer {
    fn new(dataset: Dataset) -> Self {
        match dataset {
            Dataset::Tickers => Buffer::Tickers(Vec::new()),
            Dataset::Quotes => Buffer::Quotes(Vec::new()),
            Dataset::Trades => Buffer::Trades(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Buffer::Tickers(v) => v.len(),
            Buffer::Quotes(v) => v.len(),
            Buffer::Trades(v) => v.len(),
        }
    }

    fn push(&mut self, tick: Tick) {
        match (self, tick) {
            (Buffer::Tickers(v), Tick::Ticker(r)) => v.push(*r),
            (Buffer::Quotes(v), Tick::Quote(r)) => v.push(r),
            (Buffer::Trades(v), Tick::Trade(r)) => v.push(r),
            _ => unreachable!("a partition holds one dataset"),
        }
    }

    /// The buffered rows, sorted by instrument then time, as one record batch.
    fn take_batch(&mut self) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        if self.len() == 0 {
            return Ok(None);
        }
        let batch = match self {
            Buffer::Tickers(rows) => {
                rows.sort_unstable_by(|a, b| {
                    (&a.instrument, a.exchange_ms).cmp(&(&b.instrument, b.exchange_ms))
                });
                let batch = ticker_batch(rows)?;
                rows.clear();
                batch
            }
            Buffer::Quotes(rows) => {
                rows.sort_unstable_by(|a, b| {
                    (&a.instrument, a.exchange_ms).cmp(&(&b.instrument, b.exchange_ms))
                });
                let batch = quote_batch(rows)?;
                rows.clear();
                batch
            }
            Buffer::Trades(rows) => {
                rows.sort_unstable_by(|a, b| {
                    (&a.instrument, a.exchange_ms).cmp(&(&b.instrument, b.exchange_ms))
                });
                let batch = trade_batch(rows)?;
                rows.clear();
                batch
            }
        };
        Ok(Some(batch))
    }

    fn shrink(&mut self) {
        match self {
            Buffer::Tickers(v) => v.shrink_to(0),
            Buffer::Quotes(v) => v.shrink_to(0),
            Buffer::Trades(v) => v.shrink_to(0),
        }
    }
}

struct OpenFile {
    dataset: Dataset,
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<File>,
    buffer: Buffer,
    opened: Instant,
    rows: u64,
}

/// The open files, one per partition.
pub struct ParquetSink {
    settings: ParquetSettings,
    files: HashMap<Partition, OpenFile>,
    sequence: u64,
    properties: WriterProperties,
}

fn ts_field(name: &str, unit: TimeUnit, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(unit, None), nullable)
}

fn common_fields() -> Vec<Field> {
    vec![
        Field::new("instrument", DataType::Utf8, false),
        ts_field("exchange_time", TimeUnit::Millisecond, false),
        ts_field("local_time", TimeUnit::Microsecond, false),
    ]
}

fn f64_field(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// The columns of each dataset's files (the partition columns live in the path).
pub fn schema(dataset: Dataset) -> SchemaRef {
    let mut fields = common_fields();
    match dataset {
        Dataset::Tickers => {
            fields.push(Field::new("state", DataType::Utf8, true));
            for name in [
                "best_bid_price",
                "best_bid_amount",
                "best_ask_price",
                "best_ask_amount",
                "bid_iv",
                "ask_iv",
                "mark_price",
                "mark_iv",
                "last_price",
                "index_price",
                "underlying_price",
            ] {
                fields.push(f64_field(name));
            }
            fields.push(Field::new("underlying_index", DataType::Utf8, true));
            for name in [
                "open_interest",
                "interest_rate",
                "delta",
                "gamma",
                "vega",
                "theta",
                "rho",
                "current_funding",
                "funding_8h",
                "volume_24h",
            ] {
                fields.push(f64_field(name));
            }
        }
        Dataset::Quotes => {
            for name in [
                "best_bid_price",
                "best_bid_amount",
                "best_ask_price",
                "best_ask_amount",
            ] {
                fields.push(f64_field(name));
            }
        }
        Dataset::Trades => {
            fields.push(Field::new("trade_id", DataType::Utf8, false));
            fields.push(Field::new("trade_seq", DataType::Int64, true));
            fields.push(Field::new("price", DataType::Float64, false));
            fields.push(Field::new("amount", DataType::Float64, false));
            fields.push(Field::new("direction", DataType::Utf8, false));
            for name in ["iv", "index_price", "mark_price"] {
                fields.push(f64_field(name));
            }
            fields.push(Field::new("tick_direction", DataType::Int32, true));
            fields.push(Field::new("liquidation", DataType::Utf8, true));
            fields.push(Field::new("block_trade_id", DataType::Utf8, true));
        }
    }
    Arc::new(Schema::new(fields))
}

fn strings<T>(rows: &[T], f: impl Fn(&T) -> Option<&str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

fn floats<T>(rows: &[T], f: impl Fn(&T) -> Option<f64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Float64Array>())
}

fn common<T>(
    rows: &[T],
    instrument: impl Fn(&T) -> &str,
    exchange_ms: impl Fn(&T) -> i64,
    local_us: impl Fn(&T) -> i64,
) -> Vec<ArrayRef> {
    vec![
        strings(rows, |r| Some(instrument(r))),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(&exchange_ms),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(&local_us),
        )),
    ]
}

fn ticker_batch(rows: &[TickerRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut columns = common(rows, |r| &r.instrument, |r| r.exchange_ms, |r| r.local_us);
    columns.push(strings(rows, |r| r.state.as_deref()));
    let prices: [fn(&TickerRow) -> Option<f64>; 11] = [
        |r| r.best_bid_price,
        |r| r.best_bid_amount,
        |r| r.best_ask_price,
        |r| r.best_ask_amount,
        |r| r.bid_iv,
        |r| r.ask_iv,
        |r| r.mark_price,
        |r| r.mark_iv,
        |r| r.last_price,
        |r| r.index_price,
        |r| r.underlying_price,
    ];
    columns.extend(prices.iter().map(|f| floats(rows, f)));
    columns.push(strings(rows, |r| r.underlying_index.as_deref()));
    let rest: [fn(&TickerRow) -> Option<f64>; 10] = [
        |r| r.open_interest,
        |r| r.interest_rate,
        |r| r.delta,
        |r| r.gamma,
        |r| r.vega,
        |r| r.theta,
        |r| r.rho,
        |r| r.current_funding,
        |r| r.funding_8h,
        |r| r.volume_24h,
    ];
    columns.extend(rest.iter().map(|f| floats(rows, f)));
    RecordBatch::try_new(schema(Dataset::Tickers), columns)
}

fn quote_batch(rows: &[QuoteRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut columns = common(rows, |r| &r.instrument, |r| r.exchange_ms, |r| r.local_us);
    columns.push(floats(rows, |r| r.best_bid_price));
    columns.push(floats(rows, |r| r.best_bid_amount));
    columns.push(floats(rows, |r| r.best_ask_price));
    columns.push(floats(rows, |r| r.best_ask_amount));
    RecordBatch::try_new(schema(Dataset::Quotes), columns)
}

fn trade_batch(rows: &[TradeRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut columns = common(rows, |r| &r.instrument, |r| r.exchange_ms, |r| r.local_us);
    columns.push(strings(rows, |r| Some(r.trade_id.as_str())));
    columns.push(Arc::new(
        rows.iter().map(|r| r.trade_seq).collect::<Int64Array>(),
    ));
    columns.push(floats(rows, |r| Some(r.price)));
    columns.push(floats(rows, |r| Some(r.amount)));
    columns.push(strings(rows, |r| Some(r.direction.as_str())));
    columns.push(floats(rows, |r| r.iv));
    columns.push(floats(rows, |r| r.index_price));
    columns.push(floats(rows, |r| r.mark_price));
    columns.push(Arc::new(
        rows.iter()
            .map(|r| r.tick_direction)
            .collect::<Int32Array>(),
    ));
    columns.push(strings(rows, |r| r.liquidation.as_deref()));
    columns.push(strings(rows, |r| r.block_trade_id.as_deref()));
    RecordBatch::try_new(schema(Dataset::Trades), columns)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ParquetSink {
    /// A sink writing under `settings.root`; temporary files a crash left behind are removed.
    pub fn new(settings: ParquetSettings) -> Result<Self, SinkError> {
        std::fs::create_dir_all(&settings.root).map_err(io(&settings.root))?;
        let removed = remove_temporary_files(&settings.root);
        if removed > 0 {
            tracing::warn!(
                files = removed,
                "removed unfinished Parquet files a crash left behind"
            );
        }
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid level"),
            ))
            .set_max_row_group_row_count(Some(1 << 20))
            .set_data_page_size_limit(64 << 10)
            .set_dictionary_page_size_limit(64 << 10)
            .set_dictionary_enabled(false)
            // Min/max per column chunk (enough for DuckDB to skip row groups by time or
            // instrument); per-page indexes would stay in memory until the file closes.
            .set_statistics_enabled(EnabledStatistics::Chunk);
        for column in DICTIONARY_COLUMNS {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(*column), true);
        }
        for column in ["exchange_time", "local_time", "trade_seq"] {
            properties = properties
                .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
        }
        // Floats without a dictionary: byte-stream-split lets zstd find the repeated exponents.
        for dataset in Dataset::ALL {
            for field in schema(dataset).fields() {
                if field.data_type() == &DataType::Float64
                    && !DICTIONARY_COLUMNS.contains(&field.name().as_str())
                {
                    properties = properties.set_column_encoding(
                        ColumnPath::from(field.name().as_str()),
                        Encoding::BYTE_STREAM_SPLIT,
                    );
                }
            }
        }
        Ok(Self {
            settings,
            files: HashMap::new(),
            sequence: 0,
            properties: properties.build(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.settings.root
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Add one row; a full buffer is encoded into its file.
    pub fn push(&mut self, tick: Tick) -> Result<(), SinkError> {
        // The open files are few (dataset × currency × kind): finding the row's one by
        // comparison saves building (and allocating) its partition key for every row.
        let file = match self.files.iter_mut().find(|(p, _)| p.holds(&tick)) {
            Some((_, file)) => file,
            None => {
                let partition = tick.partition();
                let file = self.open(&partition)?;
                self.files.entry(partition).or_insert(file)
            }
        };
        file.buffer.push(tick);
        file.rows += 1;
        if file.buffer.len() >= self.settings.flush_rows
            && let Err(e) = Self::encode(file)
        {
            // A failed write (a full disk) leaves the writer unusable and the file's bytes in
            // doubt: the file goes, with its rows, and the partition's next row starts a new
            // one (so writing resumes as soon as there is room).
            let tmp = file.tmp.clone();
            let _ = std::fs::remove_file(&tmp);
            self.files.retain(|_, f| f.tmp != tmp);
            return Err(e);
        }
        Ok(())
    }

    fn open(&mut self, partition: &Partition) -> Result<OpenFile, SinkError> {
        let dir = self.settings.root.join(partition.path());
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        self.sequence += 1;
        let name = format!(
            "part-{}-{:04}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%3f"),
            self.sequence % 10_000
        );
        let path = dir.join(format!("{name}.parquet"));
        let tmp = dir.join(format!(".{name}.parquet.tmp"));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let writer = ArrowWriter::try_new(
            file,
            schema(partition.dataset),
            Some(self.properties.clone()),
        )
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SinkError::Parquet {
                path: tmp.display().to_string(),
                source,
            }
        })?;
        Ok(OpenFile {
            dataset: partition.dataset,
            tmp,
            path,
            writer,
            buffer: Buffer::new(partition.dataset),
            opened: Instant::now(),
            rows: 0,
        })
    }

    fn encode(file: &mut OpenFile) -> Result<(), SinkError> {
        let Some(batch) = file.buffer.take_batch()? else {
            return Ok(());
        };
        let parquet = |source| SinkError::Parquet {
            path: file.tmp.display().to_string(),
            source,
        };
        file.writer.write(&batch).map_err(parquet)?;
        // Each batch is a row group of its own: an open row group keeps a zstd context per
        // column (~0.5 MB each; 8 files × 30 columns was 35 MB), a closed one nothing.
        file.writer.flush().map_err(|source| SinkError::Parquet {
            path: file.tmp.display().to_string(),
            source,
        })?;
        Ok(())
    }

    /// Close and publish the files that are old enough, and those of past dates.
    pub fn poll(&mut self, today: NaiveDate) -> Result<Vec<WrittenFile>, SinkError> {
        let interval = self.settings.file_interval;
        let due: Vec<Partition> = self
            .files
            .iter()
            .filter(|(p, f)| f.opened.elapsed() >= interval || p.date < today)
            .map(|(p, _)| p.clone())
            .collect();
        self.finish_all(due)
    }

    /// Close and publish every file (shutdown).
    pub fn close(&mut self) -> Result<Vec<WrittenFile>, SinkError> {
        let all: Vec<Partition> = self.files.keys().cloned().collect();
        self.finish_all(all)
    }

    fn finish_all(&mut self, partitions: Vec<Partition>) -> Result<Vec<WrittenFile>, SinkError> {
        let mut written = Vec::new();
        let mut first_error = None;
        for partition in partitions {
            if let Some(file) = self.files.remove(&partition) {
                match finish(file) {
                    Ok(done) => written.push(done),
                    Err(e) => {
                        tracing::error!(error = %e, "a Parquet file could not be finished; its rows are lost");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) if written.is_empty() => Err(e),
            _ => Ok(written),
        }
    }

    /// Delete date folders older than the retention; returns how many.
    pub fn enforce_retention(&self, today: NaiveDate) -> usize {
        if self.settings.retention_days == 0 {
            return 0;
        }
        let oldest = today - chrono::Days::new(u64::from(self.settings.retention_days));
        let mut removed = 0;
        for dataset in Dataset::ALL {
            let Ok(entries) = std::fs::read_dir(self.settings.root.join(dataset.folder())) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let date = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("date="))
                    .and_then(|d| d.parse::<NaiveDate>().ok());
                if let Some(date) = date
                    && date < oldest
                    && std::fs::remove_dir_all(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }
}

fn finish(mut file: OpenFile) -> Result<WrittenFile, SinkError> {
    let remove_tmp = |file: &OpenFile| {
        let _ = std::fs::remove_file(&file.tmp);
    };
    if let Err(e) = ParquetSink::encode(&mut file) {
        remove_tmp(&file);
        return Err(e);
    }
    file.buffer.shrink();
    let (tmp, path, dataset, rows) = (file.tmp.clone(), file.path.clone(), file.dataset, file.rows);
    let inner = match file.writer.into_inner() {
        Ok(inner) => inner,
        Err(source) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(SinkError::Parquet {
                path: tmp.display().to_string(),
                source,
            });
        }
    };
    // A file that cannot be made durable or renamed is not left behind either.
    let durable = inner.sync_data().map_err(io(&tmp));
    drop(inner);
    if let Err(e) = durable.and_then(|()| std::fs::rename(&tmp, &path).map_err(io(&path))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    Ok(WrittenFile {
        dataset,
        path,
        rows,
        bytes,
    })
}

/// Remove `*.tmp` files under `root` (unfinished files of a process that died).
fn remove_temporary_files(root: &Path) -> usize {
    super::files::under(root, "tmp")
        .into_iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::QuoteRow;

    fn quote(instrument: &str, ms: i64, bid: f64) -> Tick {
        Tick::Quote(QuoteRow {
            instrument: instrument.into(),
            exchange_ms: ms,
            local_us: ms * 1000 + 5,
            best_bid_price: Some(bid),
            best_bid_amount: Some(1.0),
            best_ask_price: Some(bid + 0.0005),
            best_ask_amount: None,
        })
    }

    #[test]
    fn files_appear_only_when_complete_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ParquetSettings {
            root: dir.path().to_path_buf(),
            flush_rows: 2,
            file_interval: Duration::from_secs(3600),
            retention_days: 0,
        };
        let mut sink = ParquetSink::new(settings.clone()).unwrap();
        let day = 1_700_000_000_000;
        for i in 0..5 {
            sink.push(quote("BTC-1DEC23-40000-C", day + i, 0.05))
                .unwrap();
        }
        let visible = |root: &Path| super::super::files::under(root, "parquet").len();
        assert_eq!(visible(dir.path()), 0, "an open file is not visible");
        // A second sink (after a crash) removes the unfinished file.
        drop(sink);
        assert_eq!(remove_temporary_files(dir.path()), 1);
        let mut sink = ParquetSink::new(settings).unwrap();
        for i in 0..3 {
            sink.push(quote("BTC-1DEC23-40000-C", day + i, 0.05))
                .unwrap();
        }
        let written = sink.close().unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].rows, 3);
        assert_eq!(visible(dir.path()), 1);
        let path = written[0].path.to_string_lossy().to_string();
        assert!(
            path.contains("quotes/date=2023-11-14/currency=BTC/kind=option/part-"),
            "{path}"
        );
    }

    #[test]
    fn retention_removes_old_dates_only() {
        let dir = tempfile::tempdir().unwrap();
        for date in ["2026-01-01", "2026-01-09", "2026-01-10"] {
            std::fs::create_dir_all(dir.path().join(format!("quotes/date={date}/currency=BTC")))
                .unwrap();
        }
        let sink = ParquetSink::new(ParquetSettings {
            root: dir.path().to_path_buf(),
            flush_rows: 10,
            file_interval: Duration::from_secs(60),
            retention_days: 2,
        })
        .unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 1, 11).unwrap();
        assert_eq!(sink.enforce_retention(today), 1);
        assert!(!dir.path().join("quotes/date=2026-01-01").exists());
        assert!(dir.path().join("quotes/date=2026-01-09").exists());
    }
}
