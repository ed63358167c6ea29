//! The instrument lifecycle: instrument lists fetched and reconciled with the warehouse,
//! listings subscribed, settlements unsubscribed, every connection event applied to the
//! registry and written to `market.lifecycle_events`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use magpie_core::config::MarketConfig;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Timings, blocking};
use crate::MarketError;
use crate::deribit::connection::{CallError, Command, ConnectionStats, Event};
use crate::deribit::wire::Instrument;
use crate::plan::{Plan, instrument_of};
use crate::registry::{Assignments, Registry};
use crate::rows::{Dataset, currency_of};
use crate::sink::parquet::WrittenFile;
use crate::sink::writer::WriterStats;
use crate::status::MarketHandle;
use crate::store::{self, EventType, LifecycleEvent};
use crate::views;

pub(super) struct Book {
    pub(super) currency: String,
    pub(super) active: bool,
    /// Its per-instrument channels when it is collected.
    pub(super) channels: Vec<String>,
}

/// What the instrument-list task reports.
pub(super) enum Fetched {
    List {
        currency: String,
        kind: &'static str,
        result: Result<Vec<Instrument>, String>,
    },
    /// Every currency and kind was asked.
    Done,
}

/// The lifecycle's state: the plan, the registry, the instrument book and what is waiting to
/// be written.
pub(super) struct Manager {
    pub(super) plan: Plan,
    pub(super) registry: Registry,
    pub(super) book: HashMap<String, Book>,
    pub(super) commands: Vec<mpsc::UnboundedSender<Command>>,
    pub(super) stats: Vec<Arc<ConnectionStats>>,
    pub(super) writer_stats: Arc<WriterStats>,
    pub(super) db: Arc<Mutex<Connection>>,
    pub(super) root: PathBuf,
    pub(super) handle: MarketHandle,
    pub(super) config: MarketConfig,
    pub(super) timings: Timings,
    pub(super) pending_events: Vec<LifecycleEvent>,
    pub(super) down_since: HashMap<usize, DateTime<Utc>>,
    pub(super) views_live: HashSet<Dataset>,
    pub(super) previous_messages: Vec<(u64, std::time::Instant)>,
    pub(super) low_since: Option<DateTime<Utc>>,
    pub(super) reconciled_at: Option<DateTime<Utc>>,
    pub(super) pruned_at: Option<std::time::Instant>,
    pub(super) started: DateTime<Utc>,
    pub(super) queue_probe: mpsc::Sender<crate::rows::Tick>,
}

