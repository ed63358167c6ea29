//! Bad input: each broken variant fails with a message naming the file and the position, keeps
//! nothing of that file, and does not stop the other files of the same import.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use magpie_music::import::{ImportError, Outcome};

const GOOD: &str = r#"[
{"ts":"2024-08-02T16:07:53Z","platform":"android","ms_played":262974,"conn_country":"AR","master_metadata_track_name":"So Long, London","master_metadata_album_artist_name":"Taylor Swift","master_metadata_album_album_name":"TTPD","spotify_track_uri":"spotify:track:7wAkQFShJ27V8362MqevQr","episode_name":null,"episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone","reason_end":"trackdone","shuffle":false,"skipped":false,"offline":false,"offline_timestamp":1722614450,"incognito_mode":false},
{"ts":"2024-08-02T16:12:01Z","platform":"android","ms_played":245000,"conn_country":"AR","master_metadata_track_name":"Fortnight","master_metadata_album_artist_name":"Taylor Swift","master_metadata_album_album_name":"TTPD","spotify_track_uri":"spotify:track:6dODwocEuGzHAavXqTbwHv","episode_name":null,"episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone","reason_end":"trackdone","shuffle":false,"skipped":false,"offline":false,"offline_timestamp":1722614700,"incognito_mode":false},
{"ts":"2024-08-02T16:16:30Z","platform":"android","ms_played":12000,"conn_country":"AR","master_metadata_track_name":"Down Bad","master_metadata_album_artist_name":"Taylor Swift","master_metadata_album_album_name":"TTPD","spotify_track_uri":"spotify:track:1kbEbBdEgQdQeLXCJh28pJ","episode_name":null,"episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone","reason_end":"fwdbtn","shuffle":false,"skipped":true,"offline":false,"offline_timestamp":1722614900,"incognito_mode":false}
]"#;

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Import `bad` together with a good file: the good one lands, the bad one fails with a
/// message containing every `expect` fragment, and nothing of the bad one is stored.
fn check_bad(bad_name: &str, bad: &[u8], expect: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let good = write(
        dir.path(),
        "Streaming_History_Audio_2024_0.json",
        GOOD.as_bytes(),
    );
    let bad = write(dir.path(), bad_name, bad);
    let summary = import(&wh, &[bad.clone(), good]);
    assert!(!summary.all_ok(), "a bad file must fail the import");
    let failed = summary
        .files
        .iter()
        .find(|f| !f.is_ok())
        .expect("one failure");
    let Outcome::Failed(err) = &failed.outcome else {
        unreachable!()
    };
    let message = err.to_string();
    assert!(
        message.contains(&bad.display().to_string()),
        "names the file: {message}"
    );
    for fragment in expect {
        assert!(
            message.contains(fragment),
            "expected `{fragment}` in: {message}"
        );
    }
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        3,
        "only the good file's rows"
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.listen_events WHERE batch_id IN (SELECT batch_id FROM raw.import_batches WHERE status = 'failed')"
        ),
        0
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.import_batches WHERE status = 'failed'"
        ),
        1
    );
    message
}

#[test]
fn truncated_json() {
    let cut = &GOOD.as_bytes()[..GOOD.len() * 2 / 3];
    check_bad(
        "Streaming_History_Audio_2024_1.json",
        cut,
        &["truncated", "line 3"],
    );
}

#[test]
fn wrong_types() {
    let broken = GOOD.replacen("\"ms_played\":245000", "\"ms_played\":\"245000\"", 1);
    let msg = check_bad(
        "Streaming_History_Audio_2024_1.json",
        broken.as_bytes(),
        &["record 2", "line 3", "invalid type"],
    );
    assert!(msg.contains("column"), "{msg}");
    let bad_time = GOOD.replacen("2024-08-02T16:12:01Z", "yesterday", 1);
    check_bad(
        "Streaming_History_Audio_2024_2.json",
        bad_time.as_bytes(),
        &["record 2", "`ts` is \"yesterday\""],
    );
    let negative = GOOD.replacen("\"ms_played\":12000", "\"ms_played\":-5", 1);
    check_bad(
        "Streaming_History_Audio_2024_3.json",
        negative.as_bytes(),
        &["record 3", "-5"],
    );
}

