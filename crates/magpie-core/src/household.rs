//! Who may see whose listening: each listener's choice of audience and their own login, kept in
//! `DATA_DIR/secrets/household.json` (0600, changed under [`secrets::update_private`]'s lock,
//! passwords only as argon2 hashes). It lives beside the admin password rather than in the
//! warehouse, so the server sees a change on its next request and the CLI can change it while
//! `magpie serve` runs.
//!
//! The rule ([`Household::may_see`]): the admin sees everyone; a listener always sees
//! themselves; others see a listener whose [`Visibility`] lets them in — `everyone` (anyone who
//! can reach the pages), `household` (anyone logged in: the admin or another listener), or
//! `private` (nobody else).
//!
//! ```
//! use magpie_core::household::{self, Household, Viewer, Visibility};
//! let dir = tempfile::tempdir().unwrap();
//! household::set_visibility(dir.path(), "alice", Visibility::Private).unwrap();
//! household::set_password(dir.path(), "bob", "a long enough secret").unwrap();
//! let home = Household::load(dir.path()).unwrap();
//! let bob = Viewer::Listener("bob".into());
//! assert!(!home.may_see(&bob, "alice"));
//! assert!(home.may_see(&Viewer::Admin, "alice"));
//! assert!(home.may_see(&Viewer::Anonymous, "bob"), "bob kept the default: everyone");
//! assert!(household::verify(dir.path(), "bob", "a long enough secret").unwrap());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secrets::{self, SecretsError};

/// Who sees a listener's pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone who can reach the pages (the LAN, or everyone logged in with
    /// `server.require_login`).
    #[default]
    Everyone,
    /// Logged-in members of the household: the admin and listeners with a login.
    Household,
    /// Only the listener and the admin.
    Private,
}

impl Visibility {
    pub const ALL: [Visibility; 3] = [
        Visibility::Everyone,
        Visibility::Household,
        Visibility::Private,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Everyone => "everyone",
            Visibility::Household => "household",
            Visibility::Private => "private",
        }
    }

    /// `everyone`, `household` or `private`.
    pub fn parse(text: &str) -> Result<Self, HouseholdError> {
        match text.trim() {
            "everyone" => Ok(Visibility::Everyone),
            "household" => Ok(Visibility::Household),
            "private" => Ok(Visibility::Private),
            other => Err(HouseholdError::Visibility(other.to_string())),
        }
    }
}

/// Who is asking to see pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// No session.
    Anonymous,
    /// The admin's session.
    Admin,
    /// A listener logged in with their own password.
    Listener(String),
}

/// One listener's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Member {
    #[serde(default)]
    pub visibility: Visibility,
    /// The argon2id hash of the listener's own password, when the admin gave them a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Every listener's settings, by listener name; listeners not named have the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Household {
    #[serde(default)]
    pub listeners: BTreeMap<String, Member>,
}

/// Errors reading or changing the household's settings.
#[derive(Debug, thiserror::Error)]
pub enum HouseholdError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("visibility `{0}` is not one of everyone, household, private")]
    Visibility(String),
    #[error(
        "a listener's password must have at least {} characters",
        secrets::MIN_PASSWORD_LEN
    )]
    TooShort,
    #[error("listener name `{0}` is empty")]
    EmptyName(String),
}

fn file(data_dir: &Path) -> PathBuf {
    secrets::dir(data_dir).join("household.json")
}

