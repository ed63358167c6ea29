//! The enrichment loop: take the most-played items a source can work on, look each one up
//! behind its service's limiter, and record the outcome with the responses in one transaction.
//! Spotify and MusicBrainz (with geography, which shares MusicBrainz's limiter) run side by
//! side on their own warehouse connections; their transactions never interleave, since each
//! is written without an `.await` in between.
//!
//! A run stops when nothing is left to try, after `limit` items, or when a service asks to
//! wait longer than `max_wait`; the wait is stored, so the next run (or a restart) honours it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use magpie_core::Config;

use super::geo;
use super::musicbrainz::MusicBrainz;
use super::queue::{Item, Outcome, Queue};
use super::spotify::SpotifyMeta;
use super::{EnrichError, Looked, Source};

/// After this many failures in a row, a service is taken to be unreachable (no network, a
/// DNS failure, an outage): it is paused for [`UNREACHABLE_PAUSE`] rather than failing every
/// queued item in turn.
const FAILURES_BEFORE_PAUSE: u32 = 5;
const UNREACHABLE_PAUSE: chrono::Duration = chrono::Duration::minutes(5);

/// Items taken from the queue at a time.
const BATCH: usize = 25;
/// New entities found by finished items (a track's artist and album, an artist's geography)
/// are queued, and priorities updated, at most this often while there is other work.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub sources: Vec<Source>,
    /// Stop after this many items (all sources together).
    pub limit: Option<u64>,
    /// Sleep through a service's wait when it is at most this long; stop otherwise.
    pub max_wait: Duration,
    /// Take no new item after this moment (a scheduled pass of bounded length).
    pub deadline: Option<std::time::Instant>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            sources: Source::ALL.to_vec(),
            limit: None,
            max_wait: Duration::from_secs(120),
            deadline: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub done: u64,
    pub not_found: u64,
    pub failed: u64,
    /// Services that asked to wait beyond the run: (source, until, reason).
    pub waiting: Vec<(Source, DateTime<Utc>, String)>,
    /// Sources that could not run, and why (no Spotify credentials).
    pub skipped: Vec<(Source, String)>,
}

/// The clients, limiters and settings of one process. Create one and keep it: its limiters
/// are what keep the process within each service's rate.
pub struct Enricher {
    spotify: Option<SpotifyMeta>,
    musicbrainz: MusicBrainz,
    max_attempts: u32,
    finished: Arc<AtomicU64>,
    /// The warehouse's [`signature`] at the last refresh: unchanged means nothing new to queue.
    refreshed_at: Option<(i64, i64)>,
    /// `enrichment.spotify_search`.
    search: bool,
}

/// What decides whether the queue needs a refresh: the newest listening event and the number
/// of responses kept.
fn signature(conn: &Connection) -> duckdb::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT coalesce(max(event_id), 0) FROM raw.listen_events),
                (SELECT count(*) FROM raw.enrichment_responses)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

#[derive(Default)]
struct Tally {
    done: u64,
    not_found: u64,
    failed: u64,
    waiting: Vec<(Source, DateTime<Utc>, String)>,
}

impl Enricher {
    pub fn new(config: &Config) -> Result<Self, EnrichError> {
        Ok(Self {
            spotify: SpotifyMeta::new(config)?,
            musicbrainz: MusicBrainz::new(&config.enrichment)?,
            max_attempts: config.enrichment.max_attempts,
            finished: Arc::new(AtomicU64::new(0)),
            refreshed_at: None,
            search: config.enrichment.spotify_search,
        })
    }

    /// Items finished by this process so far (for progress displays).
    pub fn finished_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.finished)
    }

    /// Flags that are set while a request waits for a source's rate limiter (geography shares
    /// MusicBrainz's).
    pub fn limiter_flags(&self) -> Vec<(Source, Arc<std::sync::atomic::AtomicBool>)> {
        let mb = self.musicbrainz.limiter.waiting_flag();
        let mut flags = vec![(Source::MusicBrainz, Arc::clone(&mb)), (Source::Geo, mb)];
        if let Some(spotify) = &self.spotify {
            flags.push((Source::Spotify, spotify.limiter.waiting_flag()));
        }
        flags
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Queue what is new, then work the queue (see the module docs for when it stops).
    pub async fn run(
        &mut self,
        spotify_conn: &Connection,
        musicbrainz_conn: &Connection,
        options: &RunOptions,
    ) -> Result<RunSummary, EnrichError> {
        let signature = signature(spotify_conn)?;
        if self.refreshed_at != Some(signature) {
            Queue::new(spotify_conn).refresh(Utc::now(), self.search)?;
            self.refreshed_at = Some(signature);
        }
        let mut summary = RunSummary::default();
        let max_attempts = self.max_attempts;
        let budget = Budget {
            deadline: options.deadline,
            limit: options.limit,
            used: AtomicU64::new(0),
            finished: Arc::clone(&self.finished),
        };
        let wants = |s: Source| options.sources.contains(&s);
        let search = self.search;
        let spotify_work = async {
            match self.spotify.as_mut().filter(|_| wants(Source::Spotify)) {
                Some(meta) => {
                    let queue = Queue::new(spotify_conn);
                    work(
                        &queue,
                        &[Source::Spotify],
                        max_attempts,
                        options,
                        &budget,
                        search,
                        meta,
                    )
                    .await
                }
                None => Ok(Tally::default()),
            }
        };
        let mb_sources: Vec<Source> = [Source::MusicBrainz, Source::Geo]
            .into_iter()
            .filter(|s| wants(*s))
            .collect();
        let mut mb = MusicBrainzWork {
            client: &mut self.musicbrainz,
            conn: musicbrainz_conn,
        };
        let mb_work = async {
            if mb_sources.is_empty() {
                return Ok(Tally::default());
            }
            let queue = Queue::new(musicbrainz_conn);
            work(
                &queue,
                &mb_sources,
                max_attempts,
                options,
                &budget,
                search,
                &mut mb,
            )
            .await
        };
        let (spotify_tally, mb_tally) = tokio::join!(spotify_work, mb_work);
        for tally in [spotify_tally?, mb_tally?] {
            summary.done += tally.done;
            summary.not_found += tally.not_found;
            summary.failed += tally.failed;
            summary.waiting.extend(tally.waiting);
        }
        if wants(Source::Spotify) && self.spotify.is_none() {
            summary.skipped.push((
                Source::Spotify,
                "no Spotify credentials: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET, or \
                 connect an account (`magpie spotify connect`)"
                    .into(),
            ));
        }
        Ok(summary)
    }
}

