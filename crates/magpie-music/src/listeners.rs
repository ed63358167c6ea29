//! Administering listeners: list them with their sources, add, rename, merge two names that are
//! the same person, and remove one. What the `magpie listener` commands and the admin pages
//! call.
//!
//! A listener is a row of `listeners` in the warehouse (its id keys `raw.listen_events`,
//! `raw.import_batches`, the Spotify poller's state and any other table of magpie's own
//! schemas with a `listener_id` column) and a name in the stores under `DATA_DIR/secrets/`:
//! the scrobble tokens ([`crate::submit::tokens::TokenStore`]) and the Spotify tokens
//! ([`crate::spotify::TokenStore`]). A name known only to a store (a token made for a listener
//! who has not submitted yet) is a listener too.
//!
//! Every change is one DuckDB transaction for the warehouse, with the stores changed before it
//! commits and put back when it fails, so an error leaves nothing half-done (if putting them
//! back fails as well, the error says which store to check). Merging and removing
//! - take a backup of the warehouse first (`BACKUP_DIR/before-listener-…duckdb`, restored with
//!   `magpie restore`) and return its path;
//! - refuse the configured `default_listener` unless told otherwise;
//! - are refused while a build of this process runs ([`magpie_core::warehouse::rewrite_gate`]).
//!
//! Rename, merge and remove clear `meta.incremental_state` in their transaction: events are
//! rewritten or deleted where the models take `raw.listen_events` to be append-only, so the
//! next build rebuilds every incremental model from scratch.
//!
//! Merging follows the importer's rule for the same listen twice (see `import::store`): an event
//! of `from` with the source kind and fingerprint of one of `into`'s is an exact duplicate and
//! is dropped; one with the same identity from another source within the dedupe window is kept
//! and marked `duplicate_of` the one seen first (the lower event id), nearest first, each
//! matched at most once.
//!
//! ```
//! use magpie_core::{OpenOptions, Warehouse};
//! use magpie_music::listeners::ListenerAdmin;
//! let dir = tempfile::tempdir().unwrap();
//! let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
//! let admin = ListenerAdmin::new(dir.path(), dir.path().join("backups"), "default", 60);
//! admin.add(wh.conn(), "alice").unwrap();
//! admin.rename(wh.conn(), "alice", "ali").unwrap();
//! let gone = admin.remove(wh.conn(), "ali", false).unwrap();
//! assert!(gone.backup.exists());
//! let names: Vec<String> = admin.list(wh.conn()).unwrap().into_iter().map(|l| l.name).collect();
//! assert_eq!(names, ["default"]);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use duckdb::{Connection, OptionalExt, params};
use magpie_core::{WarehouseError, household};
use serde::Serialize;

use crate::spotify::{self, SpotifyError};
use crate::submit::tokens::{self, TokenError};

/// Longest listener name.
pub const MAX_NAME_CHARS: usize = 64;

/// Schemas of magpie's own tables (the models write to others, rebuilt from these).
const OWN_SCHEMAS: &str = "'main', 'raw', 'meta'";

/// Which rule a listener name broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRule {
    Empty,
    /// Spaces (or other white space) at the start or the end.
    Untrimmed,
    TooLong,
    /// The first character is not a letter or digit.
    FirstCharacter(char),
    /// A character outside letters, digits, `.`, `_` and `-`.
    Character(char),
    /// `everyone`: the pages' name for all listeners together.
    Reserved,
}

/// The name the pages give all listeners together (`?listener=everyone`).
const EVERYONE: &str = "everyone";

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Empty => write!(f, "must not be empty"),
            NameRule::Untrimmed => write!(f, "must not start or end with a space"),
            NameRule::TooLong => write!(f, "must be at most {MAX_NAME_CHARS} characters"),
            NameRule::FirstCharacter(c) => {
                write!(f, "must start with a letter or a digit, not {c:?}")
            }
            NameRule::Reserved => write!(
                f,
                "is reserved: the pages call all listeners together `{EVERYONE}`"
            ),
            NameRule::Character(c) => write!(
                f,
                "may hold only letters a-z and A-Z, digits, '.', '_' and '-' (it appears in URLs \
                 and file names), not {c:?}"
            ),
        }
    }
}

/// Check a new listener name: 1 to 64 characters, ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), ListenerError> {
    let rule = if name.is_empty() {
        Some(NameRule::Empty)
    } else if name.trim() != name {
        Some(NameRule::Untrimmed)
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some(NameRule::TooLong)
    } else if let Some(c) = name.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        Some(NameRule::FirstCharacter(c))
    } else if name.eq_ignore_ascii_case(EVERYONE) {
        Some(NameRule::Reserved)
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(NameRule::Character)
    };
    match rule {
        Some(rule) => Err(ListenerError::BadName {
            name: name.to_string(),
            rule,
        }),
        None => Ok(()),
    }
}

