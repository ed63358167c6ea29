//! Loads the closed Parquet files of a market folder into PostgreSQL, as the collector's
//! PostgreSQL copy does, and prints how fast (files, rows, seconds, rows per second):
//!
//! ```text
//! cargo run --release -p magpie-market --example postgres_load -- DATA_DIR/market postgres://user:pw@host/db
//! ```
//!
//! Files already loaded (in `market.loaded_files`) are skipped, so a second run loads nothing.

use std::path::PathBuf;
use std::time::Instant;

use magpie_market::sink::postgres::PostgresLoader;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: postgres_load MARKET_DIR POSTGRES_URL");
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut loader = PostgresLoader::connect(&url).await?;
    let loaded = loader.load_new(&PathBuf::from(root)).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "loaded {} files, {} rows in {seconds:.2} s: {:.0} rows/s (hypertables: {})",
        loaded.files,
        loaded.rows,
        loaded.rows as f64 / seconds,
        loader.hypertables()
    );
    Ok(())
}
