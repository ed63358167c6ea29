//! Who may submit listens: tokens per listener, the Last.fm sessions made from them, and the
//! Last.fm API key and secret that clients sign their calls with.
//!
//! Everything lives in private files under `DATA_DIR/secrets/` (0600), so `magpie listener
//! token create` works while `magpie serve` holds the warehouse, and the server sees a new or
//! revoked token on the next request (it re-reads the file when it changed). Tokens and
//! session keys are kept only as SHA-256 hashes: they are 122 random bits, so a fast hash is
//! enough and a stolen file grants nothing. The Last.fm API secret has to be readable (the
//! server signs with it to check `api_sig`); like a Last.fm app's own secret it identifies the
//! client program, not a person, and grants nothing without a session.
//!
//! ```
//! use magpie_music::submit::tokens::TokenStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = TokenStore::new(dir.path());
//! let made = store.create("alice", Some("phone")).unwrap();
//! assert_eq!(store.verify(&made.token).unwrap().unwrap().listener, "alice");
//! store.revoke(&made.info.id).unwrap();
//! assert!(store.verify(&made.token).unwrap().is_none());
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What can go wrong with the token files.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Secrets(#[from] magpie_core::secrets::SecretsError),
    #[error("{path}: not a token file magpie can read: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no token with id {0:?}")]
    UnknownToken(String),
    #[error("a listener name must be 1 to 64 characters without '/' or control characters: {0:?}")]
    BadListener(String),
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenInfo {
    /// Short public id, for listing and revoking.
    pub id: String,
    pub listener: String,
    /// What the user called it ("phone", "navidrome").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A token just made: the only time its text is known.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub info: TokenInfo,
    pub token: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<StoredToken>,
    #[serde(default)]
    sessions: Vec<StoredSession>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the token, hex.
    sha256: String,
    /// MD5 of the token, hex: what Last.fm's mobile authentication is built on
    /// (`authToken = md5(username + md5(password))`, the form pylast and GNU FM clients send).
    /// The token is 122 random bits, so neither hash can be turned back into it.
    #[serde(default)]
    md5: String,
}

/// A Last.fm session key, made from a token (`auth.getMobileSession`) or an approved request
/// token (`auth.getSession`); revoking the token ends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSession {
    token_id: String,
    sha256: String,
    created_at: DateTime<Utc>,
}

/// Tokens (hashed, with their sessions) taken away from a listener, which
/// [`TokenStore::restore`] can put back.
#[derive(Debug, Default)]
pub struct RemovedTokens {
    tokens: Vec<StoredToken>,
    sessions: Vec<StoredSession>,
}

impl RemovedTokens {
    /// How many tokens were removed.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The Last.fm-compatible API's key and secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

/// The token files of one data folder.
pub struct TokenStore {
    tokens: PathBuf,
    api_key: PathBuf,
    /// The token file as last read, and its modification time.
    cached: Mutex<Option<(SystemTime, TokenFile)>>,
    /// The API key once read or made (it never changes).
    api: std::sync::OnceLock<ApiKey>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn md5_hex(text: &str) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

/// 128 random bits as a UUID-shaped string (version 4): the shape ListenBrainz's own tokens
/// have, which some clients check.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// 32 hex characters, the shape of Last.fm's keys, secrets, tokens and session keys.
pub fn random_hex32() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `name` can be a listener name (it appears in URLs such as `/1/user/<name>/…`).
pub fn valid_listener(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c == '/' || c.is_control())
        && name.trim() == name
}

impl TokenStore {
    pub fn new(data_dir: &Path) -> Self {
        let dir = magpie_core::secrets::dir(data_dir);
        Self {
            tokens: dir.join("listen-tokens.json"),
            api_key: dir.join("lastfm-api.json"),
            cached: Mutex::new(None),
            api: std::sync::OnceLock::new(),
        }
    }

    /// Make a token for `listener`.
    pub fn create(&self, listener: &str, label: Option<&str>) -> Result<NewToken, TokenError> {
        if !valid_listener(listener) {
            return Err(TokenError::BadListener(listener.to_string()));
        }
        let token = random_uuid();
        let info = TokenInfo {
            id: format!("t{}", &random_hex32()[..10]),
            listener: listener.to_string(),
            label: label
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
            created_at: Utc::now(),
        };
        let stored = StoredToken {
            info: info.clone(),
            sha256: sha256_hex(&token),
            md5: md5_hex(&token),
        };
        self.change(|file| {
            file.tokens.push(stored);
            Ok(())
        })?;
        Ok(NewToken { info, token })
    }

    /// Every token, oldest first; only `listener`'s when given.
    pub fn list(&self, listener: Option<&str>) -> Result<Vec<TokenInfo>, TokenError> {
        let file = self.read()?;
        Ok(file
            .tokens
            .into_iter()
            .map(|t| t.info)
            .filter(|t| listener.is_none_or(|l| t.listener == l))
            .collect())
    }

