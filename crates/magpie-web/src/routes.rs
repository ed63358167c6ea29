//! Every route, with the side of the trust boundary it sits on ([`Access`]). The router is
//! built from this one table, so a route cannot exist without a class, and the probe test
//! walks the same table ([`table`]).
//!
//! - **Public**: liveness and readiness, assets, the login and first-run forms, Spotify's
//!   redirect (bound to an attempt by its unguessable `state`), and public share links (an
//!   unguessable token, showing only what it was made for).
//! - **Metrics**: `/metrics`, open, for the admin session or for a bearer token, per
//!   `server.metrics`.
//! - **Pages**: read-only operational pages (flows, runs, status, market); they need a session
//!   only with `server.require_login`.
//! - **Listening**: one listener's pages over the published snapshot, or everyone's: as Pages,
//!   and the listener must be one the viewer may see, decided once by [`guard::listener_scope`]
//!   from the session and each listener's visibility ([`crate::scope`]).
//! - **Household**: pages over every listener's data at once (saved questions and dashboards,
//!   which run any SQL; the enrichment queue), only for viewers who may see every listener.
//! - **Member**: a listener's own settings (who sees their pages), behind a layer that requires
//!   any session (the admin's or a listener's) and its CSRF token.
//! - **Admin**: admin pages and every state-changing request, behind one layer that requires
//!   the admin's session and its CSRF token.
//! - **Api**: the ListenBrainz (`/1/`) and Last.fm (`/2.0/`) submission APIs. Their callers
//!   are players, not browsers: no cookie is read, so there is nothing for another site to
//!   forge, and each call carries its credential (a token, or a session key with a signature),
//!   checked in one place per protocol ([`crate::scrobble`]). Their bodies may be as large as
//!   ListenBrainz allows (a thousand listens).
//!
//! Around all of them: a foreign-origin POST to the site is refused, security headers are set,
//! bodies, time and concurrency are limited, and every request is counted.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, get, post};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{guard, login};
use crate::{App, admin, explore, pages, public, render, scrobble, security};

/// Which side of the trust boundary a route is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, assets, login, first run, Spotify's redirect.
    Public,
    /// `/metrics`: per `server.metrics`.
    Metrics,
    /// Read-only operational pages (flows, runs, status, market): anyone on the network, or
    /// anyone logged in with `server.require_login`.
    Pages,
    /// One listener's (or everyone's) listening: as [`Access::Pages`], and the listener must be
    /// one the viewer may see ([`guard::listener_scope`]).
    Listening,
    /// Pages over every listener's data at once (saved questions, dashboards, enrichment):
    /// only for a viewer who may see every listener ([`guard::whole_household`]).
    Household,
    /// A listener's own settings: any session, its CSRF token for anything but GET.
    Member,
    /// The admin session, and its CSRF token for anything but GET.
    Admin,
    /// A submission API: token or signed session key, no cookies.
    Api,
}

/// A route: its class, method and path.
pub struct Route {
    pub access: Access,
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<App>,
}

fn route(access: Access, method: Method, path: &'static str, handler: MethodRouter<App>) -> Route {
    Route {
        access,
        method,
        path,
        handler,
    }
}

