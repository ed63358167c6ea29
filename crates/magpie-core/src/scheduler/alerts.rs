//! Webhook alerts for failed and crashed runs, and for the first success after them: a generic
//! JSON body, or ready formats for ntfy, Discord and Slack. Delivery failures are logged (never
//! with the URL, which may carry a token) and never affect the run.

use std::time::Duration;

use serde::Serialize;

use crate::config::{WebhookConfig, WebhookFormat};

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub flow: String,
    pub run_id: i64,
    /// `Failed`, `Crashed`, or `Recovered`.
    pub state: String,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: String,
    pub message: String,
}

impl AlertEvent {
    fn title(&self) -> String {
        format!("magpie: {} {}", self.flow, self.state.to_lowercase())
    }
}

/// Sends events to the configured webhooks.
#[derive(Debug, Clone)]
pub struct Alerter {
    hooks: Vec<WebhookConfig>,
    http: Option<reqwest::Client>,
}

impl Alerter {
    pub fn new(hooks: Vec<WebhookConfig>) -> Self {
        let http = (!hooks.is_empty())
            .then(|| {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .user_agent(concat!("magpie/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .ok()
            })
            .flatten();
        Self { hooks, http }
    }

    /// Deliver `event` to every webhook; returns how many accepted it.
    pub async fn send(&self, event: &AlertEvent) -> usize {
        let Some(http) = &self.http else { return 0 };
        let mut delivered = 0;
        for (i, hook) in self.hooks.iter().enumerate() {
            let url = hook.url.expose();
            let request = match hook.format {
                WebhookFormat::Generic => http.post(url).json(event),
                WebhookFormat::Discord => http
                    .post(url)
                    .json(&serde_json::json!({ "content": event.message })),
                WebhookFormat::Slack => http
                    .post(url)
                    .json(&serde_json::json!({ "text": event.message })),
                WebhookFormat::Ntfy => http
                    .post(url)
                    .header("Title", event.title())
                    .header(
                        "Priority",
                        if event.state == "Recovered" {
                            "default"
                        } else {
                            "high"
                        },
                    )
                    .header(
                        "Tags",
                        if event.state == "Recovered" {
                            "white_check_mark"
                        } else {
                            "warning"
                        },
                    )
                    .body(event.message.clone()),
            };
            match request.send().await {
                Ok(r) if r.status().is_success() => delivered += 1,
                Ok(r) => tracing::warn!(
                    webhook = i,
                    status = r.status().as_u16(),
                    "alert webhook refused the alert"
                ),
                Err(e) => {
                    tracing::warn!(webhook = i, error = %e.without_url(), "alert webhook unreachable")
                }
            }
        }
        delivered
    }
}
