//! The fake Deribit as a process, for `scripts/bench-market.sh`: serves the recorded
//! instrument lists (grown to `--per-currency` options each), waits until a collector has
//! subscribed every channel, then sends `--messages` notifications per data connection as fast
//! as the collector reads them (half quotes, half tickers built from a recorded ticker).
//!
//! `cargo run --release -p magpie-market --example fake_deribit -- CAPTURE_DIR [--per-currency 774] [--messages 500000] [--rate 0]`
//! (`--rate N`: N messages a second per connection instead of full speed)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use magpie_fakes::deribit::{self as fake, FakeDeribit};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir =
        PathBuf::from(args.next().ok_or(
            "usage: fake_deribit CAPTURE_DIR [--per-currency N] [--messages N] [--rate N]",
        )?);
    let (mut per_currency, mut messages, mut rate) = (774usize, 500_000usize, 0usize);
    while let Some(flag) = args.next() {
        let value: usize = args.next().ok_or("a flag needs a value")?.parse()?;
        match flag.as_str() {
            "--per-currency" => per_currency = value,
            "--messages" => messages = value,
            "--rate" => rate = value,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let recorded = fake::instruments_from_capture(&dir.join("DERIBIT.0"))?;
    let mut instruments = Vec::new();
    for currency in ["BTC", "ETH"] {
        instruments.extend(fake::scale_options(&recorded, currency, per_currency));
        instruments.extend(
            recorded
                .iter()
                .filter(|i| {
                    i["kind"] == "future"
                        && magpie_market::rows::currency_of(
                            i["instrument_name"].as_str().unwrap_or(""),
                        ) == currency
                })
                .cloned(),
        );
    }
    let wanted = instruments
        .iter()
        .filter(|i| i["kind"] == "option" || i["settlement_period"] == "perpetual")
        .count();
    let template = fake::notifications_from_capture(&dir.join("DERIBIT.ws.1.0"))?
        .into_iter()
        .find(|n| {
            n["params"]["channel"]
                .as_str()
                .is_some_and(|c| c.starts_with("ticker."))
        })
        .ok_or("no ticker in the capture")?["params"]["data"]
        .clone();
    let server = FakeDeribit::start(0, instruments).await?;
    println!("url {}", server.url());
    println!("instruments {wanted}");
    // Every wanted instrument's quote channel subscribed, and nothing new for a second.
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let quotes = server
            .subscriptions()
            .values()
            .flatten()
            .filter(|c| c.starts_with("quote."))
            .count();
        if quotes != last.0 {
            last = (quotes, Instant::now());
        } else if quotes >= wanted && last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    println!("subscribed {} quote channels", last.0);
    let start_ms = chrono::Utc::now().timestamp_millis();
    let mut seed = 0;
    let connections = server.blast_feeds(messages, rate, |names, count| {
        seed += 1;
        fake::generate_feed(names, count, &template, start_ms, seed)
    });
    let began = Instant::now();
    while server.blasts_done() < connections as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "sent {} messages on {connections} connections in {:.2} s",
        messages * connections,
        began.elapsed().as_secs_f64()
    );
    // Stay up until killed, so the collector is not disconnected while it finishes.
    std::future::pending::<()>().await;
    Ok(())
}
