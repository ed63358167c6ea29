//! Spotify tokens per listener, in `DATA_DIR/secrets/spotify-tokens.json` with mode 0600 (the
//! folder 0700), written atomically. Tokens never reach logs: they are [`Secret`]s.

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

    fn read(&self) -> Result<File, SpotifyError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SpotifyError::TokenFile {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(SpotifyError::TokenFile {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn write(&self, file: &File) -> Result<(), SpotifyError> {
        let body = serde_json::to_vec_pretty(file).map_err(|e| SpotifyError::TokenFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        magpie_core::secrets::write_private(&self.path, &body).map_err(|e| {
            SpotifyError::TokenFile {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })
    }

    /// Every listener with tokens, by name.
    pub fn all(&self) -> Result<BTreeMap<String, Tokens>, SpotifyError> {
        Ok(self.read()?.listeners)
    }

    pub fn get(&self, listener: &str) -> Result<Option<Tokens>, SpotifyError> {
        Ok(self.read()?.listeners.remove(listener))
    }

    pub fn put(&self, listener: &str, tokens: Tokens) -> Result<(), SpotifyError> {
        let mut file = self.read()?;
        file.listeners.insert(listener.to_string(), tokens);
        self.write(&file)
    }

    pub fn remove(&self, listener: &str) -> Result<(), SpotifyError> {
        let mut file = self.read()?;
        file.listeners.remove(listener);
        self.write(&file)
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
    }
}