    /// Revoke a token and every session made from it; the revoked token's details.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, TokenError> {
        let mut gone = None;
        self.change(|file| {
            let Some(at) = file.tokens.iter().position(|t| t.info.id == id) else {
                return Err(TokenError::UnknownToken(id.to_string()));
            };
            gone = Some(file.tokens.remove(at).info);
            file.sessions.retain(|s| s.token_id != id);
            Ok(())
        })?;
        gone.ok_or_else(|| TokenError::UnknownToken(id.to_string()))
    }

    /// Give every token of `from` to `to` (a listener renamed or merged), in one write; the
    /// ids of the tokens moved. They keep working: a token is checked by its hash, and
    /// Last.fm's mobile authentication hashes the user name the client sends (now `to`).
    pub fn move_listener(&self, from: &str, to: &str) -> Result<Vec<String>, TokenError> {
        if !valid_listener(to) {
            return Err(TokenError::BadListener(to.to_string()));
        }
        let mut moved = Vec::new();
        self.change(|file| {
            for t in file.tokens.iter_mut().filter(|t| t.info.listener == from) {
                t.info.listener = to.to_string();
                moved.push(t.info.id.clone());
            }
            Ok(())
        })?;
        Ok(moved)
    }

    /// Give the tokens with these ids to `to` (undoing [`TokenStore::move_listener`]).
    pub fn move_tokens(&self, ids: &[String], to: &str) -> Result<(), TokenError> {
        self.change(|file| {
            for t in file.tokens.iter_mut().filter(|t| ids.contains(&t.info.id)) {
                t.info.listener = to.to_string();
            }
            Ok(())
        })
    }

