//! Webhook alerts for failed and crashed runs, and for the first success after them, and for
//! saved questions whose alert fired (the `question-alerts` flow): a generic JSON body, or
//! ready formats for ntfy, Discord and Slack. Delivery failures are logged (never with the
//! URL, which may carry a token) and never affect the run.

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
    /// A title of its own (a question alert's message or the question's title); by default
    /// "magpie: FLOW STATE".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The saved question of a question alert (its slug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
}

/// The state of a question alert's event.
pub const QUESTION_ALERT_STATE: &str = "Alert";

/// Longest message sent (Discord takes 2,000 characters).
const MAX_MESSAGE_CHARS: usize = 1800;

impl AlertEvent {
    /// A saved question's alert fired in run `run_id` of `flow`: `title` is its first line,
    /// `body` what was found.
    pub fn question(
        flow: &str,
        run_id: i64,
        slug: &str,
        title: &str,
        body: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            flow: flow.to_string(),
            run_id,
            state: QUESTION_ALERT_STATE.to_string(),
            error: None,
            started_at: None,
            ended_at: at.naive_utc().to_string(),
            message: body.to_string(),
            title: Some(title.to_string()),
            question: Some(slug.to_string()),
        }
    }

    fn title(&self) -> String {
        let title = self
            .title
            .clone()
            .unwrap_or_else(|| format!("magpie: {} {}", self.flow, self.state.to_lowercase()));
        // One line, not too long.
        let title: String = title
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        title.trim().to_string()
    }

    /// The text of a chat message (Discord, Slack): a title of its own in bold (`bold`
    /// wraps it), then the message, cut to what the services take.
    fn chat_text(&self, bold: &str) -> String {
        let text = match &self.title {
            Some(_) => format!("{bold}{}{bold}\n{}", self.title(), self.message),
            None => self.message.clone(),
        };
        cut(&text, MAX_MESSAGE_CHARS)
    }

    fn is_good_news(&self) -> bool {
        self.state == "Recovered"
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A header value: ASCII as it is, anything else as an RFC 2047 encoded word
/// (`=?UTF-8?B?…?=`), which ntfy decodes (HTTP headers carry no UTF-8).
fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_string()
    } else {
        use base64::Engine;
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
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

    /// How many webhooks are configured.
    pub fn webhooks(&self) -> usize {
        if self.http.is_some() {
            self.hooks.len()
        } else {
            0
        }
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
                    .json(&serde_json::json!({ "content": event.chat_text("**") })),
                WebhookFormat::Slack => http
                    .post(url)
                    .json(&serde_json::json!({ "text": event.chat_text("*") })),
                WebhookFormat::Ntfy => {
                    let (priority, tags) = if event.state == QUESTION_ALERT_STATE {
                        ("default", "bell")
                    } else if event.is_good_news() {
                        ("default", "white_check_mark")
                    } else {
                        ("high", "warning")
                    };
                    http.post(url)
                        .header("Title", header_text(&event.title()))
                        .header("Priority", priority)
                        .header("Tags", tags)
                        .body(event.message.clone())
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_line_and_headers_ascii() {
        let at = chrono::DateTime::UNIX_EPOCH;
        let event = AlertEvent::question(
            "question-alerts",
            3,
            "top",
            "Neu in den\nTop 10 ✓",
            "2 rows",
            at,
        );
        assert_eq!(event.title(), "Neu in den Top 10 ✓");
        let header = header_text(&event.title());
        assert!(
            header.starts_with("=?UTF-8?B?") && header.is_ascii(),
            "{header}"
        );
        assert_eq!(header_text("plain title"), "plain title");
        assert_eq!(event.chat_text("**"), "**Neu in den Top 10 ✓**\n2 rows");
        let long = AlertEvent::question("f", 1, "q", "t", &"x".repeat(5000), at);
        assert_eq!(long.chat_text("*").chars().count(), MAX_MESSAGE_CHARS);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["state"], "Alert");
        assert_eq!(json["question"], "top");
    }
}
