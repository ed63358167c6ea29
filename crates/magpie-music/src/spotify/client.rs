//! The Web API call the poller makes: `GET /v1/me/player/recently-played?limit=50&after=<ms>`,
//! with 5xx and network failures retried (exponential backoff with jitter, via `backon`), and
//! 401 / 429 handed back to the caller (refresh the token; wait `Retry-After`).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// One page as Spotify sent it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The response body, stored as the import file.
    pub body: Vec<u8>,
    pub items: usize,
    /// `cursors.after`: the newest play's end time (unix ms), when the page has any.
    pub after: Option<i64>,
    /// The oldest play's end time on the page (unix ms).
    pub oldest_ms: Option<i64>,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// 401: the access token is no longer valid.
    Unauthorized,
    /// 429 with the seconds Spotify asks to wait.
    RateLimited(u64),
    /// 5xx after the retries.
    Server(u16, String),
    /// Any other status.
    Client(u16, String),
    /// Timeouts, refused connections, after the retries.
    Network(String),
    /// A body that is not a recently-played page.
    Invalid(String),
}

impl FetchError {
    fn transient(&self) -> bool {
        matches!(self, FetchError::Server(..) | FetchError::Network(_))
    }
}

/// Retries of one fetch: up to 4 more attempts, 0.5 s doubling, with jitter.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(4)
        .with_jitter()
}

async fn fetch_once(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> Result<Page, FetchError> {
    let response = http
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| FetchError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    if status == 429 {
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(60);
        return Err(FetchError::RateLimited(wait));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| FetchError::Network(e.without_url().to_string()))?;
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    match status {
        200 => {}
        401 => return Err(FetchError::Unauthorized),
        500..=599 => return Err(FetchError::Server(status, text())),
        _ => return Err(FetchError::Client(status, text())),
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(e.to_string()))?;
    let items = value["items"]
        .as_array()
        .ok_or_else(|| FetchError::Invalid("no `items` array".into()))?;
    let played = |item: &serde_json::Value| {
        item["played_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    let after = value["cursors"]["after"]
        .as_str()
        .and_then(|a| a.parse::<i64>().ok())
        .or_else(|| items.iter().filter_map(played).max());
    Ok(Page {
        items: items.len(),
        oldest_ms: items.iter().filter_map(played).min(),
        after,
        body: body.to_vec(),
    })
}

/// The plays that ended after `after_ms` (at most 50: the API keeps no more).
pub async fn recently_played(
    http: &reqwest::Client,
    api_url: &str,
    access_token: &str,
    after_ms: Option<i64>,
) -> Result<Page, FetchError> {
    let mut url = format!(
        "{}/v1/me/player/recently-played?limit=50",
        api_url.trim_end_matches('/')
    );
    if let Some(after) = after_ms {
        url.push_str(&format!("&after={after}"));
    }
    (|| fetch_once(http, &url, access_token))
        .retry(backoff())
        .when(FetchError::transient)
        .notify(|e, wait| tracing::warn!(error = ?e, retry_in = ?wait, "Spotify request failed, retrying"))
        .await
}