/// What can go wrong; each names the listener (and the field or store) concerned.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listener name {name:?} {rule}")]
    BadName { name: String, rule: NameRule },
    #[error("there is no listener {0:?} (`magpie listener list` shows them)")]
    Unknown(String),
    #[error(
        "listener {existing:?} exists already: names are compared without case, so pick another \
         name than {name:?} (or merge the two)"
    )]
    Exists { name: String, existing: String },
    #[error("cannot merge listener {0:?} into itself")]
    SameListener(String),
    #[error(
        "listener {name:?} is the configured default_listener (imports without --listener and \
         the pages' default go to it): set default_listener to another name first, or {action} \
         it anyway with --allow-default"
    )]
    DefaultListener { name: String, action: &'static str },
    #[error("a build is running: {action} listener {name:?} again when it has finished")]
    BuildRunning { name: String, action: &'static str },
    #[error("{action} listener {name:?}: the warehouse: {source}")]
    Warehouse {
        name: String,
        action: &'static str,
        source: duckdb::Error,
    },
    #[error(
        "{action} listener {name:?}: the backup before it failed, nothing was changed: {source}"
    )]
    Backup {
        name: String,
        action: &'static str,
        source: WarehouseError,
    },
    #[error("{action} listener {name:?}: the scrobble tokens: {source}")]
    ScrobbleTokens {
        name: String,
        action: &'static str,
        source: TokenError,
    },
    #[error("{action} listener {name:?}: the Spotify tokens: {source}")]
    SpotifyTokens {
        name: String,
        action: &'static str,
        source: SpotifyError,
    },
    #[error(
        "{failed}; putting the token stores back failed too ({undo}): the warehouse is unchanged, \
         but check {stores} under DATA_DIR/secrets for tokens already moved"
    )]
    Incomplete {
        failed: Box<ListenerError>,
        undo: String,
        stores: String,
    },
}

/// One listener as the admin pages show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListenerInfo {
    /// Its id in the warehouse; `None` for a name known only to a token store.
    pub id: Option<i32>,
    pub name: String,
    /// Whether it is the configured `default_listener`.
    pub is_default: bool,
    pub created_at: Option<NaiveDateTime>,
    /// Raw events, every source, duplicates across sources included.
    pub events: i64,
    /// Events that are not the same listen seen first from another source.
    pub listens: i64,
    /// The earliest start and the latest end of a listen (UTC).
    pub first_listen: Option<NaiveDateTime>,
    pub last_listen: Option<NaiveDateTime>,
    /// Whether Spotify tokens are stored (the poller collects recently-played).
    pub spotify_connected: bool,
    /// When the Spotify authorisation runs out (reconnect before).
    pub spotify_reconnect_by: Option<chrono::DateTime<chrono::Utc>>,
    /// Live scrobble tokens (ListenBrainz / Last.fm APIs).
    pub scrobble_tokens: usize,
    /// Imports per format (files, scrobble submissions and Spotify polls are all imports).
    pub imports: Vec<ImportSource>,
}

/// A listener's imports of one format.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImportSource {
    /// `extended_json`, `lastfm_csv`, `api_json`, ... (`unknown` for failed files never read).
    pub format: String,
    /// The source kind of its events (`spotify_extended`, `lastfm`, ...), when it has any.
    pub source_kind: Option<String>,
    /// Files (or submissions, or polls) imported, and those that failed.
    pub files: i64,
    pub failed: i64,
    /// Raw events of this format.
    pub events: i64,
    /// When the last one finished (UTC).
    pub last_import: Option<NaiveDateTime>,
}

/// What became of the Spotify connection of a listener merged away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpotifyMove {
    /// It had none.
    None,
    /// Its tokens now belong to the listener it was merged into.
    Moved,
    /// Both were connected: the kept listener's own account stays, the other's was dropped.
    Dropped,
}

/// A rename done.
#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    pub old: String,
    pub new: String,
    pub id: Option<i32>,
    pub scrobble_tokens: usize,
    pub spotify_moved: bool,
    /// It was the configured default listener: the configuration must name the new name.
    pub was_default: bool,
    /// Things done on the side or left (saved Spotify pages moved or not).
    pub notes: Vec<String>,
}

/// A merge done.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    pub from: String,
    pub into: String,
    pub into_id: i32,
    /// The copy of the warehouse taken before.
    pub backup: PathBuf,
    /// Events of `from` now `into`'s (duplicates across sources included).
    pub events_moved: u64,
    /// Events of `from` dropped as exact duplicates of `into`'s.
    pub exact_duplicates: u64,
    /// Listens recorded under both names by different sources, now marked `duplicate_of`.
    pub cross_source_duplicates: u64,
    pub scrobble_tokens_moved: usize,
    pub spotify: SpotifyMove,
    pub notes: Vec<String>,
}

/// A removal done.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub name: String,
    pub backup: PathBuf,
    pub events_deleted: u64,
    pub scrobble_tokens_removed: usize,
    pub spotify_disconnected: bool,
    pub notes: Vec<String>,
}

/// Listener administration over one data folder.
#[derive(Debug, Clone)]
pub struct ListenerAdmin {
    data_dir: PathBuf,
    backup_dir: PathBuf,
    default_listener: String,
    dedupe_window_secs: u32,
}

/// A token store change made before the warehouse commits, and how to undo it.
enum Undo {
    Scrobble(Vec<String>, String),
    ScrobbleRestore(tokens::RemovedTokens),
    Spotify {
        from: String,
        tokens: spotify::Tokens,
        moved_to: Option<String>,
    },
}