/// Every route magpie serves.
pub fn table() -> Vec<Route> {
    use Access::{Admin, Api, Household, Listening, Member, Metrics, Pages, Public};
    let (g, p) = (Method::GET, Method::POST);
    vec![
        route(Public, g.clone(), "/health", get(pages::health::live)),
        route(
            Public,
            g.clone(),
            "/health/ready",
            get(pages::health::ready),
        ),
        route(Public, g.clone(), "/assets/{file}", get(render::asset)),
        route(Public, g.clone(), "/login", get(login::login_form)),
        route(Public, p.clone(), "/login", post(login::login)),
        route(Public, p.clone(), "/setup", post(login::setup)),
        route(Public, g.clone(), "/callback", get(admin::callback)),
        route(Public, g.clone(), "/public/{token}", get(public::show)),
        route(Metrics, g.clone(), "/metrics", get(pages::health::metrics)),
        route(Listening, g.clone(), "/", get(pages::overview::page)),
        route(Listening, g.clone(), "/top/{kind}", get(pages::top::page)),
        route(
            Listening,
            g.clone(),
            "/timeline",
            get(pages::timeline::page),
        ),
        route(
            Listening,
            g.clone(),
            "/patterns",
            get(pages::patterns::page),
        ),
        route(Listening, g.clone(), "/genres", get(pages::genres::page)),
        route(Listening, g.clone(), "/map", get(pages::map::page)),
        route(
            Listening,
            g.clone(),
            "/artist/{id}",
            get(pages::detail::artist),
        ),
        route(
            Listening,
            g.clone(),
            "/album/{id}",
            get(pages::detail::album),
        ),
        route(
            Listening,
            g.clone(),
            "/track/{id}",
            get(pages::detail::track),
        ),
        route(
            Listening,
            g.clone(),
            "/discoveries",
            get(pages::discoveries::page),
        ),
        route(Listening, g.clone(), "/streaks", get(pages::streaks::page)),
        route(Listening, g.clone(), "/compare", get(pages::compare::page)),
        route(Listening, g.clone(), "/year/{year}", get(pages::year::page)),
        route(Listening, g.clone(), "/year", get(pages::year::latest)),
        route(
            Listening,
            g.clone(),
            "/completeness",
            get(pages::completeness::page),
        ),
        route(
            Household,
            g.clone(),
            "/enrichment",
            get(pages::enrichment::page),
        ),
        route(Pages, g.clone(), "/flows", get(pages::flows::page)),
        route(Pages, g.clone(), "/runs/{id}", get(pages::flows::run)),
        route(Pages, g.clone(), "/status", get(pages::status::page)),
        route(Pages, g.clone(), "/market", get(pages::market::page)),
        route(
            Pages,
            g.clone(),
            "/api/market/status",
            get(pages::market::api_status),
        ),
        route(
            Household,
            g.clone(),
            "/questions",
            get(pages::questions::list),
        ),
        route(
            Household,
            g.clone(),
            "/q/{slug}",
            get(pages::questions::show),
        ),
        route(
            Household,
            g.clone(),
            "/dashboards",
            get(pages::dashboards::list),
        ),
        route(
            Household,
            g.clone(),
            "/d/{slug}",
            get(pages::dashboards::show),
        ),
        route(Member, g.clone(), "/me", get(pages::me::page)),
        route(
            Member,
            p.clone(),
            "/me/visibility",
            post(pages::me::visibility),
        ),
        route(Member, p.clone(), "/me/filters", post(pages::me::filter)),
        route(
            Admin,
            g.clone(),
            "/admin/listeners",
            get(pages::listeners::page),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/listeners/login",
            post(pages::listeners::set_login),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/listeners",
            post(pages::listeners::change),
        ),
        route(Admin, g.clone(), "/admin/spotify", get(admin::spotify)),
        route(
            Admin,
            p.clone(),
            "/admin/spotify/start",
            post(admin::spotify_start),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/spotify/finish",
            post(admin::spotify_finish),
        ),
        route(Admin, p.clone(), "/logout", post(login::logout)),
        route(
            Admin,
            p.clone(),
            "/flows/{flow}/{action}",
            post(pages::flows::act),
        ),
        route(
            Admin,
            p.clone(),
            "/runs/{id}/cancel",
            post(pages::flows::cancel),
        ),
        route(Admin, g.clone(), "/explore", get(explore::page::page)),
        route(Admin, g.clone(), "/api/schema", get(explore::api::schema)),
        route(Admin, p.clone(), "/api/sql", post(explore::api::sql)),
        route(
            Admin,
            p.clone(),
            "/api/sql/cancel",
            post(explore::api::cancel),
        ),
        route(
            Admin,
            p.clone(),
            "/api/sql/download",
            post(explore::api::download),
        ),
        route(Admin, p.clone(), "/api/chart", post(explore::api::chart)),
        route(
            Admin,
            p.clone(),
            "/api/questions",
            post(explore::api::save_question),
        ),
        route(
            Admin,
            p.clone(),
            "/api/dashboards/{slug}/cards",
            post(explore::api::add_card),
        ),
        route(Admin, g.clone(), "/admin/shares", get(pages::shares::list)),
        route(
            Admin,
            p.clone(),
            "/admin/shares",
            post(pages::shares::create),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/shares/{id}/revoke",
            post(pages::shares::revoke),
        ),
        route(
            Admin,
            g.clone(),
            "/admin/scrobbling",
            get(pages::scrobbling::list),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/scrobbling",
            post(pages::scrobbling::create),
        ),
        route(
            Admin,
            p.clone(),
            "/admin/scrobbling/{id}/revoke",
            post(pages::scrobbling::revoke),
        ),
        route(
            Admin,
            g.clone(),
            "/api/auth/",
            get(pages::scrobbling::authorize),
        ),
        route(
            Admin,
            g.clone(),
            "/api/auth",
            get(pages::scrobbling::authorize),
        ),
        route(
            Admin,
            p.clone(),
            "/api/auth/",
            post(pages::scrobbling::approve),
        ),
        route(
            Api,
            p.clone(),
            "/1/submit-listens",
            post(scrobble::listenbrainz::submit),
        ),
        route(
            Api,
            g.clone(),
            "/1/validate-token",
            get(scrobble::listenbrainz::validate_token),
        ),
        route(
            Api,
            g.clone(),
            "/1/user/{name}/playing-now",
            get(scrobble::listenbrainz::playing_now),
        ),
        route(
            Api,
            g.clone(),
            "/1/user/{name}/listens",
            get(scrobble::listenbrainz::listens),
        ),
        route(
            Api,
            g.clone(),
            "/2.0/",
            get(scrobble::lastfm::endpoint).post(scrobble::lastfm::endpoint),
        ),
        route(
            Api,
            p,
            "/2.0",
            get(scrobble::lastfm::endpoint).post(scrobble::lastfm::endpoint),
        ),
    ]
}

