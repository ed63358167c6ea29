//! Property test of every page's query parameters (issue 27, the CI share of fuzzing): the
//! app is built in-process on a small demo warehouse (with a saved question, and share links
//! to it and to a dashboard) and every GET route of the route table is sent random query
//! strings: keys from the pages' real parameter names (and a few others), values that are
//! huge, negative, unicode, empty, %-escaped (well and badly) or long, keys repeated, as the
//! logged-in admin or as nobody.
//!
//! Invariants: no response is a 5xx and no handler panics; a 400 says why in its body.
//!
//! `PROPTEST_CASES` sets the number of requests (default [`DEFAULT_CASES`]).

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use magpie_questions::{ShareStore, ShareTarget};
use proptest::prelude::*;
use proptest::sample::Index;
use tower::ServiceExt;

/// Requests when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 3000;

const PASSWORD: &str = "a long admin secret";

/// A saved question with a variable of each kind its page takes from the query string.
const QUESTION: &str = "-- title: Top artists
-- variables:
--   year: {type: number, default: 2025}
--   artist: {type: list, options: SELECT artist_name FROM dim_artist ORDER BY 1}
--   range: {type: date_range, default: all}
--   since: {type: date}
--   who: {type: text}
-- chart: {kind: bar, x: artist_name, y: plays}

SELECT a.artist_name, count(*) AS plays
FROM fact_plays f JOIN dim_artist a USING (artist_id) JOIN dim_date d USING (date_id)
WHERE d.year = {{year}} AND d.date_day BETWEEN {{range.from}} AND {{range.to}}
  [[AND a.artist_name = {{artist}}]] [[AND d.date_day >= {{since}}]]
  [[AND a.artist_name <> {{who}}]]
GROUP BY 1 ORDER BY 2 DESC LIMIT 5
";

/// The served app: its router, the admin's session cookie, and values for path parameters.
struct Fixture {
    router: Router,
    runtime: tokio::runtime::Runtime,
    cookie: String,
    tokens: Vec<String>,
    ids: Vec<String>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = common::demo_warehouse(dir.path(), 1_500);
        let id = |sql: &str| -> String {
            wh.conn()
                .query_row(sql, [], |r| r.get::<_, String>(0))
                .unwrap()
        };
        let ids = vec![
            id("SELECT min(artist_id)::VARCHAR FROM marts.dim_artist"),
            id("SELECT min(album_id)::VARCHAR FROM marts.dim_album"),
            id("SELECT min(track_id)::VARCHAR FROM marts.dim_track"),
        ];
        let questions = magpie_questions::Library::questions_dir(dir.path());
        std::fs::create_dir_all(&questions).unwrap();
        std::fs::write(questions.join("top.sql"), QUESTION).unwrap();
        let shares = ShareStore::new(dir.path());
        let tokens = [
            ShareTarget::Dashboard("artists".into()),
            ShareTarget::Question("top".into()),
        ]
        .into_iter()
        .map(|target| shares.create(target, Default::default()).unwrap().1)
        .collect();
        magpie_core::secrets::set_admin_password(dir.path(), PASSWORD).unwrap();
        let mut config = common::config(dir.path());
        config.explore.public_requests_per_minute = u32::MAX;
        let app = magpie_web::App::new(&config, &wh).unwrap();
        let router = magpie_web::router(app);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let login = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "password={}",
                PASSWORD.replace(' ', "+")
            )))
            .unwrap();
        let response = runtime
            .block_on(router.clone().oneshot(with_peer(login)))
            .unwrap();
        assert_eq!(response.status(), 303, "the admin logs in");
        // The session cookie, without its attributes.
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        Fixture {
            router,
            runtime,
            cookie,
            tokens,
            ids,
            _dir: dir,
        }
    })
}

