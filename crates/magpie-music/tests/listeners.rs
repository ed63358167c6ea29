//! Listener administration on a real warehouse: merges collapse the listens both names
//! recorded (counted against the same files imported under one name) and carry the tokens,
//! renames keep tokens working, removals delete one listener's events only, backups come
//! first, and bad names say which rule they broke.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use common::*;
use magpie_core::{Secret, Warehouse};
use magpie_music::import::{ImportOptions, Importer};
use magpie_music::listeners::{ListenerAdmin, ListenerError, NameRule, SpotifyMove};
use magpie_music::spotify;
use magpie_music::submit::tokens::TokenStore;
use serde_json::json;

fn play_end(i: u32) -> DateTime<Utc> {
    "2024-03-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(10 * i64::from(i))
}

const MS: i64 = 200_000;

/// An extended export of plays `plays` (play i: "Track i" by "Artist i%5", ending 10 minutes
/// after play i-1).
fn extended(dir: &Path, name: &str, plays: impl Iterator<Item = u32>) -> PathBuf {
    let records: Vec<_> = plays
        .map(|i| {
            json!({
                "ts": play_end(i).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "platform": "android", "ms_played": MS, "conn_country": "DE",
                "master_metadata_track_name": format!("Track {i}"),
                "master_metadata_album_artist_name": format!("Artist {}", i % 5),
                "master_metadata_album_album_name": "Album",
                "spotify_track_uri": format!("spotify:track:{i:022}"),
                "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
                "reason_start": "trackdone", "reason_end": "trackdone",
                "shuffle": false, "skipped": false, "offline": false,
                "offline_timestamp": 0, "incognito_mode": false
            })
        })
        .collect();
    let path = dir.join(name).join("Streaming_History_Audio_2024.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
    path
}

/// Last.fm scrobbles of the same plays (start times, other letter case).
fn scrobbles(dir: &Path, name: &str, plays: impl Iterator<Item = u32>) -> PathBuf {
    let path = dir.join(name).join("scrobbles.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["uts", "artist", "album", "track"]).unwrap();
    for i in plays {
        let start = play_end(i) - Duration::milliseconds(MS);
        w.write_record([
            start.timestamp().to_string(),
            format!("ARTIST {}", i % 5),
            "Album".into(),
            format!("track {i}"),
        ])
        .unwrap();
    }
    w.flush().unwrap();
    path
}

fn import_as(wh: &Warehouse, listener: &str, paths: &[PathBuf]) {
    let summary = Importer::new(
        wh,
        ImportOptions {
            listener: listener.into(),
            ..ImportOptions::default()
        },
    )
    .unwrap()
    .import_paths(paths, &mut |_| {});
    assert!(summary.all_ok(), "{summary}");
}

fn admin(dir: &Path) -> ListenerAdmin {
    ListenerAdmin::new(dir, dir.join("backups"), "default", 60)
}

/// Events per (source kind, listen or duplicate), as text.
fn shape(wh: &Warehouse, listener: &str) -> String {
    let mut stmt = wh
        .conn()
        .prepare(
            "SELECT source_kind, duplicate_of IS NULL, count(*)
             FROM raw.listen_events JOIN listeners USING (listener_id) WHERE name = ?
             GROUP BY ALL ORDER BY ALL",
        )
        .unwrap();
    let rows = stmt
        .query_map([listener], |r| {
            Ok(format!(
                "{} {} {}",
                r.get::<_, String>(0)?,
                if r.get::<_, bool>(1)? {
                    "listen"
                } else {
                    "dup"
                },
                r.get::<_, i64>(2)?
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join(", ")
}

fn spotify_tokens(refresh: &str) -> spotify::Tokens {
    spotify::Tokens {
        access_token: Secret::new("access"),
        refresh_token: Secret::new(refresh),
        expires_at: Utc::now(),
        authorized_at: Utc::now(),
    }
}

/// alice: an export of plays 0-29. alicia (the same person): an export of plays 20-39 (20-29
/// exact duplicates of alice's) and scrobbles of plays 0-9 (alice's in another source), 35-39
/// (her own export's) and 50 (only there).
fn two_names(dir: &Path) -> (Warehouse, Vec<PathBuf>) {
    let wh = warehouse(dir);
    let files = vec![
        extended(dir, "a", 0..30),
        extended(dir, "b", 20..40),
        scrobbles(dir, "c", (0..10).chain(35..40).chain([50])),
    ];
    import_as(&wh, "alice", &files[..1]);
    import_as(&wh, "alicia", &files[1..]);
    (wh, files)
}

#[test]
fn merge_collapses_the_listens_both_names_recorded_and_moves_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, files) = two_names(dir.path());
    let tokens = TokenStore::new(dir.path());
    let made = tokens.create("alicia", Some("phone")).unwrap();
    let spotify = spotify::TokenStore::new(dir.path());
    spotify.put("alicia", spotify_tokens("r-alicia")).unwrap();
    // Another listener is left alone.
    import_as(&wh, "bob", &[extended(dir.path(), "d", 0..5)]);
    let bob_before = shape(&wh, "bob");
    wh.conn()
        .execute_batch(
            "INSERT INTO meta.incremental_state VALUES ('int_plays', 'x', now());
             INSERT INTO raw.spotify_poll_state (listener_id, cursor_ms)
                 SELECT listener_id, 42 FROM listeners WHERE name = 'alicia';
             INSERT INTO raw.spotify_gaps
                 SELECT listener_id, now(), now(), now(), 'full_page' FROM listeners WHERE name = 'alicia';",
        )
        .unwrap();

    let admin = admin(dir.path());
    let before = admin.list(wh.conn()).unwrap();
    let alicia = before.iter().find(|l| l.name == "alicia").unwrap();
    assert_eq!((alicia.events, alicia.scrobble_tokens), (36, 1));
    assert!(alicia.spotify_connected);
    let formats: Vec<_> = alicia.imports.iter().map(|i| i.format.as_str()).collect();
    assert_eq!(formats, ["extended_json", "lastfm_csv"]);

    let merged = admin.merge(wh.conn(), "alicia", "alice", false).unwrap();
    assert!(merged.backup.is_file(), "{merged:?}");
    // The backup holds the warehouse as it was before.
    let copy = Warehouse::open_read_only(&merged.backup).unwrap();
    let alicia_then: i64 = copy
        .query_row(
            "SELECT count(*) FROM raw.listen_events JOIN listeners USING (listener_id) WHERE name = 'alicia'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alicia_then, 36);
    assert_eq!(merged.exact_duplicates, 10, "plays 20-29 in both exports");
    assert_eq!(merged.cross_source_duplicates, 10, "scrobbles of plays 0-9");
    assert_eq!(merged.events_moved, 26);
    assert_eq!(merged.scrobble_tokens_moved, 1);
    assert_eq!(merged.spotify, SpotifyMove::Moved);

    // Counted against SQL: what the same files give imported under one name.
    let solo_dir = tempfile::tempdir().unwrap();
    let solo = warehouse(solo_dir.path());
    import_as(&solo, "solo", &files[..1]);
    import_as(&solo, "solo", &files[1..]);
    let expected = shape(&solo, "solo");
    assert_eq!(
        expected,
        "lastfm dup 15, lastfm listen 1, spotify_extended listen 40"
    );
    assert_eq!(shape(&wh, "alice"), expected);
    assert_eq!(
        count(&wh, "SELECT count(*) FROM listeners WHERE name = 'alicia'"),
        0
    );
    // Every duplicate points at a listen of the same identity, of alice's, that is no duplicate.
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events d LEFT JOIN raw.listen_events o ON d.duplicate_of = o.event_id
             WHERE d.duplicate_of IS NOT NULL AND (o.event_id IS NULL OR o.duplicate_of IS NOT NULL
                   OR o.identity_key <> d.identity_key OR o.listener_id <> d.listener_id)"
        ),
        0
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.import_batches JOIN listeners USING (listener_id) WHERE name = 'alice'"
        ),
        3
    );
    assert_eq!(shape(&wh, "bob"), bob_before);
    // The poller's state and gaps follow (every table with a listener_id).
    assert_eq!(
        count(
            &wh,
            "SELECT cursor_ms FROM raw.spotify_poll_state JOIN listeners USING (listener_id) WHERE name = 'alice'"
        ),
        42
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.spotify_gaps JOIN listeners USING (listener_id) WHERE name = 'alice'"
        ),
        1
    );
    assert_eq!(
        count(&wh, "SELECT count(*) FROM meta.incremental_state"),
        0,
        "the next build rebuilds in full"
    );
    // The tokens are alice's now and still work.
    assert_eq!(
        tokens.verify(&made.token).unwrap().unwrap().listener,
        "alice"
    );
    assert_eq!(
        spotify
            .get("alice")
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        "r-alicia"
    );
    assert!(spotify.get("alicia").unwrap().is_none());
    let after = admin.list(wh.conn()).unwrap();
    let names: Vec<_> = after.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["default", "alice", "bob"]);
    let alice = &after[1];
    assert_eq!((alice.events, alice.listens), (56, 41));
    assert_eq!(
        alice.first_listen.unwrap(),
        (play_end(0) - Duration::milliseconds(MS)).naive_utc()
    );
    assert_eq!(
        alice.last_listen.unwrap(),
        (play_end(50) - Duration::milliseconds(MS)).naive_utc()
    );
    assert!(alice.spotify_connected && alice.scrobble_tokens == 1);
    let files_by_format: Vec<_> = alice
        .imports
        .iter()
        .map(|i| (i.format.as_str(), i.files))
        .collect();
    assert_eq!(files_by_format, [("extended_json", 2), ("lastfm_csv", 1)]);
}