    /// Revoke every token of `listener` with their sessions, in one write; what was removed,
    /// to put back with [`TokenStore::restore`] if the rest of a removal fails.
    pub fn remove_listener(&self, listener: &str) -> Result<RemovedTokens, TokenError> {
        let mut removed = RemovedTokens::default();
        self.change(|file| {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut file.tokens)
                .into_iter()
                .partition(|t| t.info.listener == listener);
            file.tokens = kept;
            let (sessions, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut file.sessions)
                .into_iter()
                .partition(|s| gone.iter().any(|t| t.info.id == s.token_id));
            file.sessions = kept;
            removed = RemovedTokens {
                tokens: gone,
                sessions,
            };
            Ok(())
        })?;
        Ok(removed)
    }

    /// Put back tokens and sessions [`TokenStore::remove_listener`] removed.
    pub fn restore(&self, removed: RemovedTokens) -> Result<(), TokenError> {
        self.change(|file| {
            file.tokens.extend(removed.tokens);
            file.sessions.extend(removed.sessions);
            Ok(())
        })
    }

    /// The token's details when `token` is a live token.
    pub fn verify(&self, token: &str) -> Result<Option<TokenInfo>, TokenError> {
        let hash = sha256_hex(token.trim());
        let file = self.read()?;
        Ok(file
            .tokens
            .into_iter()
            .find(|t| t.sha256 == hash)
            .map(|t| t.info))
    }

    /// Last.fm's mobile authentication: the listener's token whose
    /// `md5(username + md5(token))` is `auth_token` (the listener name compared without case).
    pub fn verify_auth_token(
        &self,
        username: &str,
        auth_token: &str,
    ) -> Result<Option<TokenInfo>, TokenError> {
        let given = auth_token.trim().to_ascii_lowercase();
        let file = self.read()?;
        Ok(file
            .tokens
            .into_iter()
            .filter(|t| t.info.listener.eq_ignore_ascii_case(username) && !t.md5.is_empty())
            .find(|t| md5_hex(&format!("{username}{}", t.md5)) == given)
            .map(|t| t.info))
    }

    /// A new Last.fm session key for a token; its text is returned once.
    pub fn open_session(&self, token_id: &str) -> Result<String, TokenError> {
        let key = random_hex32();
        let stored = StoredSession {
            token_id: token_id.to_string(),
            sha256: sha256_hex(&key),
            created_at: Utc::now(),
        };
        self.change(|file| {
            if !file.tokens.iter().any(|t| t.info.id == token_id) {
                return Err(TokenError::UnknownToken(token_id.to_string()));
            }
            file.sessions.push(stored);
            Ok(())
        })?;
        Ok(key)
    }

    /// The token behind a Last.fm session key, when the key is live.
    pub fn session(&self, key: &str) -> Result<Option<TokenInfo>, TokenError> {
        let hash = sha256_hex(key.trim());
        let file = self.read()?;
        let Some(session) = file.sessions.iter().find(|s| s.sha256 == hash) else {
            return Ok(None);
        };
        Ok(file
            .tokens
            .into_iter()
            .find(|t| t.info.id == session.token_id)
            .map(|t| t.info))
    }

    /// The Last.fm API key and secret, made on first use (read from disk once).
    pub fn api_key(&self) -> Result<ApiKey, TokenError> {
        if let Some(key) = self.api.get() {
            return Ok(key.clone());
        }
        let key = self.read_or_make_api_key()?;
        Ok(self.api.get_or_init(|| key).clone())
    }

    fn read_or_make_api_key(&self) -> Result<ApiKey, TokenError> {
        if let Ok(bytes) = std::fs::read(&self.api_key)
            && let Ok(key) = serde_json::from_slice::<ApiKey>(&bytes)
        {
            return Ok(key);
        }
        let mut made = None;
        let path = self.api_key.clone();
        magpie_core::secrets::update_private(&self.api_key, |old| {
            // Another process may have made it meanwhile: keep theirs.
            let key = old
                .and_then(|b| serde_json::from_slice::<ApiKey>(&b).ok())
                .unwrap_or_else(|| ApiKey {
                    key: random_hex32(),
                    secret: random_hex32(),
                });
            let bytes = serde_json::to_vec_pretty(&key)
                .map_err(|source| TokenError::Corrupt { path, source })?;
            made = Some(key);
            Ok::<_, TokenError>(bytes)
        })??;
        Ok(made.expect("set by the change"))
    }

    /// The token file, re-read only when it changed on disk.
    fn read(&self) -> Result<TokenFile, TokenError> {
        let modified = std::fs::metadata(&self.tokens)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(m), Some((at, file))) = (modified, cached.as_ref())
            && *at == m
        {
            return Ok(file.clone());
        }
        let file = match std::fs::read(&self.tokens) {
            Ok(bytes) => self.parse(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenFile::default(),
            Err(source) => {
                return Err(magpie_core::secrets::SecretsError::Io {
                    path: self.tokens.clone(),
                    source,
                }
                .into());
            }
        };
        *cached = modified.map(|m| (m, file.clone()));
        Ok(file)
    }

    fn parse(&self, bytes: &[u8]) -> Result<TokenFile, TokenError> {
        serde_json::from_slice(bytes).map_err(|source| TokenError::Corrupt {
            path: self.tokens.clone(),
            source,
        })
    }

    /// Change the token file under its lock.
    fn change(
        &self,
        f: impl FnOnce(&mut TokenFile) -> Result<(), TokenError>,
    ) -> Result<(), TokenError> {
        magpie_core::secrets::update_private(&self.tokens, |old| {
            let mut file = match old {
                Some(bytes) if !bytes.is_empty() => self.parse(&bytes)?,
                _ => TokenFile::default(),
            };
            f(&mut file)?;
            serde_json::to_vec_pretty(&file).map_err(|source| TokenError::Corrupt {
                path: self.tokens.clone(),
                source,
            })
        })??;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_sessions_end_with_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let a = store.create("alice", Some(" phone ")).unwrap();
        let b = store.create("bob", None).unwrap();
        assert_eq!(a.token.len(), 36);
        assert_eq!(a.info.label.as_deref(), Some("phone"));
        let text = std::fs::read_to_string(dir.path().join("secrets/listen-tokens.json")).unwrap();
        assert!(!text.contains(&a.token) && !text.contains(&b.token));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets/listen-tokens.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.list(Some("bob")).unwrap(), vec![b.info.clone()]);
        assert_eq!(store.list(None).unwrap().len(), 2);
        let auth = md5_hex(&format!("alice{}", md5_hex(&a.token)));
        assert_eq!(
            store.verify_auth_token("alice", &auth).unwrap().unwrap().id,
            a.info.id
        );
        assert!(store.verify_auth_token("bob", &auth).unwrap().is_none());
        let sk = store.open_session(&a.info.id).unwrap();
        assert_eq!(store.session(&sk).unwrap().unwrap().listener, "alice");
        assert!(store.session("0".repeat(32).as_str()).unwrap().is_none());
        // A second store (another process) sees the revocation.
        TokenStore::new(dir.path()).revoke(&a.info.id).unwrap();
        assert!(store.verify(&a.token).unwrap().is_none());
        assert!(store.session(&sk).unwrap().is_none());
        assert_eq!(store.verify(&b.token).unwrap().unwrap().listener, "bob");
        assert!(matches!(
            store.revoke(&a.info.id),
            Err(TokenError::UnknownToken(_))
        ));
        assert!(matches!(
            store.create("a/b", None),
            Err(TokenError::BadListener(_))
        ));
    }

    #[test]
    fn the_api_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenStore::new(dir.path()).api_key().unwrap();
        let again = TokenStore::new(dir.path()).api_key().unwrap();
        assert_eq!(first, again);
        assert_eq!(first.key.len(), 32);
        assert_ne!(first.key, first.secret);
    }
}
