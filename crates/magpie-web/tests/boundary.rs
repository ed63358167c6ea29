//! The trust boundary over HTTP, probed as a reviewer would from another machine on the LAN
//! or a web page the owner visits: first-run takeover, redirects out, routes without a
//! session, throttling, metrics access, security headers, request limits, and the pool under
//! dropped requests.

mod common;

use std::time::Duration;

use common::{client, csrf_of, session_of};
use magpie_web::routes::{Access, table};

/// A served empty warehouse with `config` changed by `change`; its data folder.
fn served(change: impl FnOnce(&mut magpie_core::Config)) -> (common::Served, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    change(&mut config);
    let wh =
        magpie_core::Warehouse::open(dir.path().join("w.duckdb"), &Default::default()).unwrap();
    let app = magpie_web::App::new(&config, &wh).unwrap();
    let path = dir.path().to_path_buf();
    (common::serve_app(app, wh, dir), path)
}

#[tokio::test]
async fn a_fresh_install_cannot_be_claimed_by_a_cross_site_post_or_without_the_setup_code() {
    let (d, data) = served(|_| {});
    let http = client();
    let code = d.app.setup_code().expect("no password yet: a setup code");
    let setup = |origin: Option<&'static str>, code: &str| {
        let mut request = http.post(d.url("/setup")).form(&[
            ("password", "attacker's password"),
            ("confirm", "attacker's password"),
            ("code", code),
        ]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // What a page on another site makes the owner's browser send.
    let r = setup(Some("https://evil.example"), "").await.unwrap();
    assert_eq!(r.status(), 403);
    let r = setup(Some("https://evil.example"), &code).await.unwrap();
    assert_eq!(r.status(), 403, "even with the code, not from another site");
    // Someone on the LAN with curl, without the code printed on the box.
    let r = setup(None, "").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("setup code"));
    let r = setup(None, "ABCD-EFGH-JKLM").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        !magpie_core::secrets::admin_password_set(&data),
        "nothing was written"
    );

    // The owner, with the code from the log.
    let r = http
        .post(d.url("/setup"))
        .header("origin", d.base.as_str())
        .form(&[
            ("password", "the owner's password"),
            ("confirm", "the owner's password"),
            ("code", code.to_lowercase().as_str()),
            ("next", "/flows"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/flows");
    assert!(magpie_core::secrets::verify_admin_password(&data, "the owner's password").unwrap());
    assert!(d.app.setup_code().is_none(), "the code is spent");
    let r = setup(None, &code).await.unwrap();
    assert_eq!(r.status(), 403, "once set, never again from the web");
    assert!(magpie_core::secrets::verify_admin_password(&data, "the owner's password").unwrap());
}

#[tokio::test]
async fn the_first_run_form_checks_its_passwords() {
    let (d, data) = served(|_| {});
    let http = client();
    let html = http
        .get(d.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Set the admin password") && html.contains("name=\"code\""));
    let code = d.app.setup_code().unwrap();
    let setup = |password: &'static str, confirm: &'static str| {
        http.post(d.url("/setup"))
            .form(&[
                ("password", password),
                ("confirm", confirm),
                ("code", code.as_str()),
            ])
            .send()
    };
    let r = setup("a long admin secret", "a long admin secreT")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("differ"));
    let r = setup("short", "short").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(!magpie_core::secrets::admin_password_set(&data));
    let r = setup("a long admin secret", "a long admin secret")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers().contains_key("set-cookie"), "logged in at once");
    let html = http
        .get(d.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Set the admin password"));
}