/// The router: the table's routes under their class's layer, then the layers every request
/// goes through.
pub fn router(app: App) -> Router {
    let (mut public, mut metrics) = (Router::new(), Router::new());
    let (mut pages, mut admin, mut api) = (Router::new(), Router::new(), Router::new());
    let (mut listening, mut household, mut member) = (Router::new(), Router::new(), Router::new());
    for r in table() {
        match r.access {
            Access::Public => public = public.route(r.path, r.handler),
            Access::Metrics => metrics = metrics.route(r.path, r.handler),
            Access::Pages => pages = pages.route(r.path, r.handler),
            Access::Listening => listening = listening.route(r.path, r.handler),
            Access::Household => household = household.route(r.path, r.handler),
            Access::Member => member = member.route(r.path, r.handler),
            Access::Admin => admin = admin.route(r.path, r.handler),
            Access::Api => api = api.route(r.path, r.handler),
        }
    }
    let metrics = metrics.route_layer(from_fn_with_state(app.clone(), guard::metrics_access));
    let pages = pages.route_layer(from_fn_with_state(app.clone(), guard::require_login_if_set));
    let listening = listening.route_layer(from_fn_with_state(app.clone(), guard::listener_scope));
    let household = household.route_layer(from_fn_with_state(app.clone(), guard::whole_household));
    let member = member.route_layer(from_fn_with_state(app.clone(), guard::require_member));
    let admin = admin.route_layer(from_fn_with_state(app.clone(), guard::require_session));
    let limits = app.limits().clone();
    let site = Router::new()
        .merge(public)
        .merge(metrics)
        .merge(pages)
        .merge(listening)
        .merge(household)
        .merge(member)
        .merge(admin)
        .layer(from_fn_with_state(app.clone(), guard::same_origin))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body,
        ));
    let api_body = limits
        .max_body
        .max(magpie_music::submit::listenbrainz::MAX_PAYLOAD_SIZE);
    let api = api
        .layer(DefaultBodyLimit::max(api_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(api_body))
        .layer(from_fn(scrobble::protocol_errors));
    let mut router = Router::new()
        .merge(site)
        .merge(api)
        .fallback(pages::not_found)
        .route_layer(from_fn(count_request))
        .layer(from_fn_with_state(app.clone(), login::with_client_ip))
        .layer(from_fn_with_state(app.clone(), security::limit_concurrency))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ));
    for (name, value) in security::headers(app.auth().https) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// Count every request by route and status, and time it (`magpie_http_requests_total`,
/// `magpie_http_request_duration_seconds`).
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::counter!(
        "magpie_http_requests_total",
        "route" => route.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("magpie_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
