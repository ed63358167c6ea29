//! Enrichment: what the listening sources do not say about the music, filled in from Spotify's
//! single-item metadata endpoints and MusicBrainz, politely and resumably.
//!
//! - [`queue`]: the work queue in the warehouse (`raw.enrichment_queue`): one row per entity and
//!   source, most-played first, with state, attempts and the next try; new tracks and artists
//!   seen by imports or polls are queued by [`queue::Queue::refresh`];
//! - [`spotify`]: `GET /v1/tracks/{id}`, `/v1/artists/{id}`, `/v1/albums/{id}` (the batch
//!   endpoints are gone), and, when configured, a search for tracks without a URI;
//! - [`musicbrainz`]: artist MBIDs (a supplied one if MusicBrainz names it as played, else by
//!   the Spotify URL relation, else a name search with a score threshold and a name check),
//!   then the lookup with genres, tags, aliases, type, country and areas;
//! - [`geo`]: each artist's country, from MusicBrainz `country` or by walking the area chain up
//!   to a country; coordinates and regions come from the countries seed in the models;
//! - [`worker`]: the loop that takes items, calls the service behind a rate limiter, and writes
//!   the raw response and the item's new state in one transaction (a kill at any moment loses
//!   at most the request in flight, which is made again).
//!
//! Every response is kept in `raw.enrichment_responses`, so the staging models can be
//! re-derived without fetching again.

pub mod geo;
pub mod http;
pub mod limiter;
pub mod musicbrainz;
pub mod progress;
pub mod queue;
pub mod spotify;
pub mod worker;

use std::fmt;
use std::str::FromStr;

pub use progress::{DistrustedMbid, Progress, SourceProgress};
pub use queue::Queue;
pub use worker::{Enricher, RunOptions, RunSummary};

/// Where an item is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Spotify,
    MusicBrainz,
    Geo,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Spotify, Source::MusicBrainz, Source::Geo];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Spotify => "spotify",
            Source::MusicBrainz => "musicbrainz",
            Source::Geo => "geo",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "spotify" => Ok(Source::Spotify),
            "musicbrainz" | "mb" => Ok(Source::MusicBrainz),
            "geo" => Ok(Source::Geo),
            other => Err(format!(
                "`{other}` is not a source (spotify, musicbrainz, geo)"
            )),
        }
    }
}

/// What one item's lookup came to.
#[derive(Debug, Clone)]
pub enum Looked {
    /// The item's outcome and the responses to keep with it.
    Finished(queue::Outcome, Vec<queue::Response>),
    /// The service asked everyone to wait this long (429 Retry-After, 503): the item stays
    /// queued; the responses already received are kept.
    Wait(std::time::Duration, String, Vec<queue::Response>),
}

/// What can stop enrichment as a whole (one item's failure never does: it is recorded on the
/// item).
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("enrichment: {0}")]
    Config(String),
    #[error("warehouse: {0}")]
    Db(#[from] duckdb::Error),
    #[error(transparent)]
    Spotify(#[from] crate::spotify::SpotifyError),
}