#[test]
fn a_late_record_of_another_layout() {
    let mixed = GOOD.replacen(
        "]",
        ",{\"endTime\":\"2023-09-22 20:15\",\"artistName\":\"x\",\"trackName\":\"y\",\"msPlayed\":1}]",
        1,
    );
    // The replacement lands at the array's end: the fourth record.
    check_bad(
        "Streaming_History_Audio_2024_1.json",
        mixed.as_bytes(),
        &["record 4", "like the first one"],
    );
}

#[test]
fn csv_with_wrong_columns() {
    check_bad(
        "scrobbles.csv",
        b"artist,album,duration\nMuse,Origin,300\n",
        &["line 1", "lacks the columns"],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,track,uts\nMuse,Uprising,1536406547\nMuse,Hysteria\n",
        &["line 3", "expected 3"],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,track,uts\nMuse,Uprising,last tuesday\n",
        &["line 2", "not unix seconds"],
    );
}

#[test]
fn unknown_format_and_empty_file() {
    check_bad(
        "data.json",
        br#"{"playlists": []}"#,
        &["unknown format", "recenttracks"],
    );
    check_bad(
        "data2.json",
        br#"[{"name": "x", "plays": 3}]"#,
        &["unknown format", "record 1", "name"],
    );
    check_bad("empty.json", b"", &["empty"]);
    check_bad("blank.csv", b"   \n\n ", &["empty"]);
    check_bad(
        "image.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        &["binary"],
    );
    check_bad(
        "plain.csv",
        b"just some words\nand more words\n",
        &["unknown format", "four columns"],
    );
}

#[test]
fn zip_with_nothing_usable_and_broken_zip() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("my_spotify_data.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        zip.start_file(
            "Spotify Account Data/ReadMeFirst_AccountData.pdf",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, b"%PDF-1.4").unwrap();
        zip.finish().unwrap();
    }
    let bytes = std::fs::read(&zip_path).unwrap();
    check_bad(
        "my_spotify_data.zip",
        &bytes,
        &["holds no listening history"],
    );
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() / 2);
    check_bad("broken.zip", &truncated, &["zip"]);
}

#[test]
fn unreadable_path() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path());
    let missing = dir.path().join("nope.json");
    let summary = import(&wh, std::slice::from_ref(&missing));
    assert!(!summary.all_ok());
    let Outcome::Failed(err) = &summary.files[0].outcome else {
        panic!("must fail")
    };
    assert!(matches!(err, ImportError::Unreadable { .. }));
    assert!(err.to_string().contains("nope.json"));
}

#[test]
fn zip_member_is_named_in_errors_and_good_members_import() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("my_spotify_data.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file(
            "Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json",
            opts,
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, GOOD.as_bytes()).unwrap();
        zip.start_file(
            "Spotify Extended Streaming History/Streaming_History_Audio_2024_1.json",
            opts,
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, &GOOD.as_bytes()[..100]).unwrap();
        zip.start_file("Spotify Extended Streaming History/ReadMeFirst.pdf", opts)
            .unwrap();
        std::io::Write::write_all(&mut zip, b"%PDF").unwrap();
        zip.start_file("Spotify Account Data/Userdata.json", opts)
            .unwrap();
        std::io::Write::write_all(&mut zip, br#"{"username": "x"}"#).unwrap();
        zip.finish().unwrap();
    }
    let wh = warehouse(dir.path());
    let summary = import(&wh, &[zip_path]);
    assert!(!summary.all_ok());
    assert_eq!(count(&wh, "SELECT count(*) FROM raw.listen_events"), 3);
    let failed: Vec<String> = summary
        .files
        .iter()
        .filter(|f| !f.is_ok())
        .map(|f| f.to_string())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("my_spotify_data.zip!Spotify Extended Streaming History/Streaming_History_Audio_2024_1.json"), "{}", failed[0]);
    let ignored = summary
        .files
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Ignored { .. }))
        .count();
    assert_eq!(ignored, 1, "Userdata.json is passed over, not an error");
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.import_batches WHERE source_path LIKE '%my_spotify_data.zip!%Audio_2024_0.json'"
        ),
        1
    );
}

