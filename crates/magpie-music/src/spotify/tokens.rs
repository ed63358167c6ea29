//! Spotify tokens per listener, in `DATA_DIR/secrets/spotify-tokens.json` with mode 0600 (the
//! folder 0700), written atomically. Tokens never reach logs: they are [`Secret`]s.
//!
//! Several writers share the file: the poller and the enrichment refresh tokens, the admin
//! pages and the CLI connect and disconnect listeners, possibly in different processes. Every
//! change is a read-modify-write of the whole file, so each one holds an exclusive lock from
//! the read to the rename ([`magpie_core::secrets::update_private`]: a mutex per file within
//! the process, and an advisory lock (`flock`) on the sibling `spotify-tokens.json.lock`
//! across processes). Without it, two writers reading the same old file each write back their
//! own change only, and the other's refresh token is lost (the listener must reconnect).
//! Readers take no lock: the writer replaces the file by an atomic rename, so a reader sees the
//! old file or the new one whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use magpie_core::Secret;
use serde::{Deserialize, Serialize};

use super::SpotifyError;

/// Spotify refresh tokens stop working six months after the user authorised (2026 rules).
pub const REFRESH_TOKEN_LIFETIME_DAYS: i64 = 182;
/// How long before that magpie starts warning.
pub const WARN_DAYS_BEFORE: i64 = 14;

/// One listener's tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_at: DateTime<Utc>,
    /// When the user authorised: the refresh token dies six months later.
    pub authorized_at: DateTime<Utc>,
}

impl Tokens {
    /// The day the refresh token stops working.
    pub fn refresh_expires_at(&self) -> DateTime<Utc> {
        self.authorized_at + Duration::days(REFRESH_TOKEN_LIFETIME_DAYS)
    }

    /// Whether to warn that the listener must reconnect soon.
    pub fn reconnect_soon(&self, now: DateTime<Utc>) -> bool {
        now + Duration::days(WARN_DAYS_BEFORE) >= self.refresh_expires_at()
    }