#[test]
fn merging_into_a_connected_listener_keeps_its_account_and_the_other_way_round_counts_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, _) = two_names(dir.path());
    let spotify = spotify::TokenStore::new(dir.path());
    spotify.put("alice", spotify_tokens("r-alice")).unwrap();
    spotify.put("alicia", spotify_tokens("r-alicia")).unwrap();
    let merged = admin(dir.path())
        .merge(wh.conn(), "alice", "alicia", false)
        .unwrap();
    assert_eq!(merged.spotify, SpotifyMove::Dropped);
    assert_eq!(
        spotify
            .get("alicia")
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        "r-alicia"
    );
    assert!(spotify.get("alice").unwrap().is_none());
    assert_eq!(
        shape(&wh, "alicia"),
        "lastfm dup 15, lastfm listen 1, spotify_extended listen 40"
    );
}

#[test]
fn rename_keeps_the_tokens_working_under_the_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, _) = two_names(dir.path());
    let tokens = TokenStore::new(dir.path());
    let made = tokens.create("alicia", None).unwrap();
    let session = tokens.open_session(&made.info.id).unwrap();
    spotify::TokenStore::new(dir.path())
        .put("alicia", spotify_tokens("r"))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("spotify/alicia")).unwrap();
    std::fs::write(dir.path().join("spotify/alicia/page.json"), "{}").unwrap();
    use magpie_core::household::{self, Household, Visibility};
    household::set_visibility(dir.path(), "alicia", Visibility::Private).unwrap();
    household::set_password(dir.path(), "alicia", "alicia's long secret").unwrap();
    let before = shape(&wh, "alicia");

    let admin = admin(dir.path());
    let renamed = admin.rename(wh.conn(), "alicia", "Ali").unwrap();
    assert_eq!((renamed.scrobble_tokens, renamed.spotify_moved), (1, true));
    // Who may see the pages, and the login, follow the name.
    let home = Household::load(dir.path()).unwrap();
    assert_eq!(home.visibility("Ali"), Visibility::Private);
    assert!(home.has_login("Ali") && !home.has_login("alicia"));
    assert!(household::verify(dir.path(), "Ali", "alicia's long secret").unwrap());
    assert!(!renamed.was_default);
    assert_eq!(shape(&wh, "Ali"), before);
    assert_eq!(shape(&wh, "alicia"), "");
    assert_eq!(tokens.verify(&made.token).unwrap().unwrap().listener, "Ali");
    assert_eq!(tokens.session(&session).unwrap().unwrap().listener, "Ali");
    // Last.fm's mobile login: md5(user + md5(token)) with the new user name.
    let md5 = |s: &str| {
        use md5::Digest;
        hex::encode(md5::Md5::digest(s.as_bytes()))
    };
    let auth = md5(&format!("Ali{}", md5(&made.token)));
    assert!(tokens.verify_auth_token("Ali", &auth).unwrap().is_some());
    assert!(
        spotify::TokenStore::new(dir.path())
            .get("Ali")
            .unwrap()
            .is_some()
    );
    assert!(dir.path().join("spotify/Ali/page.json").is_file());
    // Submissions under the new name go to the same listener.
    assert_eq!(
        magpie_core::warehouse::listener_id_in(wh.conn(), "Ali").unwrap(),
        renamed.id.unwrap()
    );

    // Taken names, in any case, and bad names are refused with nothing changed.
    assert!(matches!(
        admin.rename(wh.conn(), "Ali", "ALICE"),
        Err(ListenerError::Exists { existing, .. }) if existing == "alice"
    ));
    assert!(matches!(
        admin.rename(wh.conn(), "nobody", "x"),
        Err(ListenerError::Unknown(_))
    ));
    let err = admin.rename(wh.conn(), "Ali", "ali baba").unwrap_err();
    assert!(
        matches!(
            &err,
            ListenerError::BadName {
                rule: NameRule::Character(' '),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"ali baba\""), "{err}");
    // A change of case alone is a rename.
    admin.rename(wh.conn(), "Ali", "ali").unwrap();
    assert_eq!(tokens.verify(&made.token).unwrap().unwrap().listener, "ali");
}

