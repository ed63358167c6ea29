//! `magpie share create | list | revoke` and the `question-alerts` flow end to end, against a
//! demo warehouse: links are checked against the questions and dashboards on disk and their
//! tokens are printed once and stored hashed; a question whose alert fires reaches a local
//! webhook receiver once, and a second run soon after does not fire again (not due).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod common;

use common::{magpie, run, stderr, stdout};

/// A demo warehouse of 3,000 plays over a year in `dir/data`; that folder.
fn demo_data(dir: &Path) -> String {
    let data = dir.join("data").to_string_lossy().into_owned();
    let out = run(magpie(dir).args([
        "--data-dir",
        &data,
        "demo",
        "--no-serve",
        "--plays",
        "3000",
        "--years",
        "1",
    ]));
    assert!(out.status.success());
    data
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const TOP_ARTISTS: &str = "-- title: Top artists of a year\n\
     -- variables:\n\
     --   year: {type: number, default: 2025}\n\
     --   artist: {type: text}\n\
     SELECT a.artist_name, count(*) AS plays\n\
     FROM fact_plays f JOIN dim_artist a USING (artist_id) JOIN dim_date d USING (date_id)\n\
     WHERE d.year = {{year}} [[AND a.artist_name = {{artist}}]]\n\
     GROUP BY 1 ORDER BY 2 DESC LIMIT 10\n";

/// The token in a printed share URL.
fn token_of(text: &str) -> String {
    let at = text.find("/public/").expect("a share URL") + "/public/".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

#[test]
fn share_links_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path());
    write(
        &Path::new(data).join("questions/top-artists.sql"),
        TOP_ARTISTS,
    );
    let share = |args: &[&str]| {
        let mut cmd = magpie(dir.path());
        cmd.args(["--data-dir", data, "share"]).args(args);
        run(&mut cmd)
    };

    let out = share(&["create", "--question", "top-artists", "--lock", "year=2025"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let token = token_of(&text);
    assert_eq!(token.len(), 32, "{text}");
    assert!(
        text.contains(&format!("http://localhost:8080/public/{token}")),
        "without server.public_url, the local address: {text}"
    );
    assert!(text.contains("shown only once"), "{text}");
    assert!(text.contains("with year=2025 locked"), "{text}");
    let store = magpie_questions::ShareStore::new(Path::new(data));
    let stored = store
        .find(&token)
        .unwrap()
        .expect("the printed token opens it");
    assert_eq!(
        stored.target,
        magpie_questions::ShareTarget::Question("top-artists".into())
    );
    assert_eq!(stored.locked["year"], "2025");
    let file = std::fs::read_to_string(store.path()).unwrap();
    assert!(!file.contains(&token), "only a hash is stored");

    // A built-in dashboard, with server.public_url from a configuration file.
    let config = dir.path().join("magpie.toml");
    std::fs::write(
        &config,
        "[server]\npublic_url = \"https://music.example.org/\"\n",
    )
    .unwrap();
    let out = run(magpie(dir.path()).args([
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data,
        "share",
        "create",
        "--dashboard",
        "listening-overview",
        "--lock",
        "range=2025-01-01..2025-06-30",
    ]));
    assert!(out.status.success());
    let dashboard_token = token_of(&stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "https://music.example.org/public/{dashboard_token}"
        )),
        "{}",
        stdout(&out)
    );

    // Refused: what does not exist, variables it does not have, values of the wrong type.
    for (args, needle) in [
        (
            vec!["create", "--question", "nope"],
            "there is no question `nope` (there are: top-artists)",
        ),
        (
            vec!["create", "--dashboard", "nope"],
            "there is no dashboard `nope`",
        ),
        (
            vec![
                "create",
                "--question",
                "top-artists",
                "--lock",
                "listener=ana",
            ],
            "question top-artists has no variable `listener` to lock (its variables: artist, year)",
        ),
        (
            vec!["create", "--question", "top-artists", "--lock", "year=last"],
            "--lock year=last: `last` is not a number",
        ),
        (
            vec![
                "create",
                "--dashboard",
                "listening-overview",
                "--lock",
                "range=2025-02-01..2025-01-01",
            ],
            "ends before it starts",
        ),
        (
            vec![
                "create",
                "--question",
                "top-artists",
                "--dashboard",
                "artists",
            ],
            "cannot be used with",
        ),
        (vec!["create"], "required"),
    ] {
        let out = share(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }

    let out = share(&["list"]);
    assert!(out.status.success());
    let listed = stdout(&out);
    assert!(!listed.contains(&token) && !listed.contains(&dashboard_token));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two links: {listed}");
    assert!(
        lines[1].contains("dashboard listening-overview"),
        "newest first: {listed}"
    );
    assert!(
        lines[1].contains("range=2025-01-01..2025-06-30"),
        "{listed}"
    );
    assert!(lines[2].contains("question top-artists") && lines[2].contains("year=2025"));
    let id = &stored.id;
    assert!(lines[2].starts_with(id.as_str()), "{listed}");

    let out = share(&["revoke", id]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("stops working at once"));
    assert!(store.find(&token).unwrap().is_none(), "revoked: gone");
    assert!(store.find(&dashboard_token).unwrap().is_some());
    let out = share(&["revoke", id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("no share link has the id `{id}`")));
    let out = share(&["list"]);
    assert_eq!(stdout(&out).lines().count(), 2);
}

/// What a webhook receiver got: (path, headers, body) per request.
type Got = Arc<Mutex<Vec<(String, String, String)>>>;

/// A minimal HTTP server on 127.0.0.1 that records every request and answers 200.
fn receiver() -> (String, Got) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let store = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            store.lock().unwrap().push((
                path,
                headers,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (url, got)
}

#[test]
fn a_question_alert_fires_once_through_the_flow_and_not_again_until_due() {
    let dir = tempfile::tempdir().unwrap();
    let data = &demo_data(dir.path());
    let (url, got) = receiver();
    let config = dir.path().join("magpie.toml");
    std::fs::write(
        &config,
        format!(
            "[[alerts.webhooks]]\nurl = \"{url}/generic\"\n\n\
             [[alerts.webhooks]]\nurl = \"{url}/ntfy\"\nformat = \"ntfy\"\n"
        ),
    )
    .unwrap();
    let questions = Path::new(data).join("questions");
    // Fires: the demo has plays, so the top artists query returns rows.
    write(
        &questions.join("top-now.sql"),
        "-- title: Top artists now\n\
         -- alert: {every: 1d, when: rows, message: Your top 3 artists}\n\
         SELECT a.artist_name, count(*) AS plays\n\
         FROM fact_plays f JOIN dim_artist a USING (artist_id)\n\
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3\n",
    );
    // Does not fire: no artist has a billion plays.
    write(
        &questions.join("huge.sql"),
        "-- alert: {every: 1h, when: {above: {column: plays, value: 1000000000}}}\n\
         SELECT count(*) AS plays FROM fact_plays\n",
    );
    // Broken: a warning in the run's log; the run still completes.
    write(
        &questions.join("broken.sql"),
        "-- alert: {every: 1h, when: rows}\nSELECT * FROM no_such_table\n",
    );
    let alerts = || {
        run(magpie(dir.path()).args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data,
            "run",
            "question-alerts",
        ]))
    };

    let out = alerts();
    assert!(
        out.status.success(),
        "a broken question does not fail the run"
    );
    let text = stdout(&out);
    assert!(
        text.contains("run 1 of question-alerts: Completed"),
        "{text}"
    );
    assert!(
        text.contains("top-now: fired (3 rows); delivered to 2 of 2 webhooks"),
        "{text}"
    );
    assert!(
        text.contains("huge: checked, nothing to say (1 row)"),
        "{text}"
    );
    assert!(
        text.contains("broken: ") && text.contains("no_such_table"),
        "{text}"
    );
    assert!(
        text.contains("3 questions with an alert: 3 due, 1 fired, 1 failed"),
        "{text}"
    );

    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "one alert, two webhooks: {received:#?}");
    let generic = received.iter().find(|r| r.0 == "/generic").unwrap();
    let event: serde_json::Value = serde_json::from_str(&generic.2).unwrap();
    assert_eq!(event["flow"], "question-alerts");
    assert_eq!(event["state"], "Alert");
    assert_eq!(event["title"], "Your top 3 artists");
    assert_eq!(event["question"], "top-now");
    let message = event["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], "3 rows");
    assert_eq!(lines[2], "artist_name | plays");
    assert_eq!(lines.len(), 6, "{message}");
    let ntfy = received.iter().find(|r| r.0 == "/ntfy").unwrap();
    assert!(
        ntfy.1.contains("title: Your top 3 artists")
            || ntfy.1.contains("Title: Your top 3 artists"),
        "{}",
        ntfy.1
    );
    assert_eq!(ntfy.2, message, "ntfy gets the same text");

    // Seconds later: nothing is due (daily and hourly alerts), nothing is sent.
    let out = alerts();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("3 questions with an alert: 0 due, 0 fired, 0 failed"),
        "{text}"
    );
    assert_eq!(got.lock().unwrap().len(), 2, "not fired again");

    // When each question last ran and fired is in the warehouse.
    let out = run(magpie(dir.path()).args([
        "--data-dir",
        data,
        "sql",
        "--format",
        "csv",
        "SELECT slug, last_fired_at IS NOT NULL AS fired, last_error IS NOT NULL AS failed \
         FROM meta.question_alerts ORDER BY slug",
    ]));
    assert_eq!(
        stdout(&out),
        "slug,fired,failed\nbroken,false,true\nhuge,false,false\ntop-now,true,false\n"
    );
    let out =
        run(magpie(dir.path()).args(["--data-dir", data, "runs", "--flow", "question-alerts"]));
    let runs = stdout(&out);
    assert_eq!(
        runs.lines().filter(|l| l.contains("Completed")).count(),
        2,
        "{runs}"
    );
}
