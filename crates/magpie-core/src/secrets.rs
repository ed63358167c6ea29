//! Files that hold secrets under `DATA_DIR/secrets/` (folder 0700, files 0600, written
//! atomically, changed under a lock across threads and processes by [`update_private`]), and
//! the admin password, kept only as an argon2 hash.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! magpie_core::secrets::set_admin_password(dir.path(), "correct horse").unwrap();
//! assert!(magpie_core::secrets::verify_admin_password(dir.path(), "correct horse").unwrap());
//! assert!(!magpie_core::secrets::verify_admin_password(dir.path(), "wrong").unwrap());
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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

/// Change the private file at `path` as one step: read it (`None` when it does not exist yet),
/// let `change` compute the new contents, write them with [`write_private`] (then fsync the
/// folder, so the rename survives a power cut). When `change` fails nothing is written and its
/// error is returned as the inner one; the outer error is a problem with the lock, the read or
/// the write.
///
/// Several writers may share a file (the web pages, the scheduler and the CLI, possibly in
/// different processes), and each change is a read-modify-write of the whole file: without a
/// lock two writers read the same old file and each writes back its own change only. So the
/// whole step holds an exclusive lock: a mutex per file within the process (whatever path
/// spelling is used) and an advisory lock (`flock`) on the sibling `NAME.lock` across
/// processes, released when the lock file is closed, also when the process dies. Readers take
/// no lock: the rename is atomic, so a reader sees the old file or the new one whole.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("secrets/counter");
/// for _ in 0..3 {
///     magpie_core::secrets::update_private(&path, |old| {
///         let n: u32 = old.map_or(0, |b| String::from_utf8(b).unwrap().parse().unwrap());
///         Ok::<_, std::convert::Infallible>((n + 1).to_string().into_bytes())
///     })
///     .unwrap()
///     .unwrap();
/// }
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "3");
/// ```
pub fn update_private<E>(
    path: &Path,
    change: impl FnOnce(Option<Vec<u8>>) -> Result<Vec<u8>, E>,
) -> Result<Result<(), E>, SecretsError> {
    let fail = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mutex = process_lock(path);
    // A writer that panicked left the file whole (the rename is atomic): carry on.
    let _in_process = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(fail)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        options.mode(0o600);
    }
    let lock_path = lock_path(path);
    let lock_fail = |what: &str, e: std::io::Error| SecretsError::Io {
        path: lock_path.clone(),
        source: std::io::Error::new(e.kind(), format!("cannot {what} the lock file: {e}")),
    };
    let lock = options.open(&lock_path).map_err(|e| lock_fail("open", e))?;
    lock.lock().map_err(|e| lock_fail("lock", e))?;
    let old = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e)),
    };
    let new = match change(old) {
        Ok(new) => new,
        Err(e) => return Ok(Err(e)),
    };
    write_private(path, &new)?;
    #[cfg(unix)]
    {
        // Best effort: a file system that cannot fsync a folder still got the rename.
        let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
    }
    // Closing the lock file releases the lock: after the rename, not before.
    drop(lock);
    Ok(Ok(()))
}

/// The lock file beside `path` (created 0600, never removed: removing it would let two writers
/// lock two different files).
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

/// The in-process lock of one file, shared by every writer of it. Keyed by the absolute path
/// (a relative data folder and its absolute spelling are one file).
fn process_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(locks.entry(key).or_default())
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
    hash_secret(path, password)
}

/// The argon2id hash of `password` (for a file at `path`, named in errors).
pub fn hash_secret(path: &Path, password: &str) -> Result<String, SecretsError> {
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
    verify_secret(&path, &stored, password)
}

/// Whether `password` matches the argon2 `hash` kept in the file at `path` (named in errors).
pub fn verify_secret(path: &Path, hash: &str, password: &str) -> Result<bool, SecretsError> {
    let hash = PasswordHash::new(hash.trim()).map_err(|e| SecretsError::Invalid {
        path: path.to_path_buf(),
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

    #[test]
    fn updates_from_many_threads_lose_nothing_and_a_refused_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/list");
        std::thread::scope(|s| {
            for t in 0..4 {
                let path = &path;
                s.spawn(move || {
                    for i in 0..25 {
                        update_private(path, |old| {
                            let mut text = old
                                .map(|b| String::from_utf8(b).unwrap())
                                .unwrap_or_default();
                            text.push_str(&format!("{t}-{i}\n"));
                            Ok::<_, String>(text.into_bytes())
                        })
                        .unwrap()
                        .unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 100, "no change was lost");
        let refused = update_private(&path, |_| Err::<Vec<u8>, _>("no".to_string())).unwrap();
        assert_eq!(refused, Err("no".to_string()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&lock_path(&path)), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }
}
