//! The music tracker's sources: everything that brings listening events into the warehouse.
//!
//! - [`import`]: Spotify privacy exports (extended and basic streaming history) and Last.fm
//!   scrobbles (CSV and `user.getrecenttracks` JSON), from files, folders or Spotify's zip,
//!   streamed, deduplicated and written one file per transaction;
//! - [`demo`]: a deterministic synthetic listening history written as real Spotify
//!   extended-export files, so the whole pipeline can be tried without an account;
//! - [`spotify`]: connecting accounts and polling recently-played;
//! - [`enrich`]: the enrichment queue, Spotify metadata, MusicBrainz and geography.
//!
//! Every source produces the same [`event::ListenEvent`]; [`identity`] decides when two events
//! are the same listen.
//!
//! ```no_run
//! use magpie_core::{Warehouse, OpenOptions};
//! use magpie_music::import::{Importer, ImportOptions};
//! let wh = Warehouse::open("data/magpie.duckdb", &OpenOptions::default()).unwrap();
//! let importer = Importer::new(&wh, ImportOptions::default()).unwrap();
//! let summary = importer.import_paths(&["my_spotify_data.zip".into()], &mut |_| {});
//! assert!(summary.all_ok());
//! ```

pub mod demo;
pub mod enrich;
pub mod event;
pub mod filters;
pub mod identity;
pub mod import;
pub mod listeners;
pub mod spotify;
pub mod submit;