impl Manager {
    pub(super) async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut files: mpsc::UnboundedReceiver<WrittenFile>,
        shutdown: CancellationToken,
    ) -> Result<(), MarketError> {
        // Lifecycle channels on connection 0, per-kind data channels on the data connections.
        let lifecycle: Vec<String> = self
            .plan
            .currencies
            .iter()
            .flat_map(|c| self.plan.lifecycle_channels(c))
            .collect();
        let _ = self.commands[0].send(Command::Subscribe(lifecycle));
        let kind_channels: Vec<String> = self
            .plan
            .currencies
            .iter()
            .flat_map(|c| self.plan.kind_channels(c))
            .collect();
        let assignments = self.registry.want(kind_channels);
        self.send(assignments, Command::Subscribe);

        let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel::<Fetched>();
        let mut fetching = Some(self.spawn_fetch(fetched_tx.clone(), shutdown.clone()));
        let mut reconcile = tokio::time::interval_at(
            tokio::time::Instant::now() + self.config.reconcile_every,
            self.config.reconcile_every,
        );
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(self.timings.status_every);
        let mut reconcile_soon = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    reconcile_soon |= self.on_event(event);
                    while let Ok(event) = events.try_recv() {
                        reconcile_soon |= self.on_event(event);
                    }
                }
                fetched = fetched_rx.recv() => {
                    if let Some(fetched) = fetched {
                        self.on_fetched(fetched).await?;
                    }
                }
                file = files.recv() => {
                    if let Some(file) = file
                        && self.views_live.insert(file.dataset)
                    {
                        let root = self.root.clone();
                        blocking(&self.db, move |conn| views::create(conn, &root)).await?;
                    }
                }
                _ = reconcile.tick() => reconcile_soon = true,
                _ = tick.tick() => {
                    self.flush_events().await?;
                    self.publish_status();
                }
            }
            let idle = fetching.as_ref().is_none_or(|f| f.is_finished());
            if reconcile_soon && idle {
                reconcile_soon = false;
                fetching = Some(self.spawn_fetch(fetched_tx.clone(), shutdown.clone()));
            }
        }
        if let Some(f) = fetching {
            f.abort();
        }
        self.publish_status();
        Ok(())
    }

    fn send(&self, assignments: Assignments, make: fn(Vec<String>) -> Command) {
        for (conn, channels) in assignments {
            if !channels.is_empty() {
                let _ = self.commands[conn].send(make(channels));
            }
        }
    }

    /// Ask `get_instruments` for every currency and kind, one call per `instruments_gap`.
    fn spawn_fetch(
        &self,
        tx: mpsc::UnboundedSender<Fetched>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let control = self.commands[0].clone();
        let plan = self.plan.clone();
        let gap = self.timings.instruments_gap;
        tokio::spawn(async move {
            for currency in &plan.currencies {
                for kind in plan.api_kinds() {
                    let mut waited = 0;
                    let result = loop {
                        let (reply_tx, reply_rx) = oneshot::channel();
                        let call = Command::Call {
                            method: "public/get_instruments".into(),
                            params: serde_json::json!({ "currency": currency, "kind": kind, "expired": false }),
                            reply: reply_tx,
                        };
                        if control.send(call).is_err() {
                            return;
                        }
                        let answer = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            answer = tokio::time::timeout(Duration::from_secs(30), reply_rx) => answer,
                        };
                        match answer {
                            Ok(Ok(Ok(raw))) => {
                                break serde_json::value::RawValue::from_string(raw)
                                    .and_then(|raw| Instrument::list_from(&raw))
                                    .map_err(|e| {
                                        format!("unreadable get_instruments result: {e}")
                                    });
                            }
                            Ok(Ok(Err(CallError::Rpc(e)))) => break Err(e.to_string()),
                            // Not connected (yet), or the connection dropped mid-call: wait.
                            Ok(Ok(Err(CallError::NotConnected))) | Ok(Err(_)) if waited < 120 => {
                                waited += 1;
                                tokio::time::sleep(gap.max(Duration::from_millis(250))).await;
                            }
                            Ok(Ok(Err(e))) => break Err(e.to_string()),
                            Ok(Err(_)) => {
                                break Err("the lifecycle connection kept dropping".into());
                            }
                            Err(_) => break Err("get_instruments: no answer in 30 s".into()),
                        }
                    };
                    let _ = tx.send(Fetched::List {
                        currency: currency.clone(),
                        kind,
                        result,
                    });
                    tokio::time::sleep(gap).await;
                }
            }
            let _ = tx.send(Fetched::Done);
        })
    }

    async fn on_fetched(&mut self, fetched: Fetched) -> Result<(), MarketError> {
        let (currency, kind, result) = match fetched {
            Fetched::List {
                currency,
                kind,
                result,
            } => (currency, kind, result),
            Fetched::Done => {
                self.reconciled_at = Some(Utc::now());
                self.prune().await?;
                self.publish_status();
                return Ok(());
            }
        };
        let instruments = match result {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%currency, kind, %error, "get_instruments failed");
                self.pending_events.push(
                    LifecycleEvent::new(EventType::Reconcile, Some(&currency), None)
                        .failed(error)
                        .detail(format!("kind {kind}")),
                );
                return Ok(());
            }
        };
        let list = instruments.clone();
        let (c, k) = (currency.clone(), kind);
        let diff = blocking(&self.db, move |conn| {
            store::reconcile(conn, &c, k, &list, Utc::now())
        })
        .await?;
        let mut want = Vec::new();
        for instrument in &instruments {
            let wanted = self.plan.wants(instrument);
            let channels = if wanted {
                self.plan.instrument_channels(&instrument.instrument_name)
            } else {
                Vec::new()
            };
            want.extend(channels.iter().cloned());
            self.book.insert(
                instrument.instrument_name.clone(),
                Book {
                    currency: currency.clone(),
                    active: instrument.is_active,
                    channels,
                },
            );
        }
        for name in &diff.listed {
            self.pending_events.push(LifecycleEvent::new(
                EventType::InstrumentListed,
                Some(&currency),
                Some(name),
            ));
        }
        // Known active in the book but gone from the list (missed its settlement notice).
        let listed_now: HashSet<&str> = instruments
            .iter()
            .map(|i| i.instrument_name.as_str())
            .collect();
        let gone: Vec<String> = self
            .book
            .iter()
            .filter(|(name, b)| {
                b.active
                    && b.currency == currency
                    && crate::rows::Kind::of_instrument(name).as_str() == kind
                    && !listed_now.contains(name.as_str())
            })
            .map(|(name, _)| name.clone())
            .chain(diff.expired.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.expire(&currency, &gone, None);
        let assignments = self.registry.want(want);
        let asked: usize = assignments.values().map(Vec::len).sum();
        self.send(assignments, Command::Subscribe);
        self.pending_events.push(
            LifecycleEvent::new(EventType::Reconcile, Some(&currency), None).detail(format!(
                "kind {kind}: {} instruments, {} listed, {} expired, {} channels to subscribe",
                instruments.len(),
                diff.listed.len(),
                gone.len(),
                asked
            )),
        );
        tracing::info!(%currency, kind, instruments = instruments.len(), listed = diff.listed.len(), expired = gone.len(), subscribing = asked, "instruments reconciled");
        Ok(())
    }

    /// Instruments that stopped trading: drop their channels, record it.
    fn expire(&mut self, currency: &str, names: &[String], state: Option<&str>) {
        let mut channels = Vec::new();
        let mut expired = Vec::new();
        for name in names {
            if let Some(book) = self.book.get_mut(name)
                && book.active
            {
                book.active = false;
                channels.extend(std::mem::take(&mut book.channels));
                expired.push(name.clone());
            }
        }
        if expired.is_empty() {
            return;
        }
        for name in &expired {
            let mut event =
                LifecycleEvent::new(EventType::InstrumentExpired, Some(currency), Some(name));
            if let Some(state) = state {
                event = event.detail(format!("state {state}"));
            }
            self.pending_events.push(event);
        }
        let state = state.map(str::to_string);
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            if let Ok(conn) = db.lock()
                && let Err(e) = store::deactivate(&conn, &expired, state.as_deref(), Utc::now())
            {
                tracing::error!(error = %e, "cannot record expired instruments");
            }
        });
        let assignments = self.registry.drop_channels(channels);
        self.send(assignments, Command::Unsubscribe);
    }

    /// Apply one connection event; true when the instrument list should be fetched again.
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Connected { conn, at } => {
                if self.down_since.remove(&conn).is_some() {
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::reconnected(&c, Some(conn as i32), at);
                        }
                    });
                    // State changes and listings sent while the lifecycle connection was
                    // down are lost: the instrument lists say what happened meanwhile.
                    if conn == 0 {
                        return true;
                    }
                }
            }
            Event::Disconnected { conn, at, reason } => {
                if conn > 0 {
                    self.registry.on_disconnected(conn);
                }
                metrics::counter!("magpie_market_disconnects_total").increment(1);
                if let std::collections::hash_map::Entry::Vacant(e) = self.down_since.entry(conn) {
                    e.insert(at);
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::disconnected(&c, conn as i32, at, &reason);
                        }
                    });
                }
            }
            Event::Subscribed { conn, channels } => {
                if conn > 0 {
                    self.registry.on_accepted(&channels);
                }
                self.channel_events(EventType::SubscriptionAdded, &channels, None);
            }
            Event::Rejected {
                conn,
                channels,
                error,
            } => {
                if conn > 0 {
                    self.registry.on_rejected(&channels, &error);
                }
                tracing::warn!(connection = conn, channels = channels.len(), %error, "channels rejected");
                self.channel_events(EventType::SubscriptionRejected, &channels, Some(&error));
            }
            Event::BatchTooLarge { conn, size } => {
                tracing::warn!(
                    connection = conn,
                    size,
                    "subscribe too large (-32600): retrying in halves"
                );
                self.pending_events.push(
                    LifecycleEvent::new(EventType::SubscriptionRejected, None, None)
                        .failed(format!("-32600 request entity too large ({size} channels)"))
                        .detail(format!(
                            "connection {conn}: retried as two requests of {} and {}",
                            size / 2,
                            size - size / 2
                        )),
                );
            }
            Event::Unsubscribed { channels, .. } => {
                self.channel_events(EventType::SubscriptionRemoved, &channels, None);
            }
            Event::InstrumentState { currency, state } => {
                if state.is_terminal() {
                    self.expire(
                        &currency,
                        std::slice::from_ref(&state.instrument_name),
                        Some(&state.state),
                    );
                } else if state.is_open()
                    && !self
                        .book
                        .get(&state.instrument_name)
                        .is_some_and(|b| b.active)
                {
                    // A new or reopened instrument: its full record comes with the next list.
                    return true;
                } else {
                    let db = Arc::clone(&self.db);
                    tokio::task::spawn_blocking(move || {
                        if let Ok(c) = db.lock() {
                            let _ = store::set_state(&c, &state.instrument_name, &state.state);
                        }
                    });
                }
            }
            Event::InstrumentCreated {
                currency,
                instrument,
            } => self.listed(currency, *instrument),
        }
        false
    }

    fn listed(&mut self, currency: String, instrument: Instrument) {
        let wanted = self.plan.wants(&instrument);
        let channels = if wanted {
            self.plan.instrument_channels(&instrument.instrument_name)
        } else {
            Vec::new()
        };
        let name = instrument.instrument_name.clone();
        self.book.insert(
            name.clone(),
            Book {
                currency: currency.clone(),
                active: instrument.is_active,
                channels: channels.clone(),
            },
        );
        self.pending_events.push(
            LifecycleEvent::new(EventType::InstrumentListed, Some(&currency), Some(&name))
                .detail("instrument.creation"),
        );
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            if let Ok(c) = db.lock()
                && let Err(e) = store::listed(&c, &currency, &instrument, Utc::now())
            {
                tracing::error!(error = %e, "cannot record a listed instrument");
            }
        });
        let assignments = self.registry.want(channels);
        self.send(assignments, Command::Subscribe);
    }

    fn channel_events(&mut self, kind: EventType, channels: &[String], error: Option<&str>) {
        for channel in channels {
            let instrument = instrument_of(channel);
            let currency = instrument
                .map(currency_of)
                .or_else(|| channel.rsplit('.').nth(1));
            let mut event = LifecycleEvent::new(kind, currency, instrument).detail(channel.clone());
            if let Some(error) = error {
                event = event.failed(error);
            }
            self.pending_events.push(event);
        }
    }

    /// Apply the retention to the lifecycle events and gaps, at most once an hour.
    async fn prune(&mut self) -> Result<(), MarketError> {
        let days = self.config.retention_days;
        let due = self
            .pruned_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if days == 0 || !due {
            return Ok(());
        }
        self.pruned_at = Some(std::time::Instant::now());
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        let removed = blocking(&self.db, move |conn| store::prune(conn, before)).await?;
        if removed > 0 {
            tracing::info!(rows = removed, days, "pruned old lifecycle events and gaps");
        }
        Ok(())
    }

    async fn flush_events(&mut self) -> Result<(), MarketError> {
        if self.pending_events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending_events);
        blocking(&self.db, move |conn| store::record_events(conn, &events)).await
    }
}
