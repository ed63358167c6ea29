//! The Spotify token file under concurrent writers: two processes (this test binary runs
//! itself a second time) with several threads each, every one putting its own listeners'
//! tokens over and over. Afterwards every listener written is there with its last value: no
//! writer's read-modify-write overwrote another's change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use magpie_core::Secret;
use magpie_music::spotify::{TokenStore, Tokens};

/// Set in the child process: the data folder to write into.
const CHILD_DATA_DIR: &str = "MAGPIE_TOKEN_STORE_TEST_CHILD";
const THREADS: usize = 4;
const ROUNDS: usize = 25;
const TEST_NAME: &str = "concurrent_writers_in_two_processes_lose_no_tokens";

fn tokens(access: &str, refresh: &str) -> Tokens {
    let now = Utc::now();
    Tokens {
        access_token: Secret::new(access),
        refresh_token: Secret::new(refresh),
        expires_at: now,
        authorized_at: now,
    }
}

/// Wait until both processes are ready, so their writes overlap.
fn barrier(data_dir: &Path, me: &str) {
    std::fs::write(data_dir.join(format!("ready-{me}")), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(data_dir.join("ready-parent").exists() && data_dir.join("ready-child").exists()) {
        assert!(Instant::now() < deadline, "the other process never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One process's writers: each thread, each round, puts a new listener `P-T-R` and updates
/// its own listener `P-T` to the round's value. Returns the errors of failed puts.
fn write_all(data_dir: &Path, process: &str) -> Vec<String> {
    barrier(data_dir, process);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = TokenStore::new(data_dir);
            let process = process.to_string();
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                for round in 0..ROUNDS {
                    let fresh = format!("{process}-{t}-{round}");
                    let own = format!("{process}-{t}");
                    for (listener, value) in [(fresh.clone(), fresh.clone()), (own, fresh)] {
                        if let Err(e) = store.put(&listener, tokens(&value, &value)) {
                            errors.push(format!("put {listener}: {e}"));
                        }
                    }
                }
                errors
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread"))
        .collect()
}

#[test]
fn concurrent_writers_in_two_processes_lose_no_tokens() {
    if let Some(dir) = std::env::var_os(CHILD_DATA_DIR) {
        let errors = write_all(Path::new(&dir), "child");
        assert!(errors.is_empty(), "the child's puts failed: {errors:#?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().to_path_buf();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DATA_DIR, &data_dir)
        .spawn()
        .expect("run this test binary again as the second writer process");
    let errors = write_all(&data_dir, "parent");
    let status = child.wait().unwrap();

    let store = TokenStore::new(&data_dir);
    let all = store.all().expect("the token file reads back");
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for process in ["parent", "child"] {
        for t in 0..THREADS {
            let own = format!("{process}-{t}");
            let last = format!("{process}-{t}-{}", ROUNDS - 1);
            match all.get(&own) {
                None => missing.push(own.clone()),
                Some(tokens) if tokens.refresh_token.expose() != last => stale.push(format!(
                    "{own} holds {} instead of {last}",
                    tokens.refresh_token.expose()
                )),
                Some(_) => {}
            }
            for round in 0..ROUNDS {
                let fresh = format!("{process}-{t}-{round}");
                match all.get(&fresh) {
                    None => missing.push(fresh),
                    Some(tokens) => assert_eq!(tokens.access_token.expose(), fresh),
                }
            }
        }
    }
    let expected = 2 * THREADS * (ROUNDS + 1);
    assert!(
        missing.is_empty() && stale.is_empty() && errors.is_empty() && status.success(),
        "{} of {expected} listeners lost, {} stale, {} failed puts in this process, child {status}\n\
         lost: {missing:?}\nstale: {stale:?}\nerrors: {errors:#?}",
        missing.len(),
        stale.len(),
        errors.len(),
    );
    assert_eq!(all.len(), expected);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600, "the token file stays 0600");
        let lock = store.path().with_file_name("spotify-tokens.json.lock");
        assert_eq!(mode(&lock), 0o600, "the lock file is private too");
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
    }
}
