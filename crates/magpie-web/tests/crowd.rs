//! Many, slow and idle clients on a real server at 127.0.0.1:0: whatever they do, the server
//! keeps answering the others (issue 27's load share that CI runs; `scripts/load-test.sh` is
//! the long run with wrk).

mod common;

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A demo served with these server settings.
fn served(change: impl FnOnce(&mut magpie_core::Config)) -> common::Served {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    change(&mut config);
    let wh = common::demo_warehouse(dir.path(), 3_000);
    let app = magpie_web::App::new(&config, &wh).unwrap();
    common::serve_app(app, wh, dir)
}

/// Ask for `path` `n` times, one after the other, each allowed `patience`; the statuses.
async fn ask(d: &common::Served, path: &str, n: usize, patience: Duration) -> Vec<u16> {
    let http = reqwest::Client::builder()
        .timeout(patience)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..n {
        let status = match http.get(d.url(path)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        statuses.push(status);
    }
    statuses
}

fn address(d: &common::Served) -> String {
    d.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn idle_and_slow_clients_do_not_keep_others_waiting() {
    let d = served(|_| {});
    let address = address(&d);
    // 300 connections that never send a byte, and 50 that send a header byte a second.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(&address).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(s);
    }
    let drip = tokio::spawn(async move {
        for _ in 0..5 {
            for s in &mut slow {
                let _ = s.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        slow
    });
    let statuses = ask(&d, "/top/artists?range=all", 20, Duration::from_secs(10)).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "another client got {statuses:?} beside 350 idle and slow connections"
    );
    drop(drip.await.unwrap());
    drop(idle);
}

#[tokio::test]
async fn a_full_connection_table_frees_itself_from_silent_clients() {
    // The cap is reached by clients that say nothing: new ones are turned away only until
    // the header timeout closes the silent ones.
    let d = served(|c| {
        c.server.max_connections = 32;
        c.server.header_timeout = Duration::from_secs(1);
    });
    let address = address(&d);
    let mut silent = Vec::new();
    for _ in 0..32 {
        silent.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = ask(&d, "/health", 1, Duration::from_secs(5)).await;
    assert_ne!(refused, vec![200], "the 33rd connection is over the cap");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let statuses = ask(&d, "/", 5, Duration::from_secs(10)).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "after the header timeout the silent clients are gone: {statuses:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn fifty_clients_at_once_on_every_page_all_get_answers() {
    let d = served(|_| {});
    let pages: Vec<&str> = common::PAGES
        .into_iter()
        .chain([
            "/discoveries",
            "/streaks",
            "/year",
            "/completeness",
            "/dashboards",
        ])
        .collect();
    let ranges = ["all", "365d", "90d", "30d", "7d", "year"];
    let mut clients = Vec::new();
    for i in 0..50 {
        let url = d.url(&format!(
            "{}?range={}",
            pages[i % pages.len()],
            ranges[(i / pages.len()) % ranges.len()]
        ));
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failed = Vec::new();
            for _ in 0..4 {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failed.push(format!("{url}: {}", r.status())),
                    Err(e) => failed.push(format!("{url}: {e}")),
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for c in clients {
        failed.extend(c.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} of 200 failed: {failed:?}",
        failed.len()
    );
}