/// A request as the server hands it over: with the peer's address.
fn with_peer(mut request: Request<Body>) -> Request<Body> {
    let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// Every query parameter the pages read, and a few they do not.
const KEYS: &[&str] = &[
    "range",
    "from",
    "to",
    "format",
    "grain",
    "by",
    "country",
    "next",
    "card",
    "question",
    "token",
    "min_ts",
    "max_ts",
    "count",
    "year",
    "artist",
    "since",
    "who",
    "code",
    "state",
    "error",
    "method",
    "api_key",
    "api_sig",
    "sk",
    "user",
    "limit",
    "page",
    "track",
    "album",
    "timestamp",
    "cb",
    "x",
    "",
    "%72ange",
    "range[]",
    "RANGE",
];

/// Values right and wrong for those parameters.
const VALUES: &[&str] = &[
    "",
    "2025",
    "2024",
    "all",
    "365d",
    "30d",
    "7d",
    "0d",
    "-5d",
    "99999999999d",
    "2024-01-01",
    "2024-02-30",
    "2024-13-45",
    "0000-01-01",
    "9999-12-31",
    "+275760-09-13",
    "2024-01-01..2024-12-31",
    "2025-01-01..2024-01-01",
    "..",
    "json",
    "csv",
    "html",
    "xml",
    "JSON",
    "day",
    "week",
    "month",
    "year",
    "plays",
    "time",
    "DE",
    "de",
    "ZZ",
    "XK",
    "-1",
    "0",
    "1",
    "3",
    "4294967296",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "NaN",
    "inf",
    "0x10",
    "%00",
    "%FF",
    "%",
    "%zz",
    "%E2%82",
    "%C3%A9",
    "é",
    "🎵",
    "\u{202e}",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'",
    "\"",
    "' OR 1=1 --",
    "a+b",
    "a b",
    "/flows",
    "//evil.example/",
    "https://evil.example",
    "user.getInfo",
    "track.scrobble",
    "auth.getSession",
    "artists",
    "top",
    "Artist 1",
];

/// Path parameters: real values and odd ones.
const PATH_VALUES: &[&str] = &[
    "artists",
    "tracks",
    "albums",
    "genres",
    "2025",
    "2024",
    "0",
    "-1",
    "99999999999999999999",
    "abc",
    "%00",
    "%2e%2e",
    "é",
    "top",
    "artists",
    "listening-overview",
    "no-such",
    "app.css",
    "x.js",
    "1",
];

/// A query string: `key=value` pairs joined by `&`, some keys repeated.
fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        8 => prop::sample::select(VALUES).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => ".{0,12}",
        1 => (prop::sample::select(VALUES), 50..3000usize).prop_map(|(v, n)| v.repeat(n).chars().take(4000).collect()),
    ];
    let pair = (prop::sample::select(KEYS), value, any::<bool>());
    prop::collection::vec(pair, 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v, bare)| {
                if *bare && v.is_empty() {
                    k.to_string()
                } else {
                    format!("{k}={}", encode(v))
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// Bytes a URI cannot hold written as %XX; `%` itself is left, so bad escapes stay bad.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*+,;:@/?%=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The GET routes of the table, with their path parameters filled in.
fn get_routes() -> Vec<&'static str> {
    magpie_web::routes::table()
        .into_iter()
        .filter(|r| r.method == Method::GET)
        .map(|r| r.path)
        .collect()
}

fn fill(path: &str, values: &[String]) -> String {
    let mut out = String::new();
    let mut rest = path;
    let mut i = 0;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push_str(&rest[..start]);
        out.push_str(&values[i % values.len()]);
        i += 1;
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_get_route_answers_its_plain_request() {
    let f = fixture();
    let routes = get_routes();
    assert!(routes.len() >= 30, "{routes:?}");
    let pages: Vec<&str> = magpie_web::routes::table()
        .into_iter()
        .filter(|r| r.access == magpie_web::routes::Access::Pages)
        .map(|r| r.path)
        .collect();
    for path in routes {
        let real = match path {
            "/top/{kind}" => "/top/artists".to_string(),
            "/artist/{id}" => format!("/artist/{}", f.ids[0]),
            "/album/{id}" => format!("/album/{}", f.ids[1]),
            "/track/{id}" => format!("/track/{}", f.ids[2]),
            "/public/{token}" => format!("/public/{}", f.tokens[0]),
            "/q/{slug}" => "/q/top".into(),
            "/d/{slug}" => "/d/artists".into(),
            "/year/{year}" => "/year/2025".into(),
            other => fill(other, &["1".into()]),
        };
        let (status, body) = send(f, &real, true);
        assert!(status < 500, "{real}: {status} {body}");
        // Every page without path parameters shows something (`/year`: the latest year's).
        if !path.contains('{') && pages.contains(&path) {
            assert!(matches!(status, 200 | 307), "{real}: {status} {body}");
        }
        if matches!(
            path,
            "/" | "/top/{kind}" | "/artist/{id}" | "/q/{slug}" | "/d/{slug}" | "/public/{token}"
        ) {
            assert_eq!(status, 200, "{real}: {body}");
        }
    }
}

#[test]
fn bad_parameters_are_a_400_that_says_why() {
    let f = fixture();
    for url in [
        "/?range=nonsense",
        "/?range=custom&from=2024-02-30&to=2024-03-01",
        "/?range=2025&range=2024",
        "/timeline?range=2025&grain=fortnight",
    ] {
        let (status, body) = send(f, url, false);
        assert_eq!(status, 400, "{url}: {body}");
        assert!(!body.trim().is_empty(), "{url}");
    }
}

/// GET `path_and_query`: status and body.
fn send(f: &Fixture, path_and_query: &str, admin: bool) -> (u16, String) {
    let mut request = Request::get(path_and_query);
    if admin {
        request = request.header("cookie", &f.cookie);
    }
    let request = with_peer(request.body(Body::empty()).unwrap());
    f.runtime.block_on(async {
        let response = f.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(unreadable body: {e})"));
        (status, body)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_query_string_makes_a_page_fail(
        route in any::<Index>(),
        path_values in prop::collection::vec(prop::sample::select(PATH_VALUES), 2),
        real in any::<bool>(),
        query in query(),
        admin in any::<bool>(),
    ) {
        let f = fixture();
        let routes = get_routes();
        let path = routes[route.index(routes.len())];
        let mut values: Vec<String> = path_values.iter().map(|v| encode(v)).collect();
        if real {
            values = match path {
                "/public/{token}" => vec![f.tokens[0].clone(), f.tokens[1].clone()],
                "/q/{slug}" => vec!["top".into()],
                "/d/{slug}" => vec!["artists".into(), "listening-overview".into()],
                "/artist/{id}" => vec![f.ids[0].clone()],
                "/album/{id}" => vec![f.ids[1].clone()],
                "/track/{id}" => vec![f.ids[2].clone()],
                _ => values,
            };
            values.rotate_left(usize::from(admin));
        }
        let url = format!("{}?{query}", fill(path, &values));
        prop_assume!(url.parse::<axum::http::Uri>().is_ok());
        let (status, body) = send(f, &url, admin);
        prop_assert!(status < 500, "GET {url}: {status}\n{body}");
        if status == 400 {
            prop_assert!(!body.trim().is_empty(), "GET {url}: a 400 that says nothing");
        }
    }
}