impl Household {
    /// The settings (the defaults when nothing was ever set).
    pub fn load(data_dir: &Path) -> Result<Self, HouseholdError> {
        let path = file(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SecretsError::Io { path, source }.into()),
        }
    }

    /// Who sees `listener`'s pages.
    pub fn visibility(&self, listener: &str) -> Visibility {
        self.listeners
            .get(listener)
            .map(|m| m.visibility)
            .unwrap_or_default()
    }

    /// Whether `listener` can log in with a password of their own.
    pub fn has_login(&self, listener: &str) -> bool {
        self.listeners
            .get(listener)
            .is_some_and(|m| m.password.is_some())
    }

    /// Whether `viewer` may see `listener`'s pages and numbers.
    pub fn may_see(&self, viewer: &Viewer, listener: &str) -> bool {
        match viewer {
            Viewer::Admin => true,
            Viewer::Listener(me) if me == listener => true,
            Viewer::Listener(_) => self.visibility(listener) != Visibility::Private,
            Viewer::Anonymous => self.visibility(listener) == Visibility::Everyone,
        }
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Household, HouseholdError> {
    serde_json::from_slice(bytes).map_err(|e| HouseholdError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Change the settings under the file's lock.
fn change(
    data_dir: &Path,
    edit: impl FnOnce(&mut Household) -> Result<(), HouseholdError>,
) -> Result<(), HouseholdError> {
    let path = file(data_dir);
    secrets::update_private(&path, |old| {
        let mut household = match old {
            Some(bytes) => parse(&path, &bytes)?,
            None => Household::default(),
        };
        edit(&mut household)?;
        serde_json::to_vec_pretty(&household).map_err(|e| HouseholdError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })
    })?
}

fn named(listener: &str) -> Result<&str, HouseholdError> {
    let name = listener.trim();
    if name.is_empty() {
        return Err(HouseholdError::EmptyName(listener.to_string()));
    }
    Ok(name)
}

/// Set who sees `listener`'s pages.
pub fn set_visibility(
    data_dir: &Path,
    listener: &str,
    visibility: Visibility,
) -> Result<(), HouseholdError> {
    let name = named(listener)?.to_string();
    change(data_dir, |h| {
        h.listeners.entry(name).or_default().visibility = visibility;
        Ok(())
    })
}

/// Give `listener` a login with `password` (replacing any).
pub fn set_password(data_dir: &Path, listener: &str, password: &str) -> Result<(), HouseholdError> {
    let name = named(listener)?.to_string();
    if password.chars().count() < secrets::MIN_PASSWORD_LEN {
        return Err(HouseholdError::TooShort);
    }
    let hash = secrets::hash_secret(&file(data_dir), password)?;
    change(data_dir, |h| {
        h.listeners.entry(name).or_default().password = Some(hash);
        Ok(())
    })
}

/// Take `listener`'s login away (their settings stay).
pub fn remove_login(data_dir: &Path, listener: &str) -> Result<(), HouseholdError> {
    let name = named(listener)?.to_string();
    change(data_dir, |h| {
        if let Some(member) = h.listeners.get_mut(&name) {
            member.password = None;
        }
        Ok(())
    })
}

/// Whether `password` is `listener`'s own (false when they have no login).
pub fn verify(data_dir: &Path, listener: &str, password: &str) -> Result<bool, HouseholdError> {
    let household = Household::load(data_dir)?;
    let Some(hash) = household
        .listeners
        .get(listener.trim())
        .and_then(|m| m.password.as_deref())
    else {
        return Ok(false);
    };
    Ok(secrets::verify_secret(&file(data_dir), hash, password)?)
}

/// Carry `old`'s settings over to `new` (a rename; a merge keeps `new`'s own when it has them).
pub fn rename(data_dir: &Path, old: &str, new: &str) -> Result<(), HouseholdError> {
    let (old, new) = (named(old)?.to_string(), named(new)?.to_string());
    change(data_dir, |h| {
        if let Some(member) = h.listeners.remove(&old) {
            h.listeners.entry(new).or_insert(member);
        }
        Ok(())
    })
}

/// Forget `listener`'s settings and login.
pub fn remove(data_dir: &Path, listener: &str) -> Result<(), HouseholdError> {
    let name = named(listener)?.to_string();
    change(data_dir, |h| {
        h.listeners.remove(&name);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_decides_who_sees_a_listener() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        set_visibility(d, "everyone", Visibility::Everyone).unwrap();
        set_visibility(d, "home", Visibility::Household).unwrap();
        set_visibility(d, "me", Visibility::Private).unwrap();
        let h = Household::load(d).unwrap();
        let anon = Viewer::Anonymous;
        let other = Viewer::Listener("other".into());
        let me = Viewer::Listener("me".into());
        let table = [
            (&anon, [true, false, false]),
            (&other, [true, true, false]),
            (&me, [true, true, true]),
            (&Viewer::Admin, [true, true, true]),
        ];
        for (viewer, expected) in table {
            let seen = ["everyone", "home", "me"].map(|l| h.may_see(viewer, l));
            assert_eq!(seen, expected, "{viewer:?}");
        }
        assert!(
            h.may_see(&anon, "never-configured"),
            "the default is everyone"
        );
    }

    #[test]
    fn logins_are_hashed_private_and_carried_over_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            set_password(d, "alice", "short"),
            Err(HouseholdError::TooShort)
        ));
        assert!(matches!(
            set_password(d, "  ", "a long enough secret"),
            Err(HouseholdError::EmptyName(_))
        ));
        set_password(d, "alice", "a long enough secret").unwrap();
        let stored = std::fs::read_to_string(file(d)).unwrap();
        assert!(!stored.contains("a long enough secret") && stored.contains("$argon2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file(d)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(verify(d, "alice", "a long enough secret").unwrap());
        assert!(!verify(d, "alice", "a wrong long secret").unwrap());
        assert!(!verify(d, "bob", "a long enough secret").unwrap());
        rename(d, "alice", "alicia").unwrap();
        assert!(verify(d, "alicia", "a long enough secret").unwrap());
        assert!(!verify(d, "alice", "a long enough secret").unwrap());
        remove_login(d, "alicia").unwrap();
        assert!(!Household::load(d).unwrap().has_login("alicia"));
        assert!(matches!(
            Visibility::parse("friends"),
            Err(HouseholdError::Visibility(v)) if v == "friends"
        ));
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        secrets::write_private(&file(dir.path()), b"{ not json").unwrap();
        let err = Household::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("household.json"), "{err}");
    }
}
