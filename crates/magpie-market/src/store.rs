//! The collector's tables in the warehouse (migration 6): `market.instrument_metadata`,
//! `market.lifecycle_events` and `market.disconnects`. Each call is one transaction.

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::{Connection, params};
use magpie_core::warehouse::in_transaction;

use crate::deribit::wire::Instrument;

/// The kinds of lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    InstrumentListed,
    InstrumentExpired,
    SubscriptionAdded,
    SubscriptionRemoved,
    SubscriptionRejected,
    Reconcile,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InstrumentListed => "instrument_listed",
            EventType::InstrumentExpired => "instrument_expired",
            EventType::SubscriptionAdded => "subscription_added",
            EventType::SubscriptionRemoved => "subscription_removed",
            EventType::SubscriptionRejected => "subscription_rejected",
            EventType::Reconcile => "reconcile",
        }
    }
}

/// One row of `market.lifecycle_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    pub time: DateTime<Utc>,
    pub event_type: EventType,
    pub currency: Option<String>,
    pub instrument: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub detail: Option<String>,
}

impl LifecycleEvent {
    pub fn new(event_type: EventType, currency: Option<&str>, instrument: Option<&str>) -> Self {
        Self {
            time: Utc::now(),
            event_type,
            currency: currency.map(str::to_string),
            instrument: instrument.map(str::to_string),
            success: true,
            error: None,
            detail: None,
        }
    }

    pub fn failed(mut self, error: impl Into<String>) -> Self {
        self.success = false;
        self.error = Some(error.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// What a reconcile found for one currency and kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// Not known before (or known as inactive).
    pub listed: Vec<String>,
    /// Known as active, absent from the exchange's list now.
    pub expired: Vec<String>,
}

fn naive(ms: Option<i64>) -> Option<NaiveDateTime> {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| t.naive_utc())
}

/// Record `instruments` (the exchange's full list for `currency` and `kind`) and mark the
/// known ones that are missing from it inactive.
pub fn reconcile(
    conn: &Connection,
    currency: &str,
    kind: &str,
    instruments: &[Instrument],
    now: DateTime<Utc>,
) -> duckdb::Result<Diff> {
    in_transaction(conn, || {
        let mut known = std::collections::HashMap::<String, bool>::new();
        {
            let mut stmt = conn.prepare(
                "SELECT instrument_name, is_active FROM market.instrument_metadata WHERE currency = ? AND kind = ?",
            )?;
            let rows = stmt.query_map(params![currency, kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (name, active): (String, bool) = row?;
                known.insert(name, active);
            }
        }
        let mut diff = Diff::default();
        let listed_now: std::collections::HashSet<&str> = instruments
            .iter()
            .map(|i| i.instrument_name.as_str())
            .collect();
        for instrument in instruments {
            if instrument.is_active && known.get(&instrument.instrument_name) != Some(&true) {
                diff.listed.push(instrument.instrument_name.clone());
            }
        }
        upsert(conn, currency, instruments, now)?;
        diff.expired = known
            .into_iter()
            .filter(|(name, active)| *active && !listed_now.contains(name.as_str()))
            .map(|(name, _)| name)
            .collect();
        diff.expired.sort();
        deactivate(conn, &diff.expired, None, now)?;
        Ok(diff)
    })
}

/// Upsert `instruments` in bulk: appended to a temporary table, then merged with one
/// statement (1,500 single-row upserts took 2 s and 20 MB of DuckDB's memory; this takes
/// milliseconds).
fn upsert(
    conn: &Connection,
    currency: &str,
    instruments: &[Instrument],
    now: DateTime<Utc>,
) -> duckdb::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS instrument_incoming AS
            SELECT * EXCLUDE (state) FROM market.instrument_metadata LIMIT 0;
         DELETE FROM instrument_incoming;",
    )?;
    let now = now.naive_utc();
    {
        let mut appender =
            conn.appender_to_catalog_and_db("instrument_incoming", "temp", "main")?;
        for i in instruments {
            appender.append_row(params![
                i.instrument_name,
                i.instrument_id,
                currency,
                i.kind,
                i.settlement_period,
                i.option_type,
                i.strike,
                i.base_currency,
                i.quote_currency,
                i.settlement_currency,
                i.tick_size,
                i.contract_size,
                i.min_trade_amount,
                naive(i.creation_timestamp),
                naive(i.expiration_timestamp),
                i.is_active,
                now,
                now,
                i.record.to_string(),
            ])?;
        }
        appender.flush()?;
    }
    conn.execute_batch(
        "INSERT INTO market.instrument_metadata BY NAME (SELECT * FROM instrument_incoming)
         ON CONFLICT (instrument_name) DO UPDATE SET
            instrument_id = excluded.instrument_id, settlement_period = excluded.settlement_period,
            tick_size = excluded.tick_size, contract_size = excluded.contract_size,
            min_trade_amount = excluded.min_trade_amount, expiration_time = excluded.expiration_time,
            is_active = excluded.is_active, last_seen = excluded.last_seen, record = excluded.record;
         DELETE FROM instrument_incoming;",
    )
}