// ---- Absurd numbers in time fields (issue 24, defect 9) ------------------------------------
// Times are checked maths into a plausible range (1970-01-01 to a day from now) and durations
// are 0 to 7 days: anything else fails the file with the field and record named, instead of a
// wrapped or far-away time being stored.

#[test]
fn absurd_times_in_spotify_extended_history() {
    let huge = GOOD.replacen(
        "\"ms_played\":245000",
        "\"ms_played\":1000000000000000000",
        1,
    );
    check_bad(
        "Streaming_History_Audio_2024_1.json",
        huge.as_bytes(),
        &[
            "record 2",
            "line 3",
            "`ms_played` is 1000000000000000000 ms",
            "7 days",
        ],
    );
    let eight_days = GOOD.replacen("\"ms_played\":245000", "\"ms_played\":691200000", 1);
    check_bad(
        "Streaming_History_Audio_2024_2.json",
        eight_days.as_bytes(),
        &["record 2", "`ms_played` is 691200000 ms", "7 days"],
    );
    let far_future = GOOD.replacen("2024-08-02T16:12:01Z", "9999-12-31T23:59:59Z", 1);
    check_bad(
        "Streaming_History_Audio_2024_3.json",
        far_future.as_bytes(),
        &[
            "record 2",
            "line 3",
            "`ts` is \"9999-12-31T23:59:59Z\"",
            "outside the plausible range",
        ],
    );
    let before_1970 = GOOD.replacen("2024-08-02T16:12:01Z", "1969-07-20T20:17:40Z", 1);
    check_bad(
        "Streaming_History_Audio_2024_4.json",
        before_1970.as_bytes(),
        &["record 2", "`ts` is \"1969-07-20T20:17:40Z\"", "1970-01-01"],
    );
    let starts_before_1970 = GOOD.replacen("2024-08-02T16:12:01Z", "1970-01-01T00:01:00Z", 1);
    check_bad(
        "Streaming_History_Audio_2024_5.json",
        starts_before_1970.as_bytes(),
        &["record 2", "`ms_played` is 245000", "before 1970"],
    );
}

#[test]
fn absurd_times_in_spotify_basic_history() {
    let basic = |ms: &str, end: &str| {
        format!(
            "[{{\"endTime\":\"2023-09-22 20:15\",\"artistName\":\"club2020\",\"trackName\":\"Deszcz\",\"msPlayed\":111804}},\n\
             {{\"endTime\":\"{end}\",\"artistName\":\"club2020\",\"trackName\":\"Wiatr\",\"msPlayed\":{ms}}}]"
        )
    };
    check_bad(
        "StreamingHistory_music_0.json",
        basic("1000000000000000000", "2023-09-22 20:20").as_bytes(),
        &[
            "record 2",
            "line 2",
            "`msPlayed` is 1000000000000000000 ms",
            "7 days",
        ],
    );
    check_bad(
        "StreamingHistory_music_1.json",
        basic("1000", "9999-01-01 00:00").as_bytes(),
        &[
            "record 2",
            "line 2",
            "`endTime` is \"9999-01-01 00:00\"",
            "outside the plausible range",
        ],
    );
}

#[test]
fn absurd_times_in_lastfm_json() {
    let page = |uts: &str| {
        format!(
            r##"{{"recenttracks":{{"track":[
              {{"artist":{{"mbid":"","#text":"Blackbird Blackbird"}},"album":{{"mbid":"","#text":"Summer Heart"}},
               "name":"Hawaii","mbid":"","date":{{"uts":"1536407564","#text":"08 Sep 2018, 11:52"}}}},
              {{"artist":{{"mbid":"","#text":"Bungalow"}},"album":{{"mbid":"","#text":"Loving It"}},
               "name":"Loving It","mbid":"","date":{{"uts":{uts},"#text":"08 Sep 2018, 11:35"}}}}],
              "@attr":{{"user":"x","page":"1"}}}}}}"##
        )
    };
    check_bad(
        "recenttracks-1.json",
        page("9223372036854775807").as_bytes(),
        &[
            "track 2",
            "`date.uts` is 9223372036854775807",
            "too large to be unix seconds",
        ],
    );
    check_bad(
        "recenttracks-2.json",
        page("\"99999999999999\"").as_bytes(),
        &["track 2", "`date.uts` is 99999999999999", "too large"],
    );
    check_bad(
        "recenttracks-3.json",
        page("\"1536406547000\"").as_bytes(),
        &[
            "track 2",
            "`date.uts` is 1536406547000",
            "outside the plausible range",
            "milliseconds",
        ],
    );
    check_bad(
        "recenttracks-4.json",
        page("-86400").as_bytes(),
        &["track 2", "`date.uts` is -86400", "1969-12-31"],
    );
    // An array of pages: the page is the record.
    let pages = format!("[{},\n{}]", page("1536406547"), page("253402300800"));
    check_bad(
        "recenttracks-5.json",
        pages.as_bytes(),
        &["record 2", "track 4", "`date.uts` is 253402300800"],
    );
}