impl ListenerAdmin {
    /// `dedupe_window_secs` is the importer's (`import.dedupe_window_secs`).
    pub fn new(
        data_dir: impl Into<PathBuf>,
        backup_dir: impl Into<PathBuf>,
        default_listener: impl Into<String>,
        dedupe_window_secs: u32,
    ) -> Self {
        Self {
            data_dir: data_dir.into(),
            backup_dir: backup_dir.into(),
            default_listener: default_listener.into(),
            dedupe_window_secs,
        }
    }

    /// With the configured data folder, backup folder, default listener and dedupe window.
    pub fn from_config(config: &magpie_core::Config) -> Self {
        Self::new(
            &config.data_dir,
            config.backup_dir(),
            &config.default_listener,
            config.import.dedupe_window_secs,
        )
    }

    fn scrobble(&self) -> tokens::TokenStore {
        tokens::TokenStore::new(&self.data_dir)
    }

    fn spotify(&self) -> spotify::TokenStore {
        spotify::TokenStore::new(&self.data_dir)
    }

    /// Every listener, those of the warehouse by id, then names known only to a token store.
    /// Reads only: any connection will do, the read-only snapshot's too.
    pub fn list(&self, conn: &Connection) -> Result<Vec<ListenerInfo>, ListenerError> {
        let db = |source| ListenerError::Warehouse {
            name: "*".into(),
            action: "listing",
            source,
        };
        let mut stmt = conn
            .prepare(
                "SELECT l.listener_id, l.name, l.created_at, count(e.listener_id),
                        count(e.listener_id) FILTER (WHERE e.duplicate_of IS NULL),
                        min(coalesce(e.started_at, e.ended_at)), max(coalesce(e.ended_at, e.started_at))
                 FROM listeners l LEFT JOIN raw.listen_events e USING (listener_id)
                 GROUP BY ALL ORDER BY l.listener_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ListenerInfo {
                    id: Some(r.get(0)?),
                    name: r.get(1)?,
                    is_default: false,
                    created_at: r.get(2)?,
                    events: r.get(3)?,
                    listens: r.get(4)?,
                    first_listen: r.get(5)?,
                    last_listen: r.get(6)?,
                    spotify_connected: false,
                    spotify_reconnect_by: None,
                    scrobble_tokens: 0,
                    imports: Vec::new(),
                })
            })
            .map_err(db)?;
        let mut listeners = rows.collect::<Result<Vec<_>, _>>().map_err(db)?;

        let mut imports: BTreeMap<i32, Vec<ImportSource>> = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "WITH b AS (
                     SELECT listener_id, coalesce(format, 'unknown') AS format,
                            count(*) FILTER (WHERE status = 'completed') AS files,
                            count(*) FILTER (WHERE status <> 'completed') AS failed,
                            max(finished_at) AS last_import
                     FROM raw.import_batches GROUP BY ALL
                 ), e AS (
                     SELECT listener_id, source_format AS format, any_value(source_kind) AS kind,
                            count(*) AS events
                     FROM raw.listen_events GROUP BY ALL
                 )
                 SELECT coalesce(b.listener_id, e.listener_id), coalesce(b.format, e.format), e.kind,
                        coalesce(b.files, 0), coalesce(b.failed, 0), coalesce(e.events, 0), b.last_import
                 FROM b FULL JOIN e ON b.listener_id = e.listener_id AND b.format = e.format
                 ORDER BY 1, 2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    ImportSource {
                        format: r.get(1)?,
                        source_kind: r.get(2)?,
                        files: r.get(3)?,
                        failed: r.get(4)?,
                        events: r.get(5)?,
                        last_import: r.get(6)?,
                    },
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (id, source) = row.map_err(db)?;
            imports.entry(id).or_default().push(source);
        }

        let scrobble =
            self.scrobble()
                .list(None)
                .map_err(|source| ListenerError::ScrobbleTokens {
                    name: "*".into(),
                    action: "listing",
                    source,
                })?;
        let spotify = self
            .spotify()
            .all()
            .map_err(|source| ListenerError::SpotifyTokens {
                name: "*".into(),
                action: "listing",
                source,
            })?;
        let store_names = scrobble
            .iter()
            .map(|t| t.listener.clone())
            .chain(spotify.keys().cloned());
        for name in store_names {
            if !listeners.iter().any(|l| l.name == name) {
                listeners.push(ListenerInfo {
                    id: None,
                    name,
                    is_default: false,
                    created_at: None,
                    events: 0,
                    listens: 0,
                    first_listen: None,
                    last_listen: None,
                    spotify_connected: false,
                    spotify_reconnect_by: None,
                    scrobble_tokens: 0,
                    imports: Vec::new(),
                });
            }
        }
        for l in &mut listeners {
            l.is_default = l.name == self.default_listener;
            l.scrobble_tokens = scrobble.iter().filter(|t| t.listener == l.name).count();
            if let Some(t) = spotify.get(&l.name) {
                l.spotify_connected = true;
                l.spotify_reconnect_by = Some(t.refresh_expires_at());
            }
            if let Some(id) = l.id {
                l.imports = imports.remove(&id).unwrap_or_default();
            }
        }
        Ok(listeners)
    }

    /// Add a listener (a valid name, no other listener of that name in any case); its id.
    pub fn add(&self, conn: &Connection, name: &str) -> Result<i32, ListenerError> {
        validate_name(name)?;
        self.refuse_taken(conn, name, None)?;
        magpie_core::warehouse::listener_id_in(conn, name).map_err(|source| {
            ListenerError::Warehouse {
                name: name.into(),
                action: "adding",
                source,
            }
        })
    }

    /// Rename a listener: its warehouse row and its tokens in both stores (which keep working
    /// under the new name), and the folder of its saved Spotify pages.
    pub fn rename(
        &self,
        conn: &Connection,
        old: &str,
        new: &str,
    ) -> Result<Renamed, ListenerError> {
        const ACTION: &str = "renaming";
        validate_name(new)?;
        let id = self.existing(conn, old)?;
        self.refuse_taken(conn, new, Some(old))?;
        let _build = gate(old, ACTION)?;
        let db = |source| ListenerError::Warehouse {
            name: old.into(),
            action: ACTION,
            source,
        };
        let mut scrobble_tokens = 0;
        let mut spotify_moved = false;
        self.transaction(conn, old, ACTION, |undo| {
            conn.execute(
                "UPDATE listeners SET name = ? WHERE name = ?",
                params![new, old],
            )
            .map_err(db)?;
            forget_incremental_state(conn).map_err(db)?;
            let moved = self.scrobble().move_listener(old, new).map_err(|source| {
                ListenerError::ScrobbleTokens {
                    name: old.into(),
                    action: ACTION,
                    source,
                }
            })?;
            scrobble_tokens = moved.len();
            undo.push(Undo::Scrobble(moved, old.to_string()));
            if let Some((tokens, moved)) =
                self.spotify().move_listener(old, new).map_err(|source| {
                    ListenerError::SpotifyTokens {
                        name: old.into(),
                        action: ACTION,
                        source,
                    }
                })?
            {
                spotify_moved = moved;
                undo.push(Undo::Spotify {
                    from: old.to_string(),
                    tokens,
                    moved_to: moved.then(|| new.to_string()),
                });
            }
            Ok(())
        })?;
        let mut notes: Vec<String> = self.move_spotify_pages(old, new).into_iter().collect();
        notes.extend(self.household(|dir| household::rename(dir, old, new)));
        Ok(Renamed {
            old: old.into(),
            new: new.into(),
            id,
            scrobble_tokens,
            spotify_moved,
            was_default: old == self.default_listener,
            notes,
        })
    }

    /// Merge `from` into `into` (two names of the same person): `from`'s events become
    /// `into`'s without duplicates (see the module's rule), its imports, poller state and
    /// tokens follow, and `from` is gone. A backup is taken first; `from` may be the default
    /// listener only with `allow_default`.
    pub fn merge(
        &self,
        conn: &Connection,
        from: &str,
        into: &str,
        allow_default: bool,
    ) -> Result<Merged, ListenerError> {
        const ACTION: &str = "merging";
        if from == into {
            return Err(ListenerError::SameListener(from.into()));
        }
        let from_id = self.existing(conn, from)?;
        self.existing(conn, into)?;
        let (_build, backup) = self.before_rewriting(
            conn,
            from,
            allow_default,
            ("merge", ACTION),
            &format!("merge-{from}-into-{into}"),
        )?;
        let db = |source| ListenerError::Warehouse {
            name: from.into(),
            action: ACTION,
            source,
        };
        let mut merged = Merged {
            from: from.into(),
            into: into.into(),
            into_id: 0,
            backup,
            events_moved: 0,
            exact_duplicates: 0,
            cross_source_duplicates: 0,
            scrobble_tokens_moved: 0,
            spotify: SpotifyMove::None,
            notes: Vec::new(),
        };
        let window_us = i64::from(self.dedupe_window_secs.max(1)) * 1_000_000;
        self.transaction(conn, from, ACTION, |undo| {
            let into_id = magpie_core::warehouse::listener_id_in(conn, into).map_err(db)?;
            merged.into_id = into_id;
            if let Some(from_id) = from_id {
                let (moved, exact, cross) =
                    merge_events(conn, from_id, into_id, window_us).map_err(db)?;
                merged.events_moved = moved;
                merged.exact_duplicates = exact;
                merged.cross_source_duplicates = cross;
                merge_other_tables(conn, from_id, into_id).map_err(db)?;
                conn.execute("DELETE FROM listeners WHERE listener_id = ?", [from_id])
                    .map_err(db)?;
                forget_incremental_state(conn).map_err(db)?;
            }
            let moved = self
                .scrobble()
                .move_listener(from, into)
                .map_err(|source| ListenerError::ScrobbleTokens {
                    name: from.into(),
                    action: ACTION,
                    source,
                })?;
            merged.scrobble_tokens_moved = moved.len();
            undo.push(Undo::Scrobble(moved, from.to_string()));
            if let Some((tokens, moved)) =
                self.spotify().move_listener(from, into).map_err(|source| {
                    ListenerError::SpotifyTokens {
                        name: from.into(),
                        action: ACTION,
                        source,
                    }
                })?
            {
                merged.spotify = if moved {
                    SpotifyMove::Moved
                } else {
                    SpotifyMove::Dropped
                };
                undo.push(Undo::Spotify {
                    from: from.to_string(),
                    tokens,
                    moved_to: moved.then(|| into.to_string()),
                });
            }
            Ok(())
        })?;
        merged.notes.extend(self.move_spotify_pages(from, into));
        // `into` keeps its own visibility and login; `from`'s carry over only when it had none.
        merged
            .notes
            .extend(self.household(|dir| household::rename(dir, from, into)));
        Ok(merged)
    }

    /// Remove a listener: its events, imports, poller state and tokens. A backup is taken
    /// first; the default listener only with `allow_default`. Its saved Spotify pages stay
    /// on disk (a note says where).
    pub fn remove(
        &self,
        conn: &Connection,
        name: &str,
        allow_default: bool,
    ) -> Result<Removed, ListenerError> {
        const ACTION: &str = "removing";
        let id = self.existing(conn, name)?;
        let (_build, backup) = self.before_rewriting(
            conn,
            name,
            allow_default,
            ("remove", ACTION),
            &format!("remove-{name}"),
        )?;
        let db = |source| ListenerError::Warehouse {
            name: name.into(),
            action: ACTION,
            source,
        };
        let mut removed = Removed {
            name: name.into(),
            backup,
            events_deleted: 0,
            scrobble_tokens_removed: 0,
            spotify_disconnected: false,
            notes: Vec::new(),
        };
        self.transaction(conn, name, ACTION, |undo| {
            if let Some(id) = id {
                removed.events_deleted = conn
                    .execute("DELETE FROM raw.listen_events WHERE listener_id = ?", [id])
                    .map_err(db)? as u64;
                for table in listener_tables(conn).map_err(db)? {
                    conn.execute(
                        &format!("DELETE FROM {} WHERE listener_id = ?", table.sql_name()),
                        [id],
                    )
                    .map_err(db)?;
                }
                conn.execute("DELETE FROM listeners WHERE listener_id = ?", [id])
                    .map_err(db)?;
                forget_incremental_state(conn).map_err(db)?;
            }
            let gone = self.scrobble().remove_listener(name).map_err(|source| {
                ListenerError::ScrobbleTokens {
                    name: name.into(),
                    action: ACTION,
                    source,
                }
            })?;
            removed.scrobble_tokens_removed = gone.len();
            undo.push(Undo::ScrobbleRestore(gone));
            if let Some(tokens) =
                self.spotify()
                    .take(name)
                    .map_err(|source| ListenerError::SpotifyTokens {
                        name: name.into(),
                        action: ACTION,
                        source,
                    })?
            {
                removed.spotify_disconnected = true;
                undo.push(Undo::Spotify {
                    from: name.to_string(),
                    tokens,
                    moved_to: None,
                });
            }
            Ok(())
        })?;
        removed
            .notes
            .extend(self.household(|dir| household::remove(dir, name)));
        let pages = self.spotify_pages(name);
        if pages.is_dir() {
            removed.notes.push(format!(
                "its saved Spotify pages stay in {} (delete that folder to remove them too)",
                pages.display()
            ));
        }
        Ok(removed)
    }

    /// Carry a change over to who may see the listener's pages and their login
    /// ([`magpie_core::household`]), after the warehouse's change committed: a failure is a
    /// note saying what to redo, not an undone rename.
    fn household(
        &self,
        change: impl FnOnce(&std::path::Path) -> Result<(), household::HouseholdError>,
    ) -> Option<String> {
        change(&self.data_dir)
            .err()
            .map(|e| format!("the pages' visibility and login settings were not carried over: {e}"))
    }

    /// The listener's warehouse id (`None` when only a token store knows the name); an error
    /// when nothing knows it.
    fn existing(&self, conn: &Connection, name: &str) -> Result<Option<i32>, ListenerError> {
        let id: Option<i32> = conn
            .query_row(
                "SELECT listener_id FROM listeners WHERE name = ?",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| ListenerError::Warehouse {
                name: name.into(),
                action: "looking up",
                source,
            })?;
        if id.is_some() || self.store_names(name)?.iter().any(|n| n == name) {
            Ok(id)
        } else {
            Err(ListenerError::Unknown(name.into()))
        }
    }

    /// Every name the token stores know.
    fn store_names(&self, name: &str) -> Result<Vec<String>, ListenerError> {
        let mut names: Vec<String> = self
            .scrobble()
            .list(None)
            .map_err(|source| ListenerError::ScrobbleTokens {
                name: name.into(),
                action: "looking up",
                source,
            })?
            .into_iter()
            .map(|t| t.listener)
            .collect();
        names.extend(
            self.spotify()
                .all()
                .map_err(|source| ListenerError::SpotifyTokens {
                    name: name.into(),
                    action: "looking up",
                    source,
                })?
                .into_keys(),
        );
        Ok(names)
    }

    /// An error when a listener other than `except` has `name` in any case.
    fn refuse_taken(
        &self,
        conn: &Connection,
        name: &str,
        except: Option<&str>,
    ) -> Result<(), ListenerError> {
        let mut names: Vec<String> = {
            let read = || -> duckdb::Result<Vec<String>> {
                let mut stmt = conn.prepare("SELECT name FROM listeners")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect()
            };
            read().map_err(|source| ListenerError::Warehouse {
                name: name.into(),
                action: "looking up",
                source,
            })?
        };
        names.extend(self.store_names(name)?);
        match names
            .into_iter()
            .find(|n| n.to_lowercase() == name.to_lowercase() && Some(n.as_str()) != except)
        {
            Some(existing) => Err(ListenerError::Exists {
                name: name.into(),
                existing,
            }),
            None => Ok(()),
        }
    }

    /// What a merge or removal does first: refuse the default listener unless allowed, hold
    /// builds off, and make the backup (its path). `verbs`: the command's verb and the action's
    /// ("merge", "merging").
    fn before_rewriting(
        &self,
        conn: &Connection,
        name: &str,
        allow_default: bool,
        verbs: (&'static str, &'static str),
        what: &str,
    ) -> Result<(Gate, PathBuf), ListenerError> {
        if name == self.default_listener && !allow_default {
            return Err(ListenerError::DefaultListener {
                name: name.into(),
                action: verbs.0,
            });
        }
        let gate = gate(name, verbs.1)?;
        let backup = self.backup(conn, name, verbs.1, what)?;
        Ok((gate, backup))
    }

    /// A copy of the warehouse in the backup folder, named after what is about to happen.
    fn backup(
        &self,
        conn: &Connection,
        name: &str,
        action: &'static str,
        what: &str,
    ) -> Result<PathBuf, ListenerError> {
        let safe: String = what
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let path = self
            .backup_dir
            .join(format!("before-listener-{safe}-{stamp}.duckdb"));
        magpie_core::warehouse::backup::copy_database(conn, &path).map_err(|source| {
            ListenerError::Backup {
                name: name.into(),
                action,
                source,
            }
        })?;
        Ok(path)
    }

    /// Run `work` in one warehouse transaction; the token store changes it records in its undo
    /// list are reverted when it (or the commit) fails.
    fn transaction(
        &self,
        conn: &Connection,
        name: &str,
        action: &'static str,
        work: impl FnOnce(&mut Vec<Undo>) -> Result<(), ListenerError>,
    ) -> Result<(), ListenerError> {
        let db = |source| ListenerError::Warehouse {
            name: name.into(),
            action,
            source,
        };
        // Imports and submissions of this process wait (they would write events of a listener
        // that is being renamed, merged or removed).
        let _ingest = magpie_core::warehouse::ingest_gate()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.execute_batch("BEGIN TRANSACTION").map_err(db)?;
        let mut undo = Vec::new();
        let result = work(&mut undo).and_then(|()| conn.execute_batch("COMMIT").map_err(db));
        let Err(failed) = result else {
            return Ok(());
        };
        let _ = conn.execute_batch("ROLLBACK");
        let mut problems = Vec::new();
        let mut stores = Vec::new();
        for step in undo.into_iter().rev() {
            let (store, outcome) = match step {
                Undo::Scrobble(ids, back_to) => (
                    "listen-tokens.json",
                    self.scrobble()
                        .move_tokens(&ids, &back_to)
                        .map_err(|e| e.to_string()),
                ),
                Undo::ScrobbleRestore(removed) => (
                    "listen-tokens.json",
                    self.scrobble().restore(removed).map_err(|e| e.to_string()),
                ),
                Undo::Spotify {
                    from,
                    tokens,
                    moved_to,
                } => (
                    "spotify-tokens.json",
                    moved_to
                        .map_or(Ok(()), |to| self.spotify().remove(&to))
                        .and_then(|()| self.spotify().put(&from, tokens))
                        .map_err(|e| e.to_string()),
                ),
            };
            if let Err(e) = outcome {
                problems.push(e);
                stores.push(store);
            }
        }
        if problems.is_empty() {
            Err(failed)
        } else {
            Err(ListenerError::Incomplete {
                failed: Box::new(failed),
                undo: problems.join("; "),
                stores: stores.join(" and "),
            })
        }
    }

    fn spotify_pages(&self, name: &str) -> PathBuf {
        self.data_dir.join("spotify").join(name)
    }

    /// Move the saved Spotify pages of `from` to `to`'s folder (the poller keeps each page it
    /// imported there); a note when some could not be moved.
    fn move_spotify_pages(&self, from: &str, to: &str) -> Option<String> {
        let source = self.spotify_pages(from);
        if !source.is_dir() {
            return None;
        }
        let target = self.spotify_pages(to);
        let moved = (|| -> std::io::Result<()> {
            if !target.exists() {
                return std::fs::rename(&source, &target);
            }
            for entry in std::fs::read_dir(&source)? {
                let entry = entry?;
                let dest = target.join(entry.file_name());
                if !dest.exists() {
                    std::fs::rename(entry.path(), dest)?;
                }
            }
            let _ = std::fs::remove_dir(&source);
            Ok(())
        })();
        match moved {
            Ok(()) if !source.exists() => None,
            Ok(()) => Some(format!(
                "some saved Spotify pages stay in {} (a page of the same name is in {})",
                source.display(),
                target.display()
            )),
            Err(e) => Some(format!(
                "the saved Spotify pages stay in {} (moving them to {} failed: {e})",
                source.display(),
                target.display()
            )),
        }
    }
}

