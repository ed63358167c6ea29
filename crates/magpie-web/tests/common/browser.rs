//! Helpers of the browser tests: chromedriver started on a free port (or a notice and `None`
//! without one, unless REQUIRE_BROWSER_TESTS is set), a headless Chromium session with its
//! own profile, waits, screenshots and small DOM helpers.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A running chromedriver, killed and reaped on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start chromedriver (`CHROMEDRIVER`, default `/usr/bin/chromedriver`). Without it: a notice
/// and `None`, or a failure when REQUIRE_BROWSER_TESTS is set.
pub fn chromedriver() -> Option<Driver> {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if !Path::new(&binary).exists() {
        assert!(
            std::env::var_os("REQUIRE_BROWSER_TESTS").is_none(),
            "REQUIRE_BROWSER_TESTS is set but there is no chromedriver at {binary}"
        );
        println!(
            "NOTICE: browser tests skipped: no chromedriver at {binary} (apt install chromium chromium-driver)"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // The driver is killed and reaped on drop, whether or not it comes up.
    let driver = Driver { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(driver);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on port {port}");
}

/// A headless Chromium session (`CHROMIUM_BINARY`, default `/usr/bin/chromium`) with its own
/// profile folder: sessions with different profiles share no cookies.
pub async fn browser(driver: &Driver, profile: &Path) -> Client {
    browser_with(driver, profile, serde_json::Map::new()).await
}

/// The same, with `extra` capabilities (e.g. `goog:loggingPrefs` to read the console).
pub async fn browser_with(
    driver: &Driver,
    profile: &Path,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Client {
    let chrome = std::env::var("CHROMIUM_BINARY").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    caps.extend(extra);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// The first element matching `css`, waiting up to 10 s for it.
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "{css} did not appear on {:?}: {e}",
            client.current_url().await.ok()
        ),
    }
}

/// Save a screenshot of the window as `dir/name.png`.
pub async fn shot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.len() > 5_000, "{name}: a real picture");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The path of the current URL.
pub async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

/// Click the first element matching `css`.
pub async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Run `js` in the page and return what it returns.
pub async fn script(client: &Client, js: &str) -> serde_json::Value {
    client.execute(js, Vec::new()).await.unwrap()
}