#[test]
fn absurd_times_in_spotify_web_api_json() {
    let api = |duration: &str, played_at: &str| {
        format!(
            r#"{{"items":[{{"track":{{"name":"Solitary Daze","uri":"spotify:track:1","duration_ms":347000,
              "artists":[{{"name":"Maceo Plex","uri":"spotify:artist:3"}}],"album":{{"name":"Solitary Daze","uri":"spotify:album:9"}}}},
              "played_at":"2023-09-22T15:43:33.750Z","context":null}},
              {{"track":{{"name":"Conjure Superstar","uri":"spotify:track:2","duration_ms":{duration},
              "artists":[{{"name":"Maceo Plex","uri":"spotify:artist:3"}}],"album":{{"name":"Conjure","uri":"spotify:album:8"}}}},
              "played_at":"{played_at}","context":null}}],
              "next":null,"cursors":{{"after":"1695397413750","before":"1695396194294"}},"limit":2,"href":"x"}}"#
        )
    };
    check_bad(
        "recently_played_1.json",
        api("100000000000000000", "2023-09-22T15:23:14.294Z").as_bytes(),
        &[
            "item 2",
            "`track.duration_ms` is 100000000000000000 ms",
            "7 days",
        ],
    );
    check_bad(
        "recently_played_2.json",
        api("-1", "2023-09-22T15:23:14.294Z").as_bytes(),
        &["item 2", "`track.duration_ms` is -1"],
    );
    check_bad(
        "recently_played_3.json",
        api("282063", "9999-09-22T15:23:14.294Z").as_bytes(),
        &[
            "item 2",
            "`played_at` is \"9999-09-22T15:23:14.294Z\"",
            "outside the plausible range",
        ],
    );
}

#[test]
fn absurd_times_in_lastfm_csv() {
    check_bad(
        "scrobbles.csv",
        b"artist,track,uts\nMuse,Uprising,1536406547\nMuse,Hysteria,9223372036854775807\n",
        &[
            "line 3",
            "the `uts` column",
            "9223372036854775807",
            "too large to be unix seconds",
        ],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,artist_mbid,album,album_mbid,track,track_mbid,timestamp,datetime\n\
          Bungalow,,Loving It,,Loving It,,99999999999999,2018-09-08 11:35:47\n",
        &[
            "line 2",
            "the `timestamp` column",
            "99999999999999",
            "too large",
        ],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,track,uts\nMuse,Uprising,1536406547000\n",
        &["line 2", "the `uts` column", "milliseconds"],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,track,uts\nMuse,Uprising,-86400\n",
        &["line 2", "the `uts` column", "-86400", "1969-12-31"],
    );
    check_bad(
        "scrobbles.csv",
        b"artist,track,date\nMuse,Uprising,2018-09-08 11:35:47\nMuse,Hysteria,9999-01-01 00:00:00\n",
        &[
            "line 3",
            "`9999-01-01 00:00:00` in the `date` column",
            "outside the plausible range",
        ],
    );
    check_bad(
        "scrobbles.csv",
        b"Muse,Origin of Symmetry,Hyper Music,01 Jan 9999 00:00\n",
        &[
            "line 1",
            "`01 Jan 9999 00:00` in the `date` column",
            "outside",
        ],
    );
}

// ---- ListenBrainz, Maloja and Apple Music (issue 26) ----------------------------------------

