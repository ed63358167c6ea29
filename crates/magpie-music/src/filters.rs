//! A listener's own filters (issue 29, part 4): artists, albums or genres hidden from that
//! listener's stats — a family account's children's music, a partner's podcasts — without
//! deleting any event. They are rows of `raw.listener_filters`; the models apply them
//! (`int_hidden_plays`), so `fact_plays`, the dimensions' totals and every mart leave the
//! matching plays out, for the dashboards and for SQL alike, from the next build on.
//!
//! A filter's value is the name as shown (an artist's or an album's) or a genre; the models
//! compare names case- and accent-insensitively, as `normalise_name` does, and so does this
//! module when it refuses a filter already there or looks one up to remove it.
//!
//! ```
//! use magpie_core::{OpenOptions, Warehouse};
//! use magpie_music::filters::{self, FilterKind};
//! let dir = tempfile::tempdir().unwrap();
//! let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
//! filters::add(wh.conn(), "default", FilterKind::Genre, "Children's Music").unwrap();
//! assert_eq!(filters::list(wh.conn(), Some("default")).unwrap().len(), 1);
//! // The same name in another case is the same filter.
//! assert!(filters::add(wh.conn(), "default", FilterKind::Genre, "children's music").is_err());
//! filters::remove(wh.conn(), "default", FilterKind::Genre, "CHILDREN'S MUSIC").unwrap();
//! assert!(filters::list(wh.conn(), None).unwrap().is_empty());
//! ```

use std::fmt;

use chrono::{NaiveDateTime, Timelike};
use duckdb::{Connection, OptionalExt};
use serde::Serialize;

/// The longest filter value accepted, in characters.
pub const MAX_VALUE_CHARS: usize = 300;

/// What a filter hides: plays of an artist, of an album (by its name, of any artist), or of
/// every artist with a genre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    Artist,
    Album,
    Genre,
}

impl FilterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Artist => "artist",
            Self::Album => "album",
            Self::Genre => "genre",
        }
    }

    /// `artist`, `album` or `genre`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "artist" => Some(Self::Artist),
            "album" => Some(Self::Album),
            "genre" => Some(Self::Genre),
            _ => None,
        }
    }
}

impl fmt::Display for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One filter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerFilter {
    pub listener: String,
    pub listener_id: i32,
    pub kind: FilterKind,
    /// The name as the listener gave it (trimmed).
    pub value: String,
    /// When it was added (UTC).
    pub created_at: NaiveDateTime,
}

/// What can go wrong; each message starts with the field that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("listener: no listener named {name:?} (the listeners: {known})")]
    UnknownListener { name: String, known: String },
    #[error("{kind}: a name is needed (1 to {MAX_VALUE_CHARS} characters)")]
    EmptyValue { kind: FilterKind },
    #[error(
        "{kind}: {value:?} is longer than {MAX_VALUE_CHARS} characters or holds control characters"
    )]
    BadValue { kind: FilterKind, value: String },
    #[error("{kind}: {listener} already hides {existing:?}")]
    AlreadyHidden {
        kind: FilterKind,
        listener: String,
        existing: String,
    },
    #[error("{kind}: {listener} has no {kind} filter {value:?}{hint}")]
    NotFound {
        kind: FilterKind,
        listener: String,
        value: String,
        /// The listener's filters of that kind, when there are any.
        hint: String,
    },
    #[error("listener filters: {0}")]
    DuckDb(#[from] duckdb::Error),
}

impl FilterError {
    /// The field that is wrong (`listener`, `artist`, `album` or `genre`), when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::UnknownListener { .. } => Some("listener"),
            Self::EmptyValue { kind }
            | Self::BadValue { kind, .. }
            | Self::AlreadyHidden { kind, .. }
            | Self::NotFound { kind, .. } => Some(kind.as_str()),
            Self::DuckDb(_) => None,
        }
    }
}

/// The value as stored: trimmed, non-empty, not too long, no control characters.
fn checked_value(kind: FilterKind, value: &str) -> Result<String, FilterError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FilterError::EmptyValue { kind });
    }
    if value.chars().count() > MAX_VALUE_CHARS || value.chars().any(char::is_control) {
        return Err(FilterError::BadValue {
            kind,
            value: value.chars().take(60).collect(),
        });
    }
    Ok(value.to_string())
}