    /// Whether the access token needs refreshing (a minute's margin).
    pub fn access_expired(&self, now: DateTime<Utc>) -> bool {
        now + Duration::seconds(60) >= self.expires_at
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    listeners: BTreeMap<String, Tokens>,
}

/// The token file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: magpie_core::secrets::dir(data_dir).join("spotify-tokens.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, reason: impl ToString) -> SpotifyError {
        SpotifyError::TokenFile {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// The whole file (none yet: no listener).
    fn read(&self) -> Result<File, SpotifyError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => self.parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// A broken file is reported by position only: serde's message could quote a token.
    fn parse(&self, bytes: &[u8]) -> Result<File, SpotifyError> {
        serde_json::from_slice(bytes).map_err(|e| {
            self.fail(format!(
                "not a valid token file ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Read the file, let `change` edit it, write it back (0600, atomically, in a 0700
    /// folder): one step under [`magpie_core::secrets::update_private`]'s lock, within this
    /// process and across processes. A file that cannot be read is left as it is.
    fn modify(&self, change: impl FnOnce(&mut File)) -> Result<(), SpotifyError> {
        magpie_core::secrets::update_private(&self.path, |old| {
            let mut file = match old {
                Some(bytes) => self.parse(&bytes)?,
                None => File::default(),
            };
            change(&mut file);
            serde_json::to_vec_pretty(&file).map_err(|e| self.fail(e))
        })
        .map_err(|e| self.fail(e))?
    }

    /// Every listener with tokens, by name.
    pub fn all(&self) -> Result<BTreeMap<String, Tokens>, SpotifyError> {
        Ok(self.read()?.listeners)
    }

    pub fn get(&self, listener: &str) -> Result<Option<Tokens>, SpotifyError> {
        Ok(self.read()?.listeners.remove(listener))
    }

    /// Store a listener's tokens, keeping every other listener's (under the lock).
    pub fn put(&self, listener: &str, tokens: Tokens) -> Result<(), SpotifyError> {
        self.modify(|file| {
            file.listeners.insert(listener.to_string(), tokens);
        })
    }

    /// Store the tokens a refresh of `from` gave, unless the stored ones changed while the
    /// refresh was on the network: another writer refreshed first, the listener reconnected
    /// (a new authorisation must not be replaced by tokens of the old one) or was disconnected
    /// (a late refresh must not connect them again). The tokens to use from now on, or `None`
    /// when the listener is no longer connected.
    pub fn put_refreshed(
        &self,
        listener: &str,
        from: &Tokens,
        refreshed: Tokens,
    ) -> Result<Option<Tokens>, SpotifyError> {
        let mut current = None;
        self.modify(|file| match file.listeners.get(listener) {
            Some(stored)
                if stored.refresh_token == from.refresh_token
                    && stored.authorized_at == from.authorized_at =>
            {
                file.listeners
                    .insert(listener.to_string(), refreshed.clone());
                current = Some(refreshed);
            }
            stored => current = stored.cloned(),
        })?;
        Ok(current)
    }

    /// Give `from`'s tokens to `to` in one write (a listener renamed or merged): moved when
    /// `to` has none, dropped when `to` is connected already (its own account stays). The
    /// tokens `from` had and whether they moved; `None` when `from` had none.
    pub fn move_listener(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Option<(Tokens, bool)>, SpotifyError> {
        let mut outcome = None;
        self.modify(|file| {
            if let Some(tokens) = file.listeners.remove(from) {
                let moved = !file.listeners.contains_key(to);
                if moved {
                    file.listeners.insert(to.to_string(), tokens.clone());
                }
                outcome = Some((tokens, moved));
            }
        })?;
        Ok(outcome)
    }

    /// Forget a listener's tokens and return them (`None` when it had none), keeping every
    /// other listener's (under the lock).
    pub fn take(&self, listener: &str) -> Result<Option<Tokens>, SpotifyError> {
        let mut taken = None;
        self.modify(|file| taken = file.listeners.remove(listener))?;
        Ok(taken)
    }

    /// Forget a listener's tokens, keeping every other listener's (under the lock).
    pub fn remove(&self, listener: &str) -> Result<(), SpotifyError> {
        self.modify(|file| {
            file.listeners.remove(listener);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let now = Utc::now();
        let tokens = Tokens {
            access_token: Secret::new("at"),
            refresh_token: Secret::new("rt"),
            expires_at: now,
            authorized_at: now - Duration::days(170),
        };
        assert!(format!("{tokens:?}").contains("***") && !format!("{tokens:?}").contains("\"rt\""));
        store.put("ana", tokens).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = store.get("ana").unwrap().unwrap();
        assert_eq!(back.refresh_token.expose(), "rt");
        assert!(back.reconnect_soon(now), "170 of 182 days gone");
        assert!(back.access_expired(now));
        assert!(store.get("bob").unwrap().is_none());
        store.remove("ana").unwrap();
        assert!(store.all().unwrap().is_empty());
    }

    #[test]
    fn a_broken_file_is_reported_without_its_secrets_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let broken = r#"{"listeners":{"ana":"at-secret"}}"#;
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), broken).unwrap();
        let err = store.all().unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("at-secret"), "{err}");
        let now = Utc::now();
        let tokens = Tokens {
            access_token: Secret::new("a"),
            refresh_token: Secret::new("r"),
            expires_at: now,
            authorized_at: now,
        };
        assert!(
            store.put("bob", tokens).is_err(),
            "no write over a file it cannot read"
        );
        assert_eq!(std::fs::read_to_string(store.path()).unwrap(), broken);
    }

    #[test]
    fn a_late_refresh_never_replaces_a_newer_authorisation_or_reconnects_a_removed_listener() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let tokens = |refresh: &str, authorized: i64| Tokens {
            access_token: Secret::new(format!("access-{refresh}")),
            refresh_token: Secret::new(refresh),
            expires_at: Utc::now(),
            authorized_at: DateTime::from_timestamp(authorized, 0).unwrap(),
        };
        let old = tokens("r1", 1_000);
        store.put("ana", old.clone()).unwrap();
        // The poller refreshes r1 ...
        let mine = tokens("r2", 1_000);
        // ... while ana reconnects (a new authorisation).
        store.put("ana", tokens("fresh", 2_000)).unwrap();
        let used = store
            .put_refreshed("ana", &old, mine.clone())
            .unwrap()
            .unwrap();
        assert_eq!(used.refresh_token.expose(), "fresh", "the reconnect stays");
        assert_eq!(
            store.get("ana").unwrap().unwrap().refresh_token.expose(),
            "fresh"
        );
        // Nobody else wrote: the refresh is kept.
        let now = store.get("ana").unwrap().unwrap();
        let next = tokens("r3", 2_000);
        let used = store.put_refreshed("ana", &now, next).unwrap().unwrap();
        assert_eq!(used.refresh_token.expose(), "r3");
        // Disconnected meanwhile: not connected again.
        let before = store.get("ana").unwrap().unwrap();
        store.remove("ana").unwrap();
        assert!(store.put_refreshed("ana", &before, mine).unwrap().is_none());
        assert!(store.get("ana").unwrap().is_none());
    }
}