const LB_LINE: &str = r#"{"inserted_at": 1749780613.9, "listened_at": 1749780612, "track_metadata": {"track_name": "Desert", "artist_name": "OurR", "release_name": "Desert", "additional_info": {"duration_ms": 245000, "submission_client": "listenbrainz web"}}}"#;

#[test]
fn truncated_listenbrainz_json_line() {
    let lines = format!(
        "{LB_LINE}\n{}\n{}",
        LB_LINE.replace("1749780612", "1749780900"),
        &LB_LINE[..90]
    );
    check_bad(
        "6.jsonl",
        lines.as_bytes(),
        &["line 3", "record 3", "truncated"],
    );
    // A broken line in the middle, inside the zip as ListenBrainz delivers it.
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("listenbrainz_rob_1749780844.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("user.json", opts).unwrap();
        std::io::Write::write_all(&mut zip, br#"{"user_id":1,"username":"rob"}"#).unwrap();
        zip.start_file("listens/2025/5.jsonl", opts).unwrap();
        std::io::Write::write_all(
            &mut zip,
            LB_LINE.replace("1749780612", "1747000000").as_bytes(),
        )
        .unwrap();
        zip.start_file("listens/2025/6.jsonl", opts).unwrap();
        let broken = format!("{LB_LINE}\n{}\n{LB_LINE}\n", &LB_LINE[..90]);
        std::io::Write::write_all(&mut zip, broken.as_bytes()).unwrap();
        zip.finish().unwrap();
    }
    let wh = warehouse(dir.path());
    let summary = import(&wh, &[zip_path]);
    assert_eq!(summary.files.len(), 2, "user.json is passed over quietly");
    let failed: Vec<String> = summary
        .files
        .iter()
        .filter(|f| !f.is_ok())
        .map(|f| f.to_string())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("listenbrainz_rob_1749780844.zip!listens/2025/6.jsonl")
            && failed[0].contains("line 2"),
        "{}",
        failed[0]
    );
    assert_eq!(
        count(&wh, "SELECT count(*) FROM raw.listen_events"),
        1,
        "only the good member's listen; nothing of the broken one"
    );
}

#[test]
fn maloja_export_with_a_non_numeric_time() {
    let export = "{\n   \"maloja\": {\"export_time\": 1748738994},\n   \"scrobbles\": [\n      \
        {\"time\": 1746434410, \"track\": {\"artists\": [\"Cherish\"], \"title\": \"Yomichi\", \"album\": null, \"length\": null}, \"duration\": null, \"origin\": \"client:default\"},\n      \
        {\"time\": \"last tuesday\", \"track\": {\"artists\": [\"Cherish\"], \"title\": \"Kokoro\", \"album\": null, \"length\": null}, \"duration\": null, \"origin\": \"client:default\"}\n   ]\n}\n";
    check_bad(
        "maloja_export_20250601.json",
        export.as_bytes(),
        &["record 2", "line 5", "`time` is \"last tuesday\""],
    );
    let negative = export.replacen("\"duration\": null", "\"duration\": -30", 1);
    check_bad(
        "maloja_export_20250602.json",
        negative.as_bytes(),
        &["record 1", "line 4", "`duration`", "-30000"],
    );
}

#[test]
fn apple_music_csv_with_a_bad_timestamp() {
    let header = "Artist Name,Content Name,Event End Timestamp,Event Start Timestamp,Event Type,Play Duration Milliseconds,Media Duration In Milliseconds\n";
    let good =
        "Queen,Flash,2016-03-02T09:31:21.753Z,2016-03-02T09:30:21.753Z,PLAY_END,60000,169131.0\n";
    let bad = good.replace("2016-03-02T09:31:21.753Z", "02/03/2016 09:31");
    check_bad(
        "Apple Music Play Activity.csv",
        format!("{header}{good}{bad}").as_bytes(),
        &[
            "Apple Music Play Activity CSV",
            "line 3",
            "`Event End Timestamp` is \"02/03/2016 09:31\"",
        ],
    );
    let absurd = good.replace("2016-03-02T09:30:21.753Z", "9999-03-02T09:30:21.753Z");
    check_bad(
        "Apple Music Play Activity.csv",
        format!("{header}{good}{absurd}").as_bytes(),
        &["line 3", "outside the plausible range"],
    );
}
