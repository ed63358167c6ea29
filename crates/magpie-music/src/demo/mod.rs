//! `magpie demo`: a realistic synthetic listening history, written as real Spotify
//! extended-history files (`Streaming_History_Audio_YYYY[-YYYY]_N.json`) so that it goes through
//! exactly the importer a real export does.
//!
//! The history has Zipf-like artist popularity, favourites found early and new artists
//! discovered all along, albums and tracks per artist, daily and weekly rhythms in the
//! listener's time zone, sessions, skips, repeats, a few podcasts and private-session plays.
//! Plays are generated day by day and streamed to disk, so memory stays flat for 10 million.
//! The same seed and end date always give the same files.
//!
//! ```no_run
//! use magpie_music::demo::{generate, GenerateOptions};
//! let summary = generate(&GenerateOptions { plays: 1000, ..Default::default() }).unwrap();
//! assert_eq!(summary.plays, 1000);
//! ```

pub mod catalog;
pub mod enrichment;
mod writer;

use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

pub use catalog::Artist;
use writer::{ExportWriter, Record};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub plays: u64,
    pub years: u32,
    pub seed: u64,
    /// The last day of the history (defaults to yesterday in `timezone`, so that no play of
    /// the demo lies in the future).
    pub end: Option<NaiveDate>,
    /// The listener's time zone: rhythms (mornings, evenings) are local.
    pub timezone: chrono_tz::Tz,
    pub out_dir: PathBuf,
    /// Records per file (Spotify's files hold roughly 15,000).
    pub records_per_file: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            plays: 60_000,
            years: 4,
            seed: 42,
            end: None,
            timezone: chrono_tz::UTC,
            out_dir: PathBuf::from("demo-export"),
            records_per_file: 15_000,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct GenerateSummary {
    pub plays: u64,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub artists: usize,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// Errors writing the demo files.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write demo files in {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The longest history the generator writes.
const MAX_YEARS: u32 = 100;
/// About 12 hours of music a day on average (busy days more): a denser history would spill
/// past the days it covers.
const MAX_PLAYS_PER_DAY: f64 = 200.0;

/// The most plays one day is given (about 18 hours of music): a busier day would spill into
/// the next ones, and at a high average the spill added up over the years until the last plays
/// ended days after the history's last day (after tomorrow, which imports refuse).
const DAY_CAP: u64 = 320;

/// Number of artists for a history of `plays` plays.
pub(crate) fn artist_count(plays: u64) -> usize {
    (plays / 120).clamp(60, 6000) as usize
}

/// Write the export files.
pub fn generate(options: &GenerateOptions) -> Result<GenerateSummary, DemoError> {
    if options.plays == 0 {
        return Err(DemoError::Invalid("--plays must be at least 1".into()));
    }
    if options.years == 0 || options.years > MAX_YEARS {
        return Err(DemoError::Invalid(format!(
            "--years must be between 1 and {MAX_YEARS}"
        )));
    }
    let per_day = options.plays as f64 / (f64::from(options.years) * 365.0);
    if per_day > MAX_PLAYS_PER_DAY {
        return Err(DemoError::Invalid(format!(
            "{} plays in {} years is {per_day:.0} plays a day, more than one listener can play \
             (at most {MAX_PLAYS_PER_DAY}); give more --years or fewer --plays",
            options.plays, options.years
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let artists = catalog::generate(&mut rng, artist_count(options.plays));
    let zipf =
        Zipf::new(artists.len() as f64, 1.07).map_err(|e| DemoError::Invalid(e.to_string()))?;

    let last_day = options.end.unwrap_or_else(|| {
        chrono::Utc::now()
            .with_timezone(&options.timezone)
            .date_naive()
            - Duration::days(1)
    });
    let first_day = last_day - Duration::days(i64::from(options.years) * 365 - 1);
    let days = (last_day - first_day).num_days() as usize + 1;
    let per_day = allocate_days(&mut rng, first_day, days, options.plays);

    let io = |source| DemoError::Io {
        dir: options.out_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&options.out_dir).map_err(io)?;
    let mut writer = ExportWriter::new(&options.out_dir, options.records_per_file);
    let mut state = ListenerState::default();
    for (offset, &count) in per_day.iter().enumerate() {
        let day = first_day + Duration::days(offset as i64);
        let progress = offset as f64 / days as f64;
        let mut plays = Vec::with_capacity(count as usize);
        generate_day(
            &mut rng,
            &artists,
            &zipf,
            day,
            progress,
            count,
            options.timezone,
            &mut state,
            &mut plays,
        );
        plays.sort_by_key(|r| r.ended_at_ms);
        for record in &plays {
            writer.write(record).map_err(io)?;
        }
    }
    let (files, bytes) = writer.finish().map_err(io)?;
    Ok(GenerateSummary {
        plays: options.plays,
        files,
        bytes,
        artists: artists.len(),
        first_day,
        // Dense days can spill past midnight: report the day the last play really ended.
        last_day: DateTime::from_timestamp_millis(state.last_end_ms).map_or(last_day, |t| {
            t.with_timezone(&options.timezone)
                .date_naive()
                .max(last_day)
        }),
    })
}

/// Spread `total` plays over the days: weekends heavier, some days off, slow drift over the
/// years, with the total exact.
fn allocate_days(rng: &mut ChaCha8Rng, first: NaiveDate, days: usize, total: u64) -> Vec<u64> {
    let weights: Vec<f64> = (0..days)
        .map(|i| {
            let day = first + Duration::days(i as i64);
            if rng.random::<f64>() < 0.04 {
                return 0.0; // a day without music
            }
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            let base = if weekend { 1.35 } else { 1.0 };
            let season = 1.0 + 0.15 * ((i as f64 / 365.25) * std::f64::consts::TAU).sin();
            let growth = 0.8 + 0.4 * (i as f64 / days as f64);
            base * season * growth * (0.5 + rng.random::<f64>())
        })
        .collect();
    let sum: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut out = Vec::with_capacity(days);
    let mut acc = 0.0;
    let mut given = 0u64;
    for w in weights {
        acc += w / sum * total as f64;
        let upto = acc.round() as u64;
        out.push(upto.saturating_sub(given));
        given = given.max(upto);
    }
    let short = total.saturating_sub(given);
    if short > 0 {
        match out.iter().rposition(|c| *c > 0) {
            Some(i) => out[i] += short,
            None => {
                if let Some(last) = out.last_mut() {
                    *last += short;
                }
            }
        }
    }
    cap_days(&mut out, DAY_CAP);
    out
}

/// Move plays over `cap` on a day to the nearest later (then earlier) days with room, keeping
/// the total; days already under the cap are not touched. A total over `cap` per day stays
/// over it (the caller refuses such densities).
fn cap_days(days: &mut [u64], cap: u64) {
    let mut excess = 0u64;
    for count in days.iter_mut() {
        if *count > cap {
            excess += *count - cap;
            *count = cap;
        } else if excess > 0 && *count > 0 {
            let room = (cap - *count).min(excess);
            *count += room;
            excess -= room;
        }
    }
    for count in days.iter_mut().rev() {
        if excess == 0 {
            break;
        }
        let room = cap.saturating_sub(*count).min(excess);
        *count += room;
        excess -= room;
    }
    if let Some(last) = days.last_mut() {
        *last += excess;
    }
}

/// What carries from one session to the next.
#[derive(Default)]
struct ListenerState {
    /// An album being played through: (artist, album, next track).
    album_run: Option<(usize, usize, usize)>,
    /// When the last play ended (ms): sessions never overlap, one listener plays one thing.
    last_end_ms: i64,
}

/// Local start hours of sessions, weighted: commute, lunch, evening.
const HOUR_WEIGHTS: [u32; 24] = [
    2, 1, 1, 0, 0, 1, 3, 7, 9, 6, 5, 5, 7, 6, 5, 5, 6, 8, 9, 10, 10, 9, 7, 4,
];

#[allow(clippy::too_many_arguments)]
fn generate_day(
    rng: &mut ChaCha8Rng,
    artists: &[Artist],
    zipf: &Zipf<f64>,
    day: NaiveDate,
    progress: f64,
    count: u64,
    tz: chrono_tz::Tz,
    state: &mut ListenerState,
    out: &mut Vec<Record>,
) {
    // Plan the day's sessions (length, start), then play them in time order.
    let mut sessions = Vec::new();
    let mut remaining = count;
    let total_weight: u32 = HOUR_WEIGHTS.iter().sum();
    while remaining > 0 {
        let session_len = remaining.min(rng.random_range(3..=22));
        remaining -= session_len;
        // Session start, local time.
        let mut roll = rng.random_range(0..total_weight);
        let hour = HOUR_WEIGHTS
            .iter()
            .position(|w| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .unwrap_or(20) as u32;
        let minute = rng.random_range(0..60);
        let local = day
            .and_hms_opt(hour, minute, rng.random_range(0..60))
            .unwrap_or_default();
        let start = tz
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| local.and_utc().timestamp_millis());
        sessions.push((start, session_len));
    }
    sessions.sort_unstable();
    for (start, session_len) in sessions {
        // A session planned while the previous one still plays starts after a short pause.
        let start = start.max(state.last_end_ms + rng.random_range(120_000..1_200_000));
        let platform =
            ["android", "ios", "windows", "osx", "web_player", "cast"][rng.random_range(0..6)];
        let shuffle = rng.random::<f64>() < 0.45;
        let incognito = rng.random::<f64>() < 0.01;
        let mut clock = start;
        for i in 0..session_len {
            if rng.random::<f64>() < 0.02 {
                let record = Record::episode(rng, clock, platform);
                clock = record.ended_at_ms + rng.random_range(500..4000);
                out.push(record);
                continue;
            }
            let (a, b, t) = next_track(rng, artists, zipf, progress, state, shuffle);
            let track = &artists[a].albums[b].tracks[t];
            // Skips are likelier early in a session and for less-loved artists.
            let skip_p =
                0.08 + 0.10 * (a as f64 / artists.len() as f64) + if i == 0 { 0.05 } else { 0.0 };
            let skipped = rng.random::<f64>() < skip_p;
            let ms_played = if skipped {
                rng.random_range(1_500..35_000).min(track.duration_ms)
            } else if rng.random::<f64>() < 0.05 {
                rng.random_range(track.duration_ms / 3..track.duration_ms) // stopped part-way
            } else {
                track.duration_ms
            };
            let ended = clock + ms_played;
            out.push(Record::track(
                &artists[a],
                b,
                t,
                ended,
                ms_played,
                skipped,
                shuffle,
                incognito,
                platform,
                i == 0,
            ));
            clock = ended + rng.random_range(200..3000);
        }
        state.last_end_ms = clock;
    }
}

/// Choose what plays next: continue an album run, start one, or pick by popularity.
fn next_track(
    rng: &mut ChaCha8Rng,
    artists: &[Artist],
    zipf: &Zipf<f64>,
    progress: f64,
    state: &mut ListenerState,
    shuffle: bool,
) -> (usize, usize, usize) {
    if let (false, Some((a, b, t))) = (shuffle, state.album_run) {
        if t < artists[a].albums[b].tracks.len() && rng.random::<f64>() < 0.85 {
            state.album_run = Some((a, b, t + 1));
            return (a, b, t);
        }
        state.album_run = None;
    }
    // Zipf over artists, among those discovered by now.
    let mut a = 0;
    for _ in 0..12 {
        let candidate = (zipf.sample(rng) as usize)
            .saturating_sub(1)
            .min(artists.len() - 1);
        if artists[candidate].discovered_at <= progress {
            a = candidate;
            break;
        }
    }
    let artist = &artists[a];
    // Newer albums get more play; tracks within an album Zipf-like (the single first).
    let b =
        (artist.albums.len() as f64 * rng.random::<f64>().powf(0.7)) as usize % artist.albums.len();
    let tracks = artist.albums[b].tracks.len();
    let t = ((tracks as f64) * rng.random::<f64>().powi(2)) as usize % tracks;
    if !shuffle && rng.random::<f64>() < 0.12 {
        state.album_run = Some((a, b, 1));
        return (a, b, 0);
    }
    (a, b, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_allocation_is_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let first = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        for total in [1u64, 17, 1000, 350_000] {
            let days = allocate_days(&mut rng, first, 730, total);
            assert_eq!(days.iter().sum::<u64>(), total);
            assert_eq!(days.len(), 730);
        }
    }

    #[test]
    fn no_day_is_given_more_than_fits() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let first = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        // 270 plays a day on average: the busiest days would get well over 500.
        let days = allocate_days(&mut rng, first, 3650, 270 * 3650);
        assert_eq!(days.iter().sum::<u64>(), 270 * 3650);
        assert!(
            days.iter().all(|&d| d <= DAY_CAP),
            "{:?}",
            days.iter().max()
        );
        let mut few = vec![0, 5, 400, 0, 10];
        cap_days(&mut few, 100);
        // 300 over: 90 to the later day with plays, the rest backwards from the end.
        assert_eq!(few, vec![15, 100, 100, 100, 100]);
    }

    #[test]
    fn a_dense_history_ends_by_its_last_day() {
        let dir = tempfile::tempdir().unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 5, 31).unwrap();
        let summary = generate(&GenerateOptions {
            plays: (MAX_PLAYS_PER_DAY as u64) * 365 * 2,
            years: 2,
            seed: 3,
            end: Some(end),
            timezone: chrono_tz::Europe::Berlin,
            out_dir: dir.path().to_path_buf(),
            records_per_file: 50_000,
        })
        .unwrap();
        assert!(
            summary.last_day <= end + Duration::days(1),
            "the plays end on {} for a history ending {end}",
            summary.last_day
        );
    }
}
