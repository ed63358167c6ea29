//! The warehouse's views over the Parquet files: `market.option_ticks`,
//! `market.future_ticks`, `market.quotes` and `market.trades`, each with the partition
//! columns `date`, `currency` and `kind`. A dataset without files yet gets an empty view of
//! the same columns, so queries work from the first start.

use std::path::Path;

use duckdb::Connection;

use crate::rows::Dataset;

const OPTION_COLUMNS: &str = "instrument, exchange_time, local_time, date, currency, kind, state, best_bid_price, best_bid_amount, best_ask_price, best_ask_amount, bid_iv, ask_iv, mark_price, mark_iv, last_price, index_price, underlying_price, underlying_index, open_interest, interest_rate, delta, gamma, vega, theta, rho, volume_24h";
const FUTURE_COLUMNS: &str = "instrument, exchange_time, local_time, date, currency, kind, state, best_bid_price, best_bid_amount, best_ask_price, best_ask_amount, mark_price, last_price, index_price, open_interest, current_funding, funding_8h, volume_24h";

/// Whether `dataset` has at least one finished file under `root`.
pub fn has_files(root: &Path, dataset: Dataset) -> bool {
    !crate::sink::files::under(&root.join(dataset.folder()), "parquet").is_empty()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `FROM` of a dataset: its files, or an empty relation with its columns.
fn source(root: &Path, dataset: Dataset) -> String {
    if has_files(root, dataset) {
        // Absolute: the view must work from any working directory.
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let glob = root.join(dataset.folder()).join("**").join("*.parquet");
        format!(
            "read_parquet({}, hive_partitioning = true, union_by_name = true)",
            quote(&glob.to_string_lossy())
        )
    } else {
        let schema = crate::sink::parquet::schema(dataset);
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    arrow::datatypes::DataType::Utf8 => "VARCHAR",
                    arrow::datatypes::DataType::Float64 => "DOUBLE",
                    arrow::datatypes::DataType::Int64 => "BIGINT",
                    arrow::datatypes::DataType::Int32 => "INTEGER",
                    _ => "TIMESTAMP",
                };
                format!("NULL::{ty} AS {}", f.name())
            })
            .chain([
                "NULL::DATE AS date".to_string(),
                "NULL::VARCHAR AS currency".to_string(),
                "NULL::VARCHAR AS kind".to_string(),
            ])
            .collect();
        format!("(SELECT {} WHERE false)", columns.join(", "))
    }
}

/// (Re)create the views over the files under `root`.
pub fn create(conn: &Connection, root: &Path) -> duckdb::Result<()> {
    let tickers = source(root, Dataset::Tickers);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS market;
         CREATE OR REPLACE VIEW market.option_ticks AS SELECT {OPTION_COLUMNS} FROM {tickers} WHERE kind = 'option';
         CREATE OR REPLACE VIEW market.future_ticks AS SELECT {FUTURE_COLUMNS} FROM {tickers} WHERE kind = 'future';
         CREATE OR REPLACE VIEW market.quotes AS SELECT * FROM {};
         CREATE OR REPLACE VIEW market.trades AS SELECT * FROM {};",
        source(root, Dataset::Quotes),
        source(root, Dataset::Trades),
    );
    conn.execute_batch(&sql)
}