/// One listener change at a time in this process (they wait for each other), and none while
/// a build of this process runs (refused: a build can take minutes); builds wait until the
/// guards are dropped.
fn gate(name: &str, action: &'static str) -> Result<Gate, ListenerError> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let builds = match magpie_core::warehouse::rewrite_gate().try_write() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            return Err(ListenerError::BuildRunning {
                name: name.into(),
                action,
            });
        }
    };
    Ok(Gate {
        _builds: builds,
        _alone: alone,
    })
}

/// Held while a listener is renamed, merged or removed.
struct Gate {
    _builds: std::sync::RwLockWriteGuard<'static, ()>,
    _alone: std::sync::MutexGuard<'static, ()>,
}

/// Every incremental model is rebuilt in full by the next build.
fn forget_incremental_state(conn: &Connection) -> duckdb::Result<()> {
    conn.execute_batch("DELETE FROM meta.incremental_state")
}

/// A table of magpie's own schemas with a `listener_id` column (but `listeners` and
/// `raw.listen_events`, handled on their own), and whether a primary key or unique constraint
/// includes that column.
struct ListenerTable {
    schema: String,
    table: String,
    keyed: bool,
}

impl ListenerTable {
    fn sql_name(&self) -> String {
        format!(
            "\"{}\".\"{}\"",
            self.schema.replace('"', "\"\""),
            self.table.replace('"', "\"\"")
        )
    }
}

