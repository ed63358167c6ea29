//! What the collector reports: coverage per currency, connection figures, readiness (published
//! to the [`MarketHandle`](crate::status::MarketHandle) every second and as metrics), and the
//! run's summary.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use chrono::Utc;

use super::Summary;
use super::lifecycle::Manager;
use crate::rows::Dataset;
use crate::status::{ConnectionStatus, CurrencyStatus, MarketStatus, RowCounts};

impl Manager {
    fn coverage(&self) -> Vec<CurrencyStatus> {
        let mut per: BTreeMap<&str, (usize, usize)> = self
            .plan
            .currencies
            .iter()
            .map(|c| (c.as_str(), (0, 0)))
            .collect();
        for book in self.book.values() {
            if !book.active || book.channels.is_empty() {
                continue;
            }
            let entry = per.entry(book.currency.as_str()).or_default();
            entry.0 += 1;
            if book.channels.iter().all(|c| self.registry.is_accepted(c)) {
                entry.1 += 1;
            }
        }
        let lag = self.writer_stats.lag();
        per.into_iter()
            .map(|(currency, (active, subscribed))| {
                let coverage = if active == 0 { 1.0 } else { subscribed as f64 / active as f64 };
                metrics::gauge!("magpie_market_coverage_ratio", "currency" => currency.to_string()).set(coverage);
                metrics::gauge!("magpie_market_active_instruments", "currency" => currency.to_string()).set(active as f64);
                let l = lag.get(currency);
                CurrencyStatus {
                    currency: currency.to_string(),
                    active_instruments: active,
                    subscribed_instruments: subscribed,
                    coverage,
                    lag_ms: l.map(|l| l.last_ms),
                    lag_max_ms: l.map(|l| l.max_ms),
                }
            })
            .collect()
    }

    pub(super) fn publish_status(&mut self) {
        let now = std::time::Instant::now();
        let now_us = Utc::now().timestamp_micros();
        if self.previous_messages.len() != self.stats.len() {
            self.previous_messages = vec![(0, now); self.stats.len()];
        }
        let connections: Vec<ConnectionStatus> = self
            .stats
            .iter()
            .enumerate()
            .map(|(id, s)| {
                let messages = s.messages.load(Ordering::Relaxed);
                let (before, at) = self.previous_messages[id];
                let seconds = now.duration_since(at).as_secs_f64().max(1e-3);
                self.previous_messages[id] = (messages, now);
                let last = s.last_message_us.load(Ordering::Relaxed);
                let connected = s.connected.load(Ordering::Relaxed);
                let reconnects = s.reconnects.load(Ordering::Relaxed);
                let label = id.to_string();
                metrics::gauge!("magpie_market_connected", "connection" => label.clone())
                    .set(if connected { 1.0 } else { 0.0 });
                metrics::gauge!("magpie_market_messages_received", "connection" => label.clone())
                    .set(messages as f64);
                metrics::gauge!("magpie_market_reconnects", "connection" => label)
                    .set(reconnects as f64);
                ConnectionStatus {
                    id,
                    role: if id == 0 { "lifecycle" } else { "data" },
                    connected,
                    subscribed_channels: s.subscribed.load(Ordering::Relaxed),
                    assigned_channels: s.assigned.load(Ordering::Relaxed),
                    messages_per_second: (messages.saturating_sub(before)) as f64 / seconds,
                    last_message_age_secs: (last > 0).then(|| (now_us - last).max(0) as f64 / 1e6),
                    reconnects,
                    messages,
                    malformed: s.malformed.load(Ordering::Relaxed),
                }
            })
            .collect();
        let currencies = self.coverage();
        let low = currencies
            .iter()
            .find(|c| c.coverage < self.config.min_coverage);
        let now_utc = Utc::now();
        let not_ready = match low {
            Some(c) => {
                let since = *self.low_since.get_or_insert(now_utc);
                let grace =
                    chrono::Duration::from_std(self.config.coverage_grace).unwrap_or_default();
                (now_utc - since >= grace).then(|| {
                    format!(
                        "{} coverage {:.1}% ({} of {} instruments) below {:.0}% since {}",
                        c.currency,
                        c.coverage * 100.0,
                        c.subscribed_instruments,
                        c.active_instruments,
                        self.config.min_coverage * 100.0,
                        since.format("%H:%M:%S UTC")
                    )
                })
            }
            None => {
                self.low_since = None;
                None
            }
        };
        let w = &self.writer_stats;
        let status = MarketStatus {
            enabled: true,
            running: true,
            started_at: Some(self.started),
            url: self.config.url.clone(),
            connections,
            currencies,
            channels_wanted: self.registry.wanted_count(),
            channels_subscribed: self.registry.accepted_count(),
            channels_rejected: self.registry.rejected().len(),
            rows: RowCounts {
                tickers: w.rows(Dataset::Tickers),
                quotes: w.rows(Dataset::Quotes),
                trades: w.rows(Dataset::Trades),
            },
            files_written: w.files.load(Ordering::Relaxed),
            bytes_written: w.bytes.load(Ordering::Relaxed),
            write_errors: w.errors.load(Ordering::Relaxed),
            queue_used: self
                .config
                .queue_capacity
                .saturating_sub(self.queue_probe.capacity()),
            queue_capacity: self.config.queue_capacity,
            coverage_low_since: self.low_since,
            reconciled_at: self.reconciled_at,
            not_ready,
            parquet_dir: self.root.display().to_string(),
            // Filled in by the handle from the PostgreSQL loader's own report.
            postgres: None,
        };
        metrics::gauge!("magpie_market_queue_used").set(status.queue_used as f64);
        self.handle.publish(status);
    }

    pub(super) fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let mut first = i64::MAX;
        let mut last = 0;
        for stats in &self.stats {
            s.data_messages += stats.data_messages.load(Ordering::Relaxed);
            s.malformed += stats.malformed.load(Ordering::Relaxed);
            s.reconnects += stats.reconnects.load(Ordering::Relaxed);
            let f = stats.first_data_us.load(Ordering::Relaxed);
            if f > 0 {
                first = first.min(f);
                last = last.max(stats.last_message_us.load(Ordering::Relaxed));
            }
        }
        if first < last {
            s.data_seconds = (last - first) as f64 / 1e6;
        }
        s
    }
}
