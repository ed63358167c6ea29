//! Response headers every page carries, and the request limits that keep a slow or flooding
//! client from taking the box down.
//!
//! - A Content-Security-Policy that allows only magpie's own scripts, styles and images (no
//!   inline script or style anywhere in the templates), no plugins, no framing; a handler that
//!   serves a page meant to be embedded sets its own `frame-ancestors` and the layer keeps it.
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`, `X-Frame-Options`,
//!   `Cross-Origin-Opener-Policy`, a `Permissions-Policy` that turns off what magpie never
//!   uses, and `Strict-Transport-Security` when `server.public_url` is https.
//! - At most `server.max_concurrent_requests` requests at once; beyond it a request waits
//!   briefly, then gets 503 with `Retry-After` (health checks are exempt).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::{App, WebError};

/// The policy of every page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Headers set on every response that does not set them itself.
pub fn headers(https: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
            ),
        ),
    ];
    if https {
        out.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    out
}

/// How long a request waits for one of the `max_concurrent_requests` slots.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The slots of `server.max_concurrent_requests`.
#[derive(Clone)]
pub struct RequestSlots(Arc<Semaphore>);

impl RequestSlots {
    pub fn new(n: usize) -> Self {
        Self(Arc::new(Semaphore::new(n.max(1))))
    }
}

/// Hold one slot for the request; health checks pass without one.
pub async fn limit_concurrency(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/health") {
        return next.run(request).await;
    }
    let slots = Arc::clone(&app.request_slots().0);
    match tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await {
        Ok(Ok(_slot)) => next.run(request).await,
        _ => {
            metrics::counter!("magpie_http_shed_total").increment(1);
            WebError::Busy(
                "magpie is handling as many requests as it may: try again in a moment".into(),
            )
            .into_response()
        }
    }
}
