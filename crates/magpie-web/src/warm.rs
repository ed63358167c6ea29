//! Warming the result cache after a build: each new snapshot clears the cache, so the main
//! pages' default views are requested once in the background, through the router as a visitor
//! on this machine would, and the first visitor after a poll finds them computed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use tokio::sync::Notify;
use tower::ServiceExt;

/// The pages warmed, in their default range, most visited first.
pub const PAGES: [&str; 8] = [
    "/",
    "/top/artists",
    "/top/tracks",
    "/top/albums",
    "/timeline",
    "/patterns",
    "/genres",
    "/map",
];

/// Wait for each signal (a snapshot was published) and request [`PAGES`] once, one at a time,
/// so visitors arriving meanwhile share the computations instead of waiting behind a burst.
pub async fn run(router: Router, published: Arc<Notify>) {
    let from: SocketAddr = ([127, 0, 0, 1], 0).into();
    loop {
        published.notified().await;
        let started = Instant::now();
        let mut warmed = 0;
        for page in PAGES {
            let Ok(mut request) = Request::get(page)
                .header(header::HOST, "127.0.0.1")
                .body(Body::empty())
            else {
                continue;
            };
            request.extensions_mut().insert(ConnectInfo(from));
            match router.clone().oneshot(request).await {
                Ok(response) if response.status().is_success() => warmed += 1,
                Ok(response) => {
                    tracing::debug!(page, status = response.status().as_u16(), "not warmed")
                }
                Err(e) => match e {},
            }
        }
        let took = started.elapsed();
        metrics::histogram!("magpie_cache_warm_seconds").record(took.as_secs_f64());
        tracing::debug!(pages = warmed, ms = took.as_millis() as u64, "cache warmed");
    }
}