#[test]
fn remove_deletes_one_listeners_events_and_tokens_after_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, _) = two_names(dir.path());
    let tokens = TokenStore::new(dir.path());
    let made = tokens.create("alicia", None).unwrap();
    let kept = tokens.create("alice", None).unwrap();
    spotify::TokenStore::new(dir.path())
        .put("alicia", spotify_tokens("r"))
        .unwrap();
    let alice_before = shape(&wh, "alice");
    magpie_core::household::set_password(dir.path(), "alicia", "alicia's long secret").unwrap();
    let events_before = count(&wh, "SELECT count(*) FROM raw.listen_events");
    let alicia_events = count(
        &wh,
        "SELECT count(*) FROM raw.listen_events JOIN listeners USING (listener_id) WHERE name = 'alicia'",
    );

    let admin = admin(dir.path());
    let removed = admin.remove(wh.conn(), "alicia", false).unwrap();
    assert!(
        !magpie_core::household::Household::load(dir.path())
            .unwrap()
            .has_login("alicia"),
        "a removed listener's login is gone"
    );
    assert!(removed.backup.is_file());
    let copy = Warehouse::open_read_only(&removed.backup).unwrap();
    let then: i64 = copy
        .query_row("SELECT count(*) FROM raw.listen_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(then, events_before, "the backup is of the warehouse before");
    assert_eq!(removed.events_deleted as i64, alicia_events);
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        events_before - alicia_events
    );
    assert_eq!(shape(&wh, "alice"), alice_before);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.import_batches WHERE listener_id NOT IN (SELECT listener_id FROM listeners)"
        ),
        0
    );
    assert_eq!(removed.scrobble_tokens_removed, 1);
    assert!(removed.spotify_disconnected);
    assert!(tokens.verify(&made.token).unwrap().is_none());
    assert!(tokens.verify(&kept.token).unwrap().is_some());
    assert!(matches!(
        admin.remove(wh.conn(), "alicia", false),
        Err(ListenerError::Unknown(_))
    ));
}

