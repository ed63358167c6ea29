//! One GET to a metadata service, reduced to what the workers decide on: the status, the body
//! parsed as JSON (or why it is not JSON), and a 429/503's `Retry-After`.

use std::time::Duration;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// The body as JSON; `Err` holds why it is not (malformed, truncated).
    pub json: Result<serde_json::Value, String>,
    /// `Retry-After` in seconds, when the service sent one.
    pub retry_after: Option<u64>,
}

/// What stopped a request before a status arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// No complete response within the timeout.
    Timeout(Duration),
    /// Refused, reset, DNS, TLS.
    Network(String),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Timeout(d) => write!(f, "no response within {} s", d.as_secs_f64()),
            Transport::Network(e) => write!(f, "network: {e}"),
        }
    }
}

/// An HTTP client for metadata services: rustls, gzip, a User-Agent, bounded timeouts.
pub fn client(user_agent: &str, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// GET `url` (with a bearer token when given), reading the whole body; counted in
/// `magpie_api_requests_total{service, status}`.
pub async fn get(
    service: &'static str,
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, Transport> {
    let mut request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            Transport::Timeout(timeout)
        } else {
            Transport::Network(e.without_url().to_string())
        }
    };
    let response = request.send().await.map_err(|e| {
        metrics::counter!("magpie_api_requests_total", "service" => service, "status" => "error")
            .increment(1);
        failed(e)
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response.bytes().await.map_err(failed)?;
    let json = serde_json::from_slice(&body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        format!("malformed JSON ({e}) in a body starting {start:?}")
    });
    metrics::counter!("magpie_api_requests_total", "service" => service, "status" => status.to_string())
        .increment(1);
    Ok(Fetched {
        status,
        json,
        retry_after,
    })
}