#[tokio::test]
async fn a_login_never_redirects_to_another_site() {
    let (d, data) = served(|_| {});
    magpie_core::secrets::set_admin_password(&data, "a long admin secret").unwrap();
    let http = client();
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
    ] {
        let r = http
            .post(d.url("/login"))
            .form(&[("password", "a long admin secret"), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(r.headers()["location"], "/admin/spotify", "{next:?}");
    }
    let r = http
        .post(d.url("/login"))
        .form(&[
            ("password", "a long admin secret"),
            ("next", "/top/artists?range=all"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/top/artists?range=all");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let (d, data) = served(|c| c.server.public_url = Some("https://music.example.org".into()));
    magpie_core::secrets::set_admin_password(&data, "a long admin secret").unwrap();
    let r = client()
        .post(d.url("/login"))
        .header("origin", "https://music.example.org")
        .form(&[("password", "a long admin secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    assert!(r.headers().contains_key("strict-transport-security"));
}

/// A path of the route table with its parameters filled in.
fn concrete(path: &str, d: &common::Served) -> String {
    let id = |sql: &str| d.text(sql);
    path.replace("{kind}", "artists")
        .replace(
            "{id}",
            &if path.starts_with("/artist") {
                id("SELECT artist_id FROM marts.dim_artist LIMIT 1")
            } else if path.starts_with("/album") {
                id("SELECT album_id FROM marts.dim_album LIMIT 1")
            } else if path.starts_with("/track") {
                id("SELECT track_id FROM marts.dim_track LIMIT 1")
            } else {
                "1".into()
            },
        )
        .replace("{year}", "2025")
        .replace("{file}", "app.css")
        .replace("{flow}", "daily-etl")
        .replace("{name}", "default")
        .replace("{action}", "run")
        .replace("{token}", &"0".repeat(32))
        .replace(
            "{slug}",
            if path.starts_with("/d/") {
                "listening-overview"
            } else {
                "no-such-question"
            },
        )
}

/// Every route of the table, requested without a session by its own method, and POSTed to:
/// public and page routes serve read-only content, admin routes and every state change refuse.
#[tokio::test]
async fn every_route_without_a_session_serves_read_only_content_or_refuses() {
    let d = common::demo();
    let http = client();
    let routes = table();
    assert!(routes.len() >= 30, "{} routes", routes.len());
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for route in &routes {
        let path = concrete(route.path, d);
        let response = http
            .request(route.method.clone(), d.url(&path))
            .form(&[("listener", "mallory"), ("password", "guess")])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let class = match (route.access, route.method.as_str()) {
            (Access::Admin, _) if path.starts_with("/api/") && !path.starts_with("/api/auth") => {
                assert_eq!(status, 401, "{} {path}", route.method);
                "admin API: 401"
            }
            (Access::Admin | Access::Member, _) => {
                assert_eq!(status, 303, "{} {path}", route.method);
                assert!(
                    location
                        .as_deref()
                        .is_some_and(|l| l.starts_with("/login?next=")),
                    "{} {path}: {location:?}",
                    route.method
                );
                "admin: sent to the login"
            }
            (Access::Pages | Access::Listening | Access::Household, "GET") => {
                // A run or question that does not exist is allowed to be missing; `/year`
                // sends the browser to the latest year. (Every listener is visible to
                // everyone by default; household.rs tests the other settings.)
                assert!(
                    status == 200
                        || (status == 404
                            && (path.starts_with("/runs/") || path.starts_with("/q/")))
                        || (status == 307 && path == "/year"),
                    "{path}: {status}"
                );
                "pages: read-only content"
            }
            (Access::Metrics, _) => {
                assert!(status == 200 || status == 404, "{path}: {status}");
                "metrics: open (server.metrics)"
            }
            (Access::Public, "GET") => {
                assert!(status < 500 && status != 403, "{path}: {status}");
                "public: served"
            }
            (Access::Public, _) => {
                // The login and first-run forms: a wrong password, no setup code, a form
                // without its fields.
                assert!(
                    (400..500).contains(&status),
                    "{} {path}: {status}",
                    route.method
                );
                "public form: refused without the secret"
            }
            (Access::Api, "GET") => {
                // Reading listens back is open like the pages; a token check answers 400/401.
                assert!(status < 500, "{path}: {status}");
                "submission API: read or refused"
            }
            (Access::Api, _) => {
                // No token, no signature: refused in the protocol's own shape.
                assert!(
                    (400..500).contains(&status),
                    "{} {path}: {status}",
                    route.method
                );
                "submission API: refused without a credential"
            }
            (access, method) => panic!("{method} {path} in {access:?}: no rule"),
        };
        *tally.entry(class.to_string()).or_default() += 1;
        // A POST to any route: a state change without a session is never accepted.
        if route.method == axum::http::Method::GET {
            let r = http.post(d.url(&path)).send().await.unwrap();
            let s = r.status().as_u16();
            let to_login = r
                .headers()
                .get("location")
                .is_some_and(|l| l.to_str().unwrap().starts_with("/login"));
            assert!(
                (400..500).contains(&s) || (s == 303 && to_login),
                "POST {path} without a session: {s}"
            );
        }
    }
    eprintln!(
        "{} routes probed without a session: {tally:#?}",
        routes.len()
    );
    assert_eq!(
        tally.values().sum::<usize>(),
        routes.len(),
        "every route has a rule"
    );
}

#[tokio::test]
async fn with_require_login_pages_refuse_and_metrics_need_the_session() {
    let (d, data) = served(|c| c.server.require_login = true);
    magpie_core::secrets::set_admin_password(&data, "a long admin secret").unwrap();
    let http = client();
    for route in table() {
        if !matches!(
            route.access,
            Access::Pages | Access::Listening | Access::Household
        ) {
            continue;
        }
        let path = route.path.replace(['{', '}'], "");
        let r = http.get(d.url(&path)).send().await.unwrap();
        let expected = if path.starts_with("/api/") { 401 } else { 303 };
        assert_eq!(r.status(), expected, "{path}");
        let r = http
            .get(d.url(&format!("{path}?format=json")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} as JSON");
    }
    let r = http
        .get(d.url("/top/artists?range=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Ftop%2Fartists%3Frange%3Dall"
    );
    assert_eq!(
        http.get(d.url("/metrics")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        http.get(d.url("/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(d.url("/login")).send().await.unwrap().status(),
        200
    );
    let r = http
        .post(d.url("/login"))
        .form(&[("password", "a long admin secret")])
        .send()
        .await
        .unwrap();
    let session = session_of(&r);
    let r = http
        .get(d.url("/metrics"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "allowed; no recorder in this process");
}

#[tokio::test]
async fn metrics_can_take_a_bearer_token() {
    let (d, _) = served(|c| {
        c.server.metrics = Some(magpie_core::config::MetricsAccess::Token);
        c.server.metrics_token = Some(magpie_core::Secret::new("a scraper's long token"));
    });
    let http = client();
    let r = http.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .get(d.url("/metrics"))
        .bearer_auth("a wrong token of length")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(d.url("/metrics"))
        .bearer_auth("a scraper's long token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "allowed; no recorder in this process");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_not_for_everyone() {
    // Behind a trusted proxy on loopback, X-Forwarded-For names the client.
    let (d, data) = served(|c| c.server.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()]);
    magpie_core::secrets::set_admin_password(&data, "the owner's password").unwrap();
    let http = client();
    let login = |client_ip: &'static str, password: &'static str| {
        http.post(d.url("/login"))
            .header("x-forwarded-for", client_ip)
            .form(&[("password", password)])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            login("10.0.0.66", "guess guess guess")
                .await
                .unwrap()
                .status(),
            401
        );
    }
    let r = login("10.0.0.66", "the owner's password").await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "the guesser waits, even with the right password"
    );
    assert!(r.text().await.unwrap().contains("from this address"));
    let r = login("10.0.0.10", "the owner's password").await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "the owner, elsewhere on the LAN, still logs in"
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_no_inline_script_or_style() {
    let d = common::demo();
    let http = client();
    for path in [
        "/",
        "/top/tracks",
        "/timeline",
        "/map",
        "/login",
        "/flows",
        "/runs/1",
        "/status",
        "/no/such/page",
        "/assets/app.css",
    ] {
        let r = http.get(d.url(path)).send().await.unwrap();
        let headers = r.headers().clone();
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let body = r.text().await.unwrap();
        if path != "/assets/app.css" {
            assert!(!body.contains("<script>"), "{path}: an inline script");
            assert!(!body.contains(" style=\""), "{path}: an inline style");
            for handler in [
                " onclick=",
                " onload=",
                " onchange=",
                " onsubmit=",
                " onerror=",
            ] {
                assert!(!body.contains(handler), "{path}: an inline handler");
            }
        }
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_silent_connections_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (d, _) = served(|c| {
        c.server.max_body = bytesize_kb(8);
        c.server.header_timeout = Duration::from_secs(1);
    });
    let big = "x".repeat(20_000);
    let r = client()
        .post(d.url("/login"))
        .form(&[("password", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A client that connects and sends nothing is dropped once the header timeout passes.
    let address = d.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the server closed the silent connection within 5 s"
    );
    // And one that sends half its headers, too.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut Vec::new())).await;
    assert!(read.is_ok(), "a slow client is cut off");
}

fn bytesize_kb(kb: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::kb(kb)
}

/// Requests dropped mid-flight (clients gone) must leave every connection usable: their
/// permits are held until their queries end, so no later request finds the pool empty.
#[tokio::test]
async fn fifty_dropped_requests_leave_every_page_answering() {
    let d = common::demo();
    let pages = common::PAGES;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(3))
        .build()
        .unwrap();
    let mut dropped = Vec::new();
    for i in 0..50 {
        // Ranges nobody asked for yet, so each one queries.
        let day = 1 + i % 28;
        let url = d.url(&format!(
            "{}?range=custom&from=2024-01-{day:02}&to=2026-05-{:02}&format=json",
            pages[i % pages.len()],
            1 + (i * 7) % 28
        ));
        let impatient = impatient.clone();
        dropped.push(tokio::spawn(async move {
            impatient.get(url).send().await.is_ok()
        }));
    }
    for d in dropped {
        let _ = d.await;
    }
    let http = client();
    for (i, page) in pages.iter().enumerate() {
        let url = d.url(&format!(
            "{page}?range=custom&from=2023-06-{:02}&to=2026-04-30",
            1 + i
        ));
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}: {}", r.text().await.unwrap());
    }
}

/// The forms of the admin pages carry their token in a hidden field, not the URL.
#[tokio::test]
async fn tokens_never_travel_in_urls() {
    let (d, data) = served(|_| {});
    magpie_core::secrets::set_admin_password(&data, "a long admin secret").unwrap();
    let http = client();
    let r = http
        .post(d.url("/login"))
        .form(&[("password", "a long admin secret")])
        .send()
        .await
        .unwrap();
    let session = session_of(&r);
    for path in ["/admin/spotify", "/flows"] {
        let html = http
            .get(d.url(path))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("?csrf="), "{path}");
        if path == "/admin/spotify" {
            assert_eq!(csrf_of(&html).len(), 64);
        }
    }
}