/// The `--limit` shared by the loops.
struct Budget {
    deadline: Option<std::time::Instant>,
    limit: Option<u64>,
    used: AtomicU64,
    finished: Arc<AtomicU64>,
}

impl Budget {
    /// Take one item's worth; false when the limit is reached.
    fn take(&self) -> bool {
        if self
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            return false;
        }
        let before = self.used.fetch_add(1, Ordering::SeqCst);
        self.limit.is_none_or(|limit| before < limit)
    }
}

/// A service that looks items up.
trait LookUp {
    async fn look_up(&mut self, item: &Item) -> Looked;
}

impl LookUp for SpotifyMeta {
    async fn look_up(&mut self, item: &Item) -> Looked {
        SpotifyMeta::look_up(self, item).await
    }
}

/// MusicBrainz artists and geography: one client, so one limiter.
struct MusicBrainzWork<'a> {
    client: &'a mut MusicBrainz,
    conn: &'a Connection,
}

impl LookUp for MusicBrainzWork<'_> {
    async fn look_up(&mut self, item: &Item) -> Looked {
        let queue = Queue::new(self.conn);
        match item.source {
            Source::Geo => geo::locate(self.client, &queue, item).await,
            _ => self.client.look_up_artist(&queue, item).await,
        }
    }
}

/// One loop over the items of `sources`.
async fn work(
    queue: &Queue<'_>,
    sources: &[Source],
    max_attempts: u32,
    options: &RunOptions,
    budget: &Budget,
    search: bool,
    service: &mut impl LookUp,
) -> Result<Tally, EnrichError> {
    let mut tally = Tally::default();
    // Items finished since the last refresh, and when that was.
    let mut since_refresh = 0u64;
    let mut refreshed = std::time::Instant::now();
    let mut failures_in_a_row = 0u32;
    'outer: loop {
        // A stored wait (from this run or an earlier one) comes first.
        for source in sources {
            if let Some(until) = queue.wait_until(*source, Utc::now())? {
                let left = (until - Utc::now()).to_std().unwrap_or_default();
                if left > options.max_wait {
                    tally.waiting.push((*source, until, "asked to wait".into()));
                    break 'outer;
                }
                tokio::time::sleep(left).await;
            }
        }
        let items = queue.next(sources, max_attempts, Utc::now(), BATCH)?;
        if items.is_empty() {
            // What finished since the last refresh may have found new work (a track's artist
            // and album, an artist's geography).
            if since_refresh == 0 {
                break;
            }
            queue.refresh(Utc::now(), search)?;
            since_refresh = 0;
            refreshed = std::time::Instant::now();
            continue;
        }
        for item in items {
            if !budget.take() {
                break 'outer;
            }
            let source = item.source;
            match service.look_up(&item).await {
                Looked::Finished(outcome, responses) => {
                    queue.finish(&item, &outcome, &responses, Utc::now())?;
                    budget.finished.fetch_add(1, Ordering::Relaxed);
                    match &outcome {
                        Outcome::Done => tally.done += 1,
                        Outcome::NotFound(_) => tally.not_found += 1,
                        Outcome::Failed(why) => {
                            tracing::warn!(source = %source, entity = %item.entity, key = %item.key, error = %why, "enrichment item failed");
                            tally.failed += 1;
                        }
                        Outcome::Deferred => {}
                    }
                    if matches!(outcome, Outcome::Failed(_)) {
                        failures_in_a_row += 1;
                    } else {
                        failures_in_a_row = 0;
                    }
                    if failures_in_a_row >= FAILURES_BEFORE_PAUSE {
                        failures_in_a_row = 0;
                        let until = Utc::now() + UNREACHABLE_PAUSE;
                        let reason = format!("{FAILURES_BEFORE_PAUSE} failures in a row");
                        queue.set_wait(source, until, &reason)?;
                        tracing::warn!(source = %source, until = %until, "enrichment paused: the service seems unreachable");
                        continue 'outer;
                    }
                }
                Looked::Wait(wait, reason, responses) => {
                    // Give the budget back: the item was not worked.
                    budget.used.fetch_sub(1, Ordering::SeqCst);
                    let until = Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                    queue.store(&responses, Utc::now())?;
                    queue.set_wait(source, until, &reason)?;
                    tracing::warn!(source = %source, until = %until, reason = %reason, "enrichment paused by the service");
                    continue 'outer;
                }
            }
            since_refresh += 1;
            if refreshed.elapsed() >= REFRESH_EVERY {
                queue.refresh(Utc::now(), search)?;
                since_refresh = 0;
                refreshed = std::time::Instant::now();
                continue 'outer;
            }
        }
    }
    Ok(tally)
}
