//! Share links on disk: create, find, list and revoke; the file is private and holds no token;
//! any string presented as a token finds nothing unless it is one; and concurrent creators in
//! two processes (this test binary runs itself a second time) and several threads lose no
//! share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use magpie_questions::{ShareStore, ShareTarget};

fn locked(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn create_find_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::new(dir.path());
    assert!(store.list().unwrap().is_empty(), "no file yet: no shares");
    assert!(store.find(&"0".repeat(32)).unwrap().is_none());

    let (first, first_token) = store
        .create(
            ShareTarget::Dashboard("listening".into()),
            locked(&[("listener", "ana")]),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let (second, second_token) = store
        .create(ShareTarget::Question("top-artists".into()), BTreeMap::new())
        .unwrap();

    assert_eq!(first_token.len(), 32, "128 bits as hex");
    assert!(first_token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(first_token, second_token);
    assert_eq!(first.id.len(), 8);
    assert!(first.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(first.id, second.id);
    assert_eq!(first.locked, locked(&[("listener", "ana")]));

    let found = store.find(&first_token).unwrap().expect("its own token");
    assert_eq!(found, first);
    assert_eq!(
        store.find(&second_token).unwrap().unwrap().target,
        ShareTarget::Question("top-artists".into())
    );
    assert_eq!(
        store
            .find(&first_token.to_uppercase())
            .unwrap()
            .map(|s| s.id),
        Some(first.id.clone()),
        "hex is hex in either case"
    );

    let listed: Vec<String> = store.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(
        listed,
        [second.id.clone(), first.id.clone()],
        "newest first"
    );

    // A store over the same folder sees the same shares.
    let again = ShareStore::new(dir.path());
    assert!(again.revoke(&first.id).unwrap());
    assert!(
        store.find(&first_token).unwrap().is_none(),
        "revoked: found no more, at once"
    );
    assert!(!store.revoke(&first.id).unwrap(), "gone already");
    assert!(!store.revoke("nosuchid").unwrap());
    assert_eq!(store.find(&second_token).unwrap().unwrap().id, second.id);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn the_file_is_private_and_holds_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::new(dir.path());
    let (share, token) = store
        .create(ShareTarget::Dashboard("listening".into()), BTreeMap::new())
        .unwrap();
    assert_eq!(
        store.path(),
        dir.path().join("secrets/shares.json"),
        "DATA_DIR/secrets/shares.json"
    );
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains(&token), "the token is not stored: {text}");
    assert!(text.contains(&share.token_sha256), "its hash is");
    assert_eq!(share.token_sha256.len(), 64);
    assert!(!format!("{share:?}").contains(&token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        assert_eq!(
            mode(&store.path().with_file_name("shares.json.lock")),
            0o600
        );
    }
}

#[test]
fn any_other_string_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::new(dir.path());
    let (_, token) = store
        .create(ShareTarget::Dashboard("listening".into()), BTreeMap::new())
        .unwrap();
    let mut wrong_last = token.clone();
    let last = wrong_last.pop().unwrap();
    wrong_last.push(if last == '0' { '1' } else { '0' });
    let long = "a".repeat(10_000_000);
    let huge_prefix = format!("{token}{}", "0".repeat(100_000));
    for presented in [
        "",
        " ",
        &token[..31],
        &format!("{token}0"),
        &format!(" {token}"),
        &wrong_last,
        &"g".repeat(32),
        "../../etc/passwd",
        "é".repeat(16).as_str(),
        "\0".repeat(32).as_str(),
        long.as_str(),
        huge_prefix.as_str(),
        &share_hash_of(&store, &token),
    ] {
        assert!(
            store.find(presented).unwrap().is_none(),
            "{:?} found a share",
            presented.chars().take(40).collect::<String>()
        );
    }
    assert!(store.find(&token).unwrap().is_some());
}

/// The stored hash itself, presented as a token, opens nothing.
fn share_hash_of(store: &ShareStore, token: &str) -> String {
    store.find(token).unwrap().unwrap().token_sha256
}

#[test]
fn bad_targets_and_locked_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::new(dir.path());
    for slug in ["", "../x", "Top", &"x".repeat(65)] {
        assert!(
            store
                .create(ShareTarget::Question(slug.into()), BTreeMap::new())
                .is_err(),
            "{slug}"
        );
    }
    let err = store
        .create(ShareTarget::Question("q".into()), locked(&[("a b", "1")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("`a b` is not a variable name"),
        "{err}"
    );
    let long = "x".repeat(1001);
    let err = store
        .create(
            ShareTarget::Question("q".into()),
            locked(&[("artist", &long)]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("variable `artist`"), "{err}");
    assert!(store.list().unwrap().is_empty(), "nothing was stored");
}

#[test]
fn a_broken_file_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::new(dir.path());
    std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
    std::fs::write(store.path(), "{\"shares\": [oops").unwrap();
    let err = store.list().unwrap_err().to_string();
    assert!(
        err.contains("shares.json") && err.contains("line 1"),
        "{err}"
    );
    assert!(store.find(&"a".repeat(32)).is_err());
    assert!(
        store
            .create(ShareTarget::Question("q".into()), BTreeMap::new())
            .is_err(),
        "no write over a file it cannot read"
    );
    assert_eq!(
        std::fs::read_to_string(store.path()).unwrap(),
        "{\"shares\": [oops"
    );
}

/// Set in the child process: the data folder to write into.
const CHILD_DATA_DIR: &str = "MAGPIE_SHARE_STORE_TEST_CHILD";
const THREADS: usize = 4;
const ROUNDS: usize = 15;
const TEST_NAME: &str = "concurrent_creators_in_two_processes_lose_no_share";

/// Wait until both processes are ready, so their writes overlap.
fn barrier(data_dir: &Path, me: &str) {
    std::fs::write(data_dir.join(format!("ready-{me}")), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(data_dir.join("ready-parent").exists() && data_dir.join("ready-child").exists()) {
        assert!(Instant::now() < deadline, "the other process never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One process's creators: each thread creates ROUNDS shares of question `P-T-R`, revoking
/// every third one again. Returns the tokens kept (target slug, token) and the errors.
fn create_all(data_dir: &Path, process: &str) -> (Vec<(String, String)>, Vec<String>) {
    barrier(data_dir, process);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = ShareStore::new(data_dir);
            let process = process.to_string();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut errors = Vec::new();
                for round in 0..ROUNDS {
                    let slug = format!("{process}-{t}-{round}");
                    match store.create(ShareTarget::Question(slug.clone()), BTreeMap::new()) {
                        Ok((share, _)) if round % 3 == 2 => match store.revoke(&share.id) {
                            Ok(true) => {}
                            Ok(false) => errors.push(format!("{slug} was gone before its revoke")),
                            Err(e) => errors.push(format!("revoke {slug}: {e}")),
                        },
                        Ok((_, token)) => kept.push((slug, token)),
                        Err(e) => errors.push(format!("create {slug}: {e}")),
                    }
                }
                (kept, errors)
            })
        })
        .collect();
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        let (k, e) = h.join().expect("creator thread");
        kept.extend(k);
        errors.extend(e);
    }
    (kept, errors)
}

#[test]
fn concurrent_creators_in_two_processes_lose_no_share() {
    if let Some(dir) = std::env::var_os(CHILD_DATA_DIR) {
        let dir = PathBuf::from(dir);
        let (kept, errors) = create_all(&dir, "child");
        assert!(errors.is_empty(), "the child's changes failed: {errors:#?}");
        // The parent checks the child's tokens too.
        let lines: Vec<String> = kept.iter().map(|(s, t)| format!("{s} {t}")).collect();
        std::fs::write(dir.join("child-tokens"), lines.join("\n")).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DATA_DIR, &data_dir)
        .spawn()
        .expect("run this test binary again as the second process");
    let (mut kept, errors) = create_all(&data_dir, "parent");
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {status}");
    assert!(errors.is_empty(), "{errors:#?}");
    let child_tokens = std::fs::read_to_string(data_dir.join("child-tokens")).unwrap();
    kept.extend(child_tokens.lines().map(|l| {
        let (slug, token) = l.split_once(' ').unwrap();
        (slug.to_string(), token.to_string())
    }));

    let store = ShareStore::new(&data_dir);
    let expected = 2 * THREADS * (ROUNDS - ROUNDS / 3);
    assert_eq!(kept.len(), expected);
    let listed = store.list().unwrap();
    assert_eq!(
        listed.len(),
        expected,
        "every share created and not revoked is there, and no revoked one"
    );
    for (slug, token) in &kept {
        let share = store
            .find(token)
            .unwrap()
            .unwrap_or_else(|| panic!("the share of {slug} was lost"));
        assert_eq!(share.target, ShareTarget::Question(slug.clone()));
    }
    let ids: std::collections::BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), expected, "ids are unique");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "still private after many writers");
    }
}