/// A newly created instrument (from `instrument.creation`); true when it was not known.
pub fn listed(
    conn: &Connection,
    currency: &str,
    instrument: &Instrument,
    now: DateTime<Utc>,
) -> duckdb::Result<bool> {
    in_transaction(conn, || {
        let known: i64 = conn.query_row(
            "SELECT count(*) FROM market.instrument_metadata WHERE instrument_name = ? AND is_active",
            [&instrument.instrument_name],
            |r| r.get(0),
        )?;
        upsert(conn, currency, std::slice::from_ref(instrument), now)?;
        Ok(known == 0)
    })
}

/// Instruments that stopped trading (state `state` when an `instrument.state` said so).
pub fn deactivate(
    conn: &Connection,
    names: &[String],
    state: Option<&str>,
    now: DateTime<Utc>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "UPDATE market.instrument_metadata SET is_active = false, state = coalesce(?, state), last_seen = ?
         WHERE instrument_name = ?",
    )?;
    for name in names {
        stmt.execute(params![state, now.naive_utc(), name])?;
    }
    Ok(())
}

/// The latest state of an instrument that trades on.
pub fn set_state(conn: &Connection, name: &str, state: &str) -> duckdb::Result<()> {
    conn.execute(
        "UPDATE market.instrument_metadata SET state = ? WHERE instrument_name = ?",
        params![state, name],
    )?;
    Ok(())
}

/// Append lifecycle events (thousands at start-up: one per subscribed channel).
pub fn record_events(conn: &Connection, events: &[LifecycleEvent]) -> duckdb::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut appender = conn.appender_with_columns_to_db(
        "lifecycle_events",
        "market",
        &[
            "event_time",
            "event_type",
            "currency",
            "instrument_name",
            "success",
            "error",
            "detail",
        ],
    )?;
    for e in events {
        appender.append_row(params![
            e.time.naive_utc(),
            e.event_type.as_str(),
            e.currency,
            e.instrument,
            e.success,
            e.error,
            e.detail,
        ])?;
    }
    appender.flush()
}

/// A connection (or, with -1, the collector) stopped receiving at `at`.
pub fn disconnected(
    conn: &Connection,
    connection: i32,
    at: DateTime<Utc>,
    reason: &str,
) -> duckdb::Result<()> {
    conn.execute(
        "INSERT INTO market.disconnects (connection, disconnected_at, reason) VALUES (?, ?, ?)",
        params![connection, at.naive_utc(), reason],
    )?;
    Ok(())
}

/// `connection`'s open interval (or every open one, with `None`) ends at `at`.
pub fn reconnected(
    conn: &Connection,
    connection: Option<i32>,
    at: DateTime<Utc>,
) -> duckdb::Result<usize> {
    conn.execute(
        "UPDATE market.disconnects SET reconnected_at = ?
         WHERE reconnected_at IS NULL AND (? IS NULL OR connection = ?)",
        params![at.naive_utc(), connection, connection],
    )
}

/// Delete lifecycle events and closed gaps older than `before` (the market data's retention);
/// returns how many rows went.
pub fn prune(conn: &Connection, before: DateTime<Utc>) -> duckdb::Result<usize> {
    let before = before.naive_utc();
    let events = conn.execute(
        "DELETE FROM market.lifecycle_events WHERE event_time < ?",
        params![before],
    )?;
    let gaps = conn.execute(
        "DELETE FROM market.disconnects WHERE reconnected_at < ?",
        params![before],
    )?;
    Ok(events + gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_recent_events_and_open_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse =
            magpie_core::Warehouse::open(dir.path().join("w.duckdb"), &Default::default()).unwrap();
        let conn = warehouse.conn();
        let now = Utc::now();
        let old = now - chrono::Duration::days(40);
        let mut stale = LifecycleEvent::new(
            EventType::SubscriptionAdded,
            Some("BTC"),
            Some("BTC-PERPETUAL"),
        );
        stale.time = old;
        let fresh = LifecycleEvent::new(EventType::Reconcile, Some("BTC"), None).failed("timeout");
        record_events(conn, &[stale, fresh]).unwrap();
        disconnected(conn, 1, old, "closed by the server").unwrap();
        reconnected(conn, Some(1), old + chrono::Duration::seconds(3)).unwrap();
        disconnected(conn, 2, old, "still down").unwrap();
        assert_eq!(prune(conn, now - chrono::Duration::days(30)).unwrap(), 2);
        let left: (i64, i64, String) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM market.lifecycle_events), (SELECT count(*) FROM market.disconnects),
                        (SELECT error FROM market.lifecycle_events)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(left, (1, 1, "timeout".to_string()));
    }
}