fn listener_tables(conn: &Connection) -> duckdb::Result<Vec<ListenerTable>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT c.schema_name, c.table_name,
                EXISTS (SELECT 1 FROM duckdb_constraints() k
                        WHERE k.database_name = c.database_name AND k.schema_name = c.schema_name
                          AND k.table_name = c.table_name
                          AND k.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
                          AND list_contains(k.constraint_column_names, 'listener_id'))
         FROM duckdb_columns() c
         JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
         WHERE c.database_name = current_database() AND c.column_name = 'listener_id'
           AND c.schema_name IN ({OWN_SCHEMAS})
           AND NOT (c.schema_name = 'main' AND c.table_name = 'listeners')
           AND NOT (c.schema_name = 'raw' AND c.table_name = 'listen_events')
         ORDER BY 1, 2"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(ListenerTable {
            schema: r.get(0)?,
            table: r.get(1)?,
            keyed: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// `from`'s rows of every other listener table become `into`'s; where a key includes the
/// listener, `into`'s own row wins.
fn merge_other_tables(conn: &Connection, from: i32, into: i32) -> duckdb::Result<()> {
    for table in listener_tables(conn)? {
        let name = table.sql_name();
        if table.keyed {
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO {name}
                     SELECT * REPLACE (?::INTEGER AS listener_id) FROM {name} WHERE listener_id = ?"
                ),
                params![into, from],
            )?;
            conn.execute(&format!("DELETE FROM {name} WHERE listener_id = ?"), [from])?;
        } else {
            conn.execute(
                &format!("UPDATE {name} SET listener_id = ? WHERE listener_id = ?"),
                params![into, from],
            )?;
        }
    }
    Ok(())
}

