//! Public share links: a random 128-bit token for one dashboard or question, with some of its
//! variables locked to fixed values. Only a SHA-256 of the token is stored, in
//! `DATA_DIR/secrets/shares.json` (0600); the token itself is shown once, in the URL.
//! A revoked share is gone at once.
//!
//! The file is changed under [`magpie_core::secrets::update_private`]'s lock (threads and
//! processes: the web pages and `magpie share` may create and revoke at the same time) and read
//! without one (it is replaced by an atomic rename). Tokens are never logged.
//!
//! ```
//! use magpie_questions::{ShareStore, ShareTarget};
//! let dir = tempfile::tempdir().unwrap();
//! let store = ShareStore::new(dir.path());
//! let (share, token) = store.create(ShareTarget::Dashboard("listening".into()), Default::default()).unwrap();
//! assert_eq!(store.find(&token).unwrap().unwrap().id, share.id);
//! assert!(store.revoke(&share.id).unwrap());
//! assert!(store.find(&token).unwrap().is_none());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::QuestionsError;

/// Random bytes in a token (128 bits), written as 32 lowercase hex digits.
pub const TOKEN_BYTES: usize = 16;
/// Random bytes in a share's id (8 hex digits).
const ID_BYTES: usize = 4;
/// Longest locked value accepted.
const MAX_LOCKED_VALUE: usize = 1000;
/// Most locked variables on one share.
const MAX_LOCKED: usize = 50;

impl ShareTarget {
    /// `dashboard` or `question`.
    pub fn kind(&self) -> &'static str {
        match self {
            ShareTarget::Dashboard(_) => "dashboard",
            ShareTarget::Question(_) => "question",
        }
    }

    /// The shared object's slug.
    pub fn slug(&self) -> &str {
        match self {
            ShareTarget::Dashboard(s) | ShareTarget::Question(s) => s,
        }
    }
}

impl std::fmt::Display for ShareTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.slug())
    }
}

/// What a share shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareTarget {
    Dashboard(String),
    Question(String),
}

/// A share link as stored (never the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Short public id, for listing and revoking (not the token).
    pub id: String,
    pub target: ShareTarget,
    /// Variables fixed to these values; the viewer cannot change them.
    #[serde(default)]
    pub locked: BTreeMap<String, String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
}

/// The share links of a data folder.
#[derive(Debug, Clone)]
pub struct ShareStore {
    path: std::path::PathBuf,
}

impl ShareStore {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            path: magpie_core::secrets::dir(data_dir).join("shares.json"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A new link to `target` with `locked` variables fixed: a random 128-bit token (32 hex
    /// digits), of which only the SHA-256 is stored, and a random 8-hex-digit id for listing
    /// and revoking. Returns the share and the token, which is not kept anywhere: show it once.
    pub fn create(
        &self,
        target: ShareTarget,
        locked: BTreeMap<String, String>,
    ) -> Result<(Share, String), QuestionsError> {
        if !crate::valid_slug(target.slug()) {
            return Err(QuestionsError::Invalid(format!(
                "`{}` is not a {} slug",
                target.slug(),
                target.kind()
            )));
        }
        if locked.len() > MAX_LOCKED {
            return Err(QuestionsError::Invalid(format!(
                "at most {MAX_LOCKED} variables can be locked"
            )));
        }
        for (name, value) in &locked {
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok {
                return Err(QuestionsError::Invalid(format!(
                    "`{name}` is not a variable name (letters, digits and `_`)"
                )));
            }
            if value.len() > MAX_LOCKED_VALUE {
                return Err(QuestionsError::Variable {
                    name: name.clone(),
                    message: format!("a locked value has at most {MAX_LOCKED_VALUE} characters"),
                });
            }
        }
        let token = hex::encode(rand::random::<[u8; TOKEN_BYTES]>());
        let mut share = Share {
            id: String::new(),
            target,
            locked,
            created_at: chrono::Utc::now(),
            token_sha256: sha256_hex(&token),
        };
        self.modify(|file| {
            // 32 bits of id: a clash is rare, and checked.
            let id = loop {
                let id = hex::encode(rand::random::<[u8; ID_BYTES]>());
                if !file.shares.iter().any(|s| s.id == id) {
                    break id;
                }
            };
            share.id = id;
            file.shares.push(share.clone());
        })?;
        Ok((share, token))
    }

    /// Every share, newest first.
    pub fn list(&self) -> Result<Vec<Share>, QuestionsError> {
        let mut shares = self.read()?.shares;
        // Stored oldest first: reversed, equal times keep newest first too.
        shares.reverse();
        shares.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(shares)
    }

    /// Remove the share `id`; whether it existed. Its token finds nothing from now on.
    pub fn revoke(&self, id: &str) -> Result<bool, QuestionsError> {
        let mut found = false;
        self.modify(|file| {
            let before = file.shares.len();
            file.shares.retain(|s| s.id != id);
            found = file.shares.len() != before;
        })?;
        Ok(found)
    }

    /// The share a presented token opens: `None` for an unknown, revoked or malformed token
    /// (any string: only 32 hex digits are hashed). The hash is compared with every stored one
    /// in constant time.
    pub fn find(&self, token: &str) -> Result<Option<Share>, QuestionsError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let presented = Sha256::digest(token.to_ascii_lowercase().as_bytes());
        let mut found = None;
        for share in self.read()?.shares {
            let stored = hex::decode(&share.token_sha256).unwrap_or_default();
            if constant_time_eq(&stored, &presented) && found.is_none() {
                found = Some(share);
            }
        }
        Ok(found)
    }

    fn read(&self) -> Result<File, QuestionsError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => self.parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(source) => Err(QuestionsError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<File, QuestionsError> {
        serde_json::from_slice(bytes).map_err(|e| {
            QuestionsError::Invalid(format!(
                "{}: not a valid share file ({:?} error at line {}, column {})",
                self.path.display(),
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Read, change, write back, under the file's lock (threads and processes).
    fn modify(&self, change: impl FnOnce(&mut File)) -> Result<(), QuestionsError> {
        magpie_core::secrets::update_private(&self.path, |old| {
            let mut file = match old {
                Some(bytes) => self.parse(&bytes)?,
                None => File::default(),
            };
            change(&mut file);
            serde_json::to_vec_pretty(&file).map_err(|e| QuestionsError::Invalid(e.to_string()))
        })?
    }
}

/// The share file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Oldest first.
    #[serde(default)]
    shares: Vec<Share>,
}

/// Whether `token` looks like one of ours: exactly 32 hex digits.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal contents, in time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(well_formed(&"a".repeat(32)) && well_formed(&"F".repeat(32)));
        for bad in [
            "",
            "g".repeat(32).as_str(),
            &"a".repeat(31),
            &"a".repeat(33),
            "é",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
