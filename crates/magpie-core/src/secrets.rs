//! Files that hold secrets under `DATA_DIR/secrets/` (folder 0700, files 0600, written
//! atomically), and the admin password, kept only as an argon2 hash.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! magpie_core::secrets::set_admin_password(dir.path(), "correct horse").unwrap();
//! assert!(magpie_core::secrets::verify_admin_password(dir.path(), "correct horse").unwrap());
//! assert!(!magpie_core::secrets::verify_admin_password(dir.path(), "wrong").unwrap());
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Errors reading or writing secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the admin password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("an admin password is set already")]
    AlreadySet,
}

/// The folder for secrets.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets")
}

/// Write `bytes` to `path` readable by the owner only (the folder 0700), replacing it
/// atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    let fail = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(fail)?;
    // A name of its own per write, so two writers never share a temporary file.
    let name = path
        .file_name()
        .map_or_else(|| "secret".into(), |n| n.to_string_lossy().into_owned());
    let tmp = folder.join(format!(
        ".{name}.{}.tmp",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        options.mode(0o600);
    }
    let mut out = options.open(&tmp).map_err(fail)?;
    out.write_all(bytes).map_err(fail)?;
    out.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn admin_file(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("admin-password")
}

/// Whether an admin password was set.
pub fn admin_password_set(data_dir: &Path) -> bool {
    admin_file(data_dir).is_file()
}

/// Store the argon2id hash of a new admin password (replacing any).
pub fn set_admin_password(data_dir: &Path, password: &str) -> Result<(), SecretsError> {
    let path = admin_file(data_dir);
    write_private(&path, hash_password(&path, password)?.as_bytes())
}

/// Store the argon2id hash of the first admin password, only if none is set: of two calls at
/// once (two processes included) exactly one succeeds, the other gets
/// [`SecretsError::AlreadySet`]. The file appears whole or not at all.
pub fn create_admin_password(data_dir: &Path, password: &str) -> Result<(), SecretsError> {
    let path = admin_file(data_dir);
    let hash = hash_password(&path, password)?;
    if path.exists() {
        return Err(SecretsError::AlreadySet);
    }
    // Written under a name of its own, then linked to the real name: link() fails if that
    // exists, atomically, where a check followed by a rename would race.
    let tmp = path.with_extension(format!("new-{}", hex::encode(rand::random::<[u8; 8]>())));
    write_private(&tmp, hash.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(SecretsError::AlreadySet),
        Err(source) => Err(SecretsError::Io { path, source }),
    }
}

fn hash_password(path: &Path, password: &str) -> Result<String, SecretsError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(SecretsError::TooShort);
    }
    let path = path.to_path_buf();
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| SecretsError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| SecretsError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?
        .to_string();
    Ok(hash)
}

/// Whether `password` is the admin password (false when none is set).
pub fn verify_admin_password(data_dir: &Path, password: &str) -> Result<bool, SecretsError> {
    let path = admin_file(data_dir);
    let stored = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(SecretsError::Io { path, source }),
    };
    let hash = PasswordHash::new(stored.trim()).map_err(|e| SecretsError::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_holds_a_hash_only_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!admin_password_set(dir.path()));
        assert!(matches!(
            set_admin_password(dir.path(), "short"),
            Err(SecretsError::TooShort)
        ));
        set_admin_password(dir.path(), "a long enough secret").unwrap();
        let stored = std::fs::read_to_string(admin_file(dir.path())).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(admin_file(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(verify_admin_password(dir.path(), "a long enough secret").unwrap());
        assert!(!verify_admin_password(dir.path(), "a long enough secreT").unwrap());
    }

    #[test]
    fn the_first_password_is_created_once_even_by_racing_writers() {
        let dir = tempfile::tempdir().unwrap();
        let results: Vec<Result<(), SecretsError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let dir = dir.path();
                    s.spawn(move || create_admin_password(dir, &format!("racing password {i}")))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<usize> = (0..8).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter(|r| r.is_err())
                .all(|r| matches!(r, Err(SecretsError::AlreadySet)))
        );
        let winner = format!("racing password {}", won[0]);
        assert!(verify_admin_password(dir.path(), &winner).unwrap());
        assert!(matches!(
            create_admin_password(dir.path(), "another password"),
            Err(SecretsError::AlreadySet)
        ));
        let left: Vec<_> = std::fs::read_dir(super::dir(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["admin-password"], "no temporary files stay");
    }
}