/// The id of an existing listener (filters never create one: a mistyped name would hide
/// nothing, silently).
fn listener_id(conn: &Connection, name: &str) -> Result<i32, FilterError> {
    let found: Option<i32> = conn
        .query_row(
            "SELECT listener_id FROM listeners WHERE name = ?",
            [name.trim()],
            |r| r.get(0),
        )
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => {
            let mut stmt = conn.prepare("SELECT name FROM listeners ORDER BY name")?;
            let known: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Err(FilterError::UnknownListener {
                name: name.to_string(),
                known: known.join(", "),
            })
        }
    }
}

/// The stored filter of `listener_id` and `kind` whose value matches `value` as the models
/// match names (lower case, accents stripped, trimmed), if any.
fn matching(
    conn: &Connection,
    listener_id: i32,
    kind: FilterKind,
    value: &str,
) -> Result<Option<String>, FilterError> {
    Ok(conn
        .query_row(
            "SELECT value FROM raw.listener_filters
             WHERE listener_id = ? AND kind = ?
               AND lower(strip_accents(trim(value))) = lower(strip_accents(trim(?)))
             ORDER BY value LIMIT 1",
            duckdb::params![listener_id, kind.as_str(), value],
            |r| r.get(0),
        )
        .optional()?)
}

/// Hide `value` (an artist's or album's name, or a genre) from `listener`'s stats from the
/// next build on. The listener must exist; a filter matching the same name is refused.
pub fn add(
    conn: &Connection,
    listener: &str,
    kind: FilterKind,
    value: &str,
) -> Result<ListenerFilter, FilterError> {
    let value = checked_value(kind, value)?;
    let id = listener_id(conn, listener)?;
    if let Some(existing) = matching(conn, id, kind, &value)? {
        return Err(FilterError::AlreadyHidden {
            kind,
            listener: listener.trim().to_string(),
            existing,
        });
    }
    // To the microsecond, as the table keeps it.
    let now = chrono::Utc::now().naive_utc();
    let created_at = now
        .with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    conn.execute(
        "INSERT INTO raw.listener_filters (listener_id, kind, value, created_at) VALUES (?, ?, ?, ?)",
        duckdb::params![id, kind.as_str(), value, created_at],
    )?;
    Ok(ListenerFilter {
        listener: listener.trim().to_string(),
        listener_id: id,
        kind,
        value,
        created_at,
    })
}