/// `from`'s events become `into`'s, deduplicated by the importer's rule (see the module);
/// (events moved, exact duplicates dropped, listens newly marked as cross-source duplicates).
fn merge_events(
    conn: &Connection,
    from: i32,
    into: i32,
    window_us: i64,
) -> duckdb::Result<(u64, u64, u64)> {
    // Exact duplicates: the same source kind and fingerprint. Each is dropped; events that
    // pointed at one point at the listen it duplicated (into's, or what that one duplicates).
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE listener_merge_gone AS
         WITH i AS (
             SELECT source_kind, fingerprint, event_id, duplicate_of FROM raw.listen_events
             WHERE listener_id = $2
             QUALIFY row_number() OVER (PARTITION BY source_kind, fingerprint ORDER BY event_id) = 1
         )
         SELECT f.event_id, coalesce(i.duplicate_of, i.event_id) AS kept
         FROM raw.listen_events f JOIN i USING (source_kind, fingerprint)
         WHERE f.listener_id = $1",
        params![from, into],
    )?;
    conn.execute_batch(
        "UPDATE raw.listen_events AS t SET duplicate_of = g.kept
         FROM temp.listener_merge_gone AS g WHERE t.duplicate_of = g.event_id;
         DELETE FROM raw.listen_events
         WHERE event_id IN (SELECT event_id FROM temp.listener_merge_gone);",
    )?;
    let exact: i64 = conn.query_row("SELECT count(*) FROM temp.listener_merge_gone", [], |r| {
        r.get(0)
    })?;

    // The same listen from another source: pairs of listens (neither a duplicate) of the two,
    // matched as an import matches (same identity, times within the window, nearest first,
    // each at most once). The later one becomes a duplicate of the one seen first, and what
    // pointed at it points at that one.
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE listener_merge_pairs AS
         WITH n AS (
             SELECT event_id, source_kind, identity_key,
                    epoch_us(ended_at) AS ended_us, epoch_us(started_at) AS started_us
             FROM raw.listen_events WHERE listener_id = $1 AND duplicate_of IS NULL
         ),
         e AS (
             SELECT event_id, source_kind, identity_key,
                    epoch_us(ended_at) AS ended_us, epoch_us(started_at) AS started_us
             FROM raw.listen_events
             WHERE listener_id = $2 AND duplicate_of IS NULL
               AND identity_key IN (SELECT identity_key FROM n)
         ),
         offsets AS (SELECT unnest([-1, 0, 1]) AS o),
         cand AS (
             SELECT n.event_id AS f, e.event_id AS i, abs(n.ended_us - e.ended_us) AS diff
             FROM n CROSS JOIN offsets JOIN e
               ON e.identity_key = n.identity_key AND e.ended_us // $3 = n.ended_us // $3 + offsets.o
             WHERE n.source_kind <> e.source_kind AND abs(n.ended_us - e.ended_us) <= $3
             UNION ALL
             SELECT n.event_id AS f, e.event_id AS i, abs(n.started_us - e.started_us) AS diff
             FROM n CROSS JOIN offsets JOIN e
               ON e.identity_key = n.identity_key AND e.started_us // $3 = n.started_us // $3 + offsets.o
             WHERE n.source_kind <> e.source_kind
               AND (n.ended_us IS NULL OR e.ended_us IS NULL) AND abs(n.started_us - e.started_us) <= $3
         ),
         best AS (
             SELECT * FROM cand
             QUALIFY row_number() OVER (PARTITION BY f ORDER BY diff, i) = 1
         ),
         pairs AS (
             SELECT f, i FROM best
             QUALIFY row_number() OVER (PARTITION BY i ORDER BY diff, f) = 1
         )
         SELECT greatest(f, i) AS loser, least(f, i) AS winner FROM pairs",
        params![from, into, window_us],
    )?;
    conn.execute_batch(
        "UPDATE raw.listen_events AS t SET duplicate_of = p.winner
         FROM temp.listener_merge_pairs AS p WHERE t.duplicate_of = p.loser;
         UPDATE raw.listen_events AS t SET duplicate_of = p.winner
         FROM temp.listener_merge_pairs AS p WHERE t.event_id = p.loser;",
    )?;
    let cross: i64 = conn.query_row("SELECT count(*) FROM temp.listener_merge_pairs", [], |r| {
        r.get(0)
    })?;
    let moved = conn.execute(
        "UPDATE raw.listen_events SET listener_id = ? WHERE listener_id = ?",
        params![into, from],
    )?;
    conn.execute_batch(
        "DROP TABLE temp.listener_merge_gone; DROP TABLE temp.listener_merge_pairs;",
    )?;
    Ok((moved as u64, exact as u64, cross as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_build_keeps_changes_out_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let wh =
            magpie_core::Warehouse::open(dir.path().join("w.duckdb"), &Default::default()).unwrap();
        let admin = ListenerAdmin::new(dir.path(), dir.path().join("backups"), "default", 60);
        admin.add(wh.conn(), "sam").unwrap();
        let building = magpie_core::warehouse::rewrite_gate().read().unwrap();
        let err = admin.remove(wh.conn(), "sam", false).unwrap_err();
        assert!(matches!(err, ListenerError::BuildRunning { .. }), "{err}");
        assert!(err.to_string().contains("\"sam\""), "{err}");
        assert!(!dir.path().join("backups").exists());
        drop(building);
        admin.remove(wh.conn(), "sam", false).unwrap();
    }

    #[test]
    fn names_break_rules_by_name() {
        let rule = |name: &str| match validate_name(name) {
            Err(ListenerError::BadName { rule, .. }) => Some(rule),
            _ => None,
        };
        assert_eq!(rule("alice"), None);
        assert_eq!(rule("Alice-2.b_c"), None);
        assert_eq!(rule(""), Some(NameRule::Empty));
        assert_eq!(rule(" alice"), Some(NameRule::Untrimmed));
        assert_eq!(rule("alice\t"), Some(NameRule::Untrimmed));
        assert_eq!(rule(&"a".repeat(65)), Some(NameRule::TooLong));
        assert_eq!(rule(&"a".repeat(64)), None);
        assert_eq!(rule(".."), Some(NameRule::FirstCharacter('.')));
        assert_eq!(rule("-x"), Some(NameRule::FirstCharacter('-')));
        assert_eq!(rule("a/b"), Some(NameRule::Character('/')));
        assert_eq!(rule("ana maria"), Some(NameRule::Character(' ')));
        assert_eq!(rule("josé"), Some(NameRule::Character('é')));
        let said = validate_name("a b").unwrap_err().to_string();
        assert!(
            said.contains("\"a b\"") && said.contains("only letters"),
            "{said}"
        );
        let said = validate_name("").unwrap_err().to_string();
        assert!(said.contains("must not be empty"), "{said}");
    }
}
