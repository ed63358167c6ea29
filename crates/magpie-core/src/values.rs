//! Turning DuckDB result values into JSON and text, for `magpie sql`, CSV export and the
//! JSON API: one place that knows how each SQL type should look.
//!
//! ```
//! use duckdb::types::Value;
//! use magpie_core::values::{to_json, to_text};
//! assert_eq!(to_text(&Value::Date32(0)), "1970-01-01");
//! assert_eq!(to_json(&Value::BigInt(7)), serde_json::json!(7));
//! ```

use chrono::{DateTime, NaiveDate, NaiveTime};
use duckdb::types::{TimeUnit, Value};
use serde_json::{Map, Number, Value as Json};

fn micros(unit: TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    }
}

fn timestamp_text(unit: TimeUnit, v: i64) -> String {
    match DateTime::from_timestamp_micros(micros(unit, v)) {
        Some(t) if t.timestamp_subsec_micros() == 0 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => v.to_string(),
    }
}

fn date_text(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

fn time_text(unit: TimeUnit, v: i64) -> String {
    let us = micros(unit, v);
    NaiveTime::from_num_seconds_from_midnight_opt(
        (us / 1_000_000) as u32,
        ((us % 1_000_000) * 1000) as u32,
    )
    .map_or_else(|| v.to_string(), |t| t.format("%H:%M:%S").to_string())
}

fn float(v: f64) -> Json {
    Number::from_f64(v).map_or(Json::Null, Json::Number)
}

/// A value as JSON: numbers stay numbers (128-bit ones become strings), times ISO text.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::TinyInt(v) => Json::from(*v),
        Value::SmallInt(v) => Json::from(*v),
        Value::Int(v) => Json::from(*v),
        Value::BigInt(v) => Json::from(*v),
        Value::UTinyInt(v) => Json::from(*v),
        Value::USmallInt(v) => Json::from(*v),
        Value::UInt(v) => Json::from(*v),
        Value::UBigInt(v) => Json::from(*v),
        Value::HugeInt(v) => {
            i64::try_from(*v).map_or_else(|_| Json::String(v.to_string()), Json::from)
        }
        Value::UHugeInt(v) => {
            u64::try_from(*v).map_or_else(|_| Json::String(v.to_string()), Json::from)
        }
        Value::Float(v) => float(f64::from(*v)),
        Value::Double(v) => float(*v),
        Value::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .map_or_else(|_| Json::String(d.to_string()), float),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (to_text(k), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Union(inner) => to_json(inner),
        other => Json::String(to_text(other)),
    }
}

/// A value as text, the way a person expects to read it in a table or CSV cell.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Timestamp(unit, v) => timestamp_text(*unit, *v),
        Value::Date32(d) => date_text(*d),
        Value::Time64(unit, v) => time_text(*unit, *v),
        Value::Interval {
            months,
            days,
            nanos,
        } => format!("{months} months {days} days {}s", *nanos as f64 / 1e9),
        Value::Blob(b) | Value::Geometry(b) => format!("\\x{}", hex::encode(b)),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::HugeInt(v) => v.to_string(),
        Value::UHugeInt(v) => v.to_string(),
        Value::Boolean(_)
        | Value::TinyInt(_)
        | Value::SmallInt(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::UTinyInt(_)
        | Value::USmallInt(_)
        | Value::UInt(_)
        | Value::UBigInt(_)
        | Value::List(_)
        | Value::Array(_)
        | Value::Struct(_)
        | Value::Map(_)
        | Value::Union(_) => match to_json(value) {
            Json::String(s) => s,
            other => other.to_string(),
        },
        other => format!("{other:?}"),
    }
}

/// A query's result: column names and rows of values.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Run a query and collect at most `limit` rows (for interactive use); whether more rows
/// were left.
pub fn query(
    conn: &duckdb::Connection,
    sql: &str,
    limit: usize,
) -> duckdb::Result<(ResultSet, bool)> {
    let mut result = ResultSet::default();
    let mut truncated = false;
    stream(conn, sql, |event| {
        match event {
            Streamed::Columns(names) => result.columns = names.to_vec(),
            Streamed::Row(_) if result.rows.len() == limit => {
                truncated = true;
                return Ok::<_, duckdb::Error>(false);
            }
            Streamed::Row(row) => result.rows.push(row.to_vec()),
        }
        Ok(true)
    })?;
    Ok((result, truncated))
}

/// What [`stream`] hands over: the column names once, then each row.
#[derive(Debug)]
pub enum Streamed<'a> {
    Columns(&'a [String]),
    Row(&'a [Value]),
}

/// Run a query and hand each row to `sink` as DuckDB produces it, keeping none of them, so
/// output of any size (`magpie sql --format csv`, downloads) runs in constant memory. The
/// column names come first (before the first row, or after the query when it has none);
/// `sink` returns whether to go on. The rows read.
pub fn stream<E: From<duckdb::Error>>(
    conn: &duckdb::Connection,
    sql: &str,
    sink: impl FnMut(Streamed<'_>) -> Result<bool, E>,
) -> Result<u64, E> {
    stream_params(conn, sql, &[], sink)
}

/// [`stream`] with `params` bound to the query's `?` placeholders.
pub fn stream_params<E: From<duckdb::Error>>(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[Value],
    mut sink: impl FnMut(Streamed<'_>) -> Result<bool, E>,
) -> Result<u64, E> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(duckdb::params_from_iter(params.iter()))?;
    let mut read = 0u64;
    let mut told = false;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        let statement = row.as_ref();
        if !told {
            told = true;
            if !sink(Streamed::Columns(&statement.column_names()))? {
                return Ok(read);
            }
        }
        values.clear();
        for i in 0..statement.column_count() {
            // A column of untyped NULLs (`SELECT NULL`) has Arrow's Null type, which the
            // duckdb crate cannot read (it panics): every value in it is NULL.
            if statement.column_type(i) == duckdb::arrow::datatypes::DataType::Null {
                values.push(Value::Null);
            } else {
                values.push(row.get::<_, Value>(i)?);
            }
        }
        read += 1;
        if !sink(Streamed::Row(&values))? {
            break;
        }
    }
    drop(rows);
    if !told {
        sink(Streamed::Columns(&stmt.column_names()))?;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_reads_untyped_nulls_beside_typed_values() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let (result, truncated) = query(
            &conn,
            "SELECT NULL AS nothing, 1 AS one, NULL::VARCHAR AS text",
            10,
        )
        .unwrap();
        assert!(!truncated);
        assert_eq!(result.columns, ["nothing", "one", "text"]);
        assert_eq!(
            result.rows,
            vec![vec![Value::Null, Value::Int(1), Value::Null]]
        );
    }
}