/// Every filter, by listener, kind and value; only `listener`'s when given (which must exist).
pub fn list(conn: &Connection, listener: Option<&str>) -> Result<Vec<ListenerFilter>, FilterError> {
    let only = listener.map(|l| listener_id(conn, l)).transpose()?;
    let mut stmt = conn.prepare(
        "SELECT l.name, f.listener_id, f.kind, f.value, f.created_at
         FROM raw.listener_filters AS f
         LEFT JOIN listeners AS l USING (listener_id)
         WHERE f.listener_id = coalesce(CAST(? AS INTEGER), f.listener_id)
         ORDER BY l.name, CASE f.kind WHEN 'artist' THEN 1 WHEN 'album' THEN 2 ELSE 3 END, lower(f.value)",
    )?;
    let rows = stmt.query_map([only], |r| {
        let kind: String = r.get(2)?;
        let listener_id: i32 = r.get(1)?;
        Ok(ListenerFilter {
            listener: r
                .get::<_, Option<String>>(0)?
                .unwrap_or_else(|| format!("#{listener_id}")),
            listener_id,
            // The table's CHECK admits only these three.
            kind: FilterKind::parse(&kind).unwrap_or(FilterKind::Artist),
            value: r.get(3)?,
            created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stop hiding `value` from `listener`'s stats (matched as the models match names): the plays
/// count again from the next build on. Returns the filter removed.
pub fn remove(
    conn: &Connection,
    listener: &str,
    kind: FilterKind,
    value: &str,
) -> Result<ListenerFilter, FilterError> {
    let value = checked_value(kind, value)?;
    let id = listener_id(conn, listener)?;
    let Some(stored) = matching(conn, id, kind, &value)? else {
        let mut stmt = conn.prepare(
            "SELECT value FROM raw.listener_filters WHERE listener_id = ? AND kind = ? ORDER BY lower(value)",
        )?;
        let others: Vec<String> = stmt
            .query_map(duckdb::params![id, kind.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let hint = if others.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = others.iter().map(|o| format!("{o:?}")).collect();
            format!(" (its {kind} filters: {})", quoted.join(", "))
        };
        return Err(FilterError::NotFound {
            kind,
            listener: listener.trim().to_string(),
            value,
            hint,
        });
    };
    let created_at: NaiveDateTime = conn.query_row(
        "DELETE FROM raw.listener_filters WHERE listener_id = ? AND kind = ? AND value = ?
         RETURNING created_at",
        duckdb::params![id, kind.as_str(), stored],
        |r| r.get(0),
    )?;
    Ok(ListenerFilter {
        listener: listener.trim().to_string(),
        listener_id: id,
        kind,
        value: stored,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{OpenOptions, Warehouse};

    fn warehouse() -> (tempfile::TempDir, Warehouse) {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
        wh.listener_id("alice").unwrap();
        (dir, wh)
    }

    #[test]
    fn errors_name_the_field() {
        let (_dir, wh) = warehouse();
        let c = wh.conn();
        let e = add(c, "bob", FilterKind::Artist, "ABBA").unwrap_err();
        assert_eq!(e.field(), Some("listener"));
        assert!(e.to_string().starts_with("listener: "), "{e}");
        assert!(e.to_string().contains("alice, default"), "{e}");
        let e = add(c, "alice", FilterKind::Album, "   ").unwrap_err();
        assert!(e.to_string().starts_with("album: "), "{e}");
        let e = add(c, "alice", FilterKind::Genre, "a\u{7}b").unwrap_err();
        assert!(e.to_string().starts_with("genre: "), "{e}");
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert_eq!(
            add(c, "alice", FilterKind::Artist, &long)
                .unwrap_err()
                .field(),
            Some("artist")
        );
        add(c, "alice", FilterKind::Artist, " Beyoncé ").unwrap();
        let e = add(c, "alice", FilterKind::Artist, "BEYONCE").unwrap_err();
        assert!(
            matches!(&e, FilterError::AlreadyHidden { existing, .. } if existing == "Beyoncé"),
            "{e}"
        );
        let e = remove(c, "alice", FilterKind::Artist, "Bach").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("artist: alice has no artist filter \"Bach\""),
            "{e}"
        );
        assert!(e.to_string().contains("\"Beyoncé\""), "{e}");
        // Nothing was written by the refused calls.
        assert_eq!(list(c, None).unwrap().len(), 1);
    }

    #[test]
    fn values_are_bound_not_spliced() {
        let (_dir, wh) = warehouse();
        let c = wh.conn();
        let evil = "x'); DROP TABLE raw.listener_filters; --";
        add(c, "alice", FilterKind::Album, evil).unwrap();
        let all = list(c, Some("alice")).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value, evil);
        assert_eq!(all[0].kind, FilterKind::Album);
        remove(c, "alice", FilterKind::Album, evil).unwrap();
        assert!(list(c, None).unwrap().is_empty());
    }

    #[test]
    fn filters_are_per_listener_and_kind() {
        let (_dir, wh) = warehouse();
        let c = wh.conn();
        add(c, "alice", FilterKind::Artist, "Frozen Cast").unwrap();
        add(c, "alice", FilterKind::Album, "Frozen Cast").unwrap();
        add(c, "default", FilterKind::Artist, "Frozen Cast").unwrap();
        let alice = list(c, Some("alice")).unwrap();
        assert_eq!(
            alice.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FilterKind::Artist, FilterKind::Album]
        );
        assert_eq!(list(c, None).unwrap().len(), 3);
        let gone = remove(c, "alice", FilterKind::Artist, "frozen cast").unwrap();
        assert_eq!(gone.value, "Frozen Cast");
        assert_eq!(list(c, Some("alice")).unwrap().len(), 1);
        assert_eq!(list(c, Some("default")).unwrap().len(), 1);
    }
}
