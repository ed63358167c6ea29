//! The admin pages: login with the argon2-hashed admin password, an HttpOnly SameSite=Strict
//! session cookie, and connecting Spotify through the paste-back flow of a connector.

mod common;

use common::{client, csrf_of};

use std::sync::{Arc, Mutex};

use magpie_web::admin::{BoxFuture, ConnectedListener, Connector};

#[derive(Default)]
struct FakeConnector {
    pasted: Mutex<Vec<(String, String)>>,
    redirected: Mutex<Vec<String>>,
}

impl Connector for FakeConnector {
    fn redirect_uri(&self) -> String {
        "http://127.0.0.1:8888/callback".into()
    }
    fn listeners(&self) -> Vec<ConnectedListener> {
        vec![ConnectedListener {
            name: "ana".into(),
            status: "connected".into(),
            authorisation_ends: "2027-05-01".into(),
        }]
    }
    fn start(&self, listener: &str) -> Result<String, String> {
        Ok(format!(
            "https://accounts.example/authorize?for={listener}&state=s1"
        ))
    }
    fn finish<'a>(
        &'a self,
        listener: &'a str,
        pasted: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            if !pasted.contains("code=") {
                return Err("the pasted text has no `code=`".into());
            }
            self.pasted
                .lock()
                .unwrap()
                .push((listener.into(), pasted.into()));
            Ok(format!("Connected {listener}."))
        })
    }
    fn finish_redirect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.redirected.lock().unwrap().push(url.into());
            if url.contains("state=s1") {
                Ok("Connected by redirect.".into())
            } else {
                Err("no connect attempt matches".into())
            }
        })
    }
}

/// The page's text with minijinja's HTML escapes of `/` and `&` undone.
async fn text(r: reqwest::Response) -> String {
    r.text()
        .await
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn admin_pages_need_a_login_and_connect_spotify_by_paste_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = magpie_core::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let wh =
        magpie_core::Warehouse::open(dir.path().join("w.duckdb"), &Default::default()).unwrap();
    let connector = Arc::new(FakeConnector::default());
    let app = magpie_web::App::new(&config, &wh)
        .unwrap()
        .with_connector(connector.clone());
    let keep = tempfile::tempdir().unwrap();
    let d = common::serve_app(app, wh, keep);
    let http = client();

    // Not logged in: to the login page, which says how to set a password.
    let r = http.get(d.url("/admin/spotify")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fadmin%2Fspotify");
    let r = http
        .post(d.url("/admin/spotify/start"))
        .form(&[("listener", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "actions too");
    let html = http
        .get(d.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("magpie admin password"), "{html}");

    magpie_core::secrets::set_admin_password(dir.path(), "a long admin secret").unwrap();
    let r = http
        .post(d.url("/login"))
        .form(&[("password", "wrong password!"), ("next", "/admin/spotify")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // An outside `next` is not followed.
    let r = http
        .post(d.url("/login"))
        .form(&[
            ("password", "a long admin secret"),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/spotify");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    let html = text(
        http.get(d.url("/admin/spotify"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        html.contains("2027-05-01") && html.contains("http://127.0.0.1:8888/callback"),
        "{html}"
    );
    assert!(!html.contains("access"), "no token on the page");
    // Every form carries the session's CSRF token; a POST without it is refused.
    let csrf = csrf_of(&html);
    let r = http
        .post(d.url("/admin/spotify/start"))
        .header("cookie", &session)
        .form(&[("listener", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(text(r).await.contains("reload the page"));
    let r = http
        .post(d.url("/admin/spotify/start"))
        .header("cookie", &session)
        .form(&[("listener", "bob"), ("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a wrong token too");
    let r = http
        .post(d.url(&format!("/admin/spotify/start?csrf={csrf}")))
        .header("cookie", &session)
        .form(&[("listener", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "and never from the query string");

    let r = http
        .post(d.url("/admin/spotify/start"))
        .header("cookie", &session)
        .form(&[("listener", "bob"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = text(r).await;
    assert!(
        html.contains("https://accounts.example/authorize?for=bob&state=s1"),
        "the link is shown"
    );
    // A script may send the token as a header instead.
    let r = http
        .post(d.url("/admin/spotify/start"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .form(&[("listener", "../x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let pasted = "http://127.0.0.1:8888/callback?code=abc&state=s1";
    let r = http
        .post(d.url("/admin/spotify/finish"))
        .header("cookie", &session)
        .form(&[("listener", "bob"), ("pasted", pasted), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Connected bob."));
    assert_eq!(
        connector.pasted.lock().unwrap().as_slice(),
        &[("bob".to_string(), pasted.to_string())]
    );
    let r = http
        .post(d.url("/admin/spotify/finish"))
        .header("cookie", &session)
        .form(&[("listener", "bob"), ("pasted", "nonsense"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("no `code=`"));

    // A direct redirect to magpie's /callback needs no session: the state identifies the attempt.
    let r = http
        .get(d.url("/callback?code=xyz&state=s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(text(r).await.contains("Connected by redirect."));
    let r = http
        .get(d.url("/callback?code=xyz&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(connector.redirected.lock().unwrap()[0].ends_with("/callback?code=xyz&state=s1"));

    // Logging out ends the session.
    let r = http
        .post(d.url("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .get(d.url("/admin/spotify"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}