#[test]
fn the_default_listener_goes_only_when_told_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let admin = admin(dir.path());
    let err = admin.remove(wh.conn(), "default", false).unwrap_err();
    assert!(err.to_string().contains("default_listener"), "{err}");
    assert!(err.to_string().contains("--allow-default"), "{err}");
    assert!(
        !dir.path().join("backups").exists(),
        "refused before any backup"
    );
    admin.add(wh.conn(), "sam").unwrap();
    assert!(matches!(
        admin.merge(wh.conn(), "default", "sam", false),
        Err(ListenerError::DefaultListener { .. })
    ));
    assert!(matches!(
        admin.merge(wh.conn(), "sam", "sam", false),
        Err(ListenerError::SameListener(_))
    ));
    admin.merge(wh.conn(), "default", "sam", true).unwrap();

    for (name, rule) in [
        ("", NameRule::Empty),
        (" sam2", NameRule::Untrimmed),
        ("_x", NameRule::FirstCharacter('_')),
        ("a:b", NameRule::Character(':')),
        ("Everyone", NameRule::Reserved),
    ] {
        match admin.add(wh.conn(), name) {
            Err(ListenerError::BadName { rule: r, .. }) => assert_eq!(r, rule, "{name:?}"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    assert!(matches!(
        admin.add(wh.conn(), "SAM"),
        Err(ListenerError::Exists { .. })
    ));
    // A name a token store knows is taken too.
    TokenStore::new(dir.path()).create("kim", None).unwrap();
    assert!(matches!(
        admin.add(wh.conn(), "Kim"),
        Err(ListenerError::Exists { .. })
    ));
    let listed = admin.list(wh.conn()).unwrap();
    let kim = listed.iter().find(|l| l.name == "kim").unwrap();
    assert_eq!((kim.id, kim.scrobble_tokens), (None, 1));
}
