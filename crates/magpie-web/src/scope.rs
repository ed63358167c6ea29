//! Whose listening a page shows: one listener (`?listener=alice`; without it, the viewer's own
//! or the configured default) or everyone the viewer may see (`?listener=everyone`).
//!
//! The scope is decided once per request by a router layer ([`crate::auth::guard::listener_scope`])
//! from the session's [`Viewer`] and each listener's [`Visibility`](magpie_core::household::Visibility),
//! and handed to the page through the [`Scoped`] extractor: pages never pick a listener
//! themselves, and a listener the viewer may not see is answered like one that does not exist.
//! Queries narrow by [`Scope::filter`] with the one parameter [`Scope::param`], and cache under
//! [`Scope::key`], so two listeners' results never share a cache entry.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use duckdb::types::{ToSql, ToSqlOutput, Value};
use magpie_core::household::Viewer;
use serde::Serialize;

use crate::App;

/// The query parameter naming the listener.
pub const PARAM: &str = "listener";
/// Its value for everyone the viewer may see.
pub const EVERYONE: &str = "everyone";

/// A listener of the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub id: i32,
    pub name: String,
}

/// Whose listening one request's page shows.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The listeners the page adds up: one, or for the everyone view each the viewer may see.
    pub listeners: Vec<Listener>,
    /// The everyone view.
    pub everyone: bool,
    /// Whether the request named the listener (links then keep naming it).
    pub named: bool,
    /// Every listener the viewer may see, for the switcher.
    pub choices: Vec<Listener>,
    /// Who is asking.
    pub viewer: Viewer,
}

impl Scope {
    /// One listener, as the default scope of requests outside the layer (the cache warmer's,
    /// tests').
    pub fn single(listener: Listener, viewer: Viewer) -> Self {
        Self {
            choices: vec![listener.clone()],
            listeners: vec![listener],
            everyone: false,
            named: false,
            viewer,
        }
    }

    /// Listeners already checked against the viewer (the ones a comparison adds up), for their
    /// [`Scope::filter`], [`Scope::param`] and [`Scope::key`].
    pub fn group(listeners: Vec<Listener>) -> Self {
        Self {
            choices: listeners.clone(),
            listeners,
            everyone: true,
            named: true,
            viewer: Viewer::Anonymous,
        }
    }

    /// The page's title for whose it is: the listener's name, or `everyone`.
    pub fn name(&self) -> String {
        match (&self.listeners[..], self.everyone) {
            ([one], false) => one.name.clone(),
            _ => EVERYONE.to_string(),
        }
    }

    /// The listener of a single-listener scope.
    pub fn one(&self) -> Option<&Listener> {
        match (&self.listeners[..], self.everyone) {
            ([one], false) => Some(one),
            _ => None,
        }
    }

    /// The SQL condition narrowing `column` (a listener id) to this scope, with one `?` for
    /// [`Scope::param`].
    pub fn filter(&self, column: &str) -> String {
        if self.one().is_some() {
            format!("{column} = ?")
        } else {
            format!("{column} IN (SELECT CAST(unnest(string_split(?, ',')) AS INTEGER))")
        }
    }

    /// The value bound to [`Scope::filter`]'s placeholder.
    pub fn param(&self) -> ListenerParam {
        match self.one() {
            Some(one) => ListenerParam::One(one.id),
            None => ListenerParam::Many(
                self.listeners
                    .iter()
                    .map(|l| l.id.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// This scope in cache keys: the listener's id, or `all:` and the ids added up.
    pub fn key(&self) -> String {
        match self.param() {
            ListenerParam::One(id) => id.to_string(),
            ListenerParam::Many(ids) => format!("all:{ids}"),
        }
    }

    /// `listener=…` for links that keep this scope (empty when the request did not name one).
    pub fn query_string(&self) -> String {
        if !self.named {
            return String::new();
        }
        let name: String = url::form_urlencoded::byte_serialize(self.name().as_bytes()).collect();
        format!("{PARAM}={name}")
    }
}

impl Scope {
    /// [`Scope::link_suffix`] for links to pages about one artist, album or track, which have
    /// no everyone view: empty from the everyone view.
    pub fn detail_suffix(&self) -> String {
        if self.one().is_some() {
            self.link_suffix()
        } else {
            String::new()
        }
    }

    /// `&listener=…` to append to a link's query string (empty for the default listener).
    pub fn link_suffix(&self) -> String {
        match self.query_string() {
            qs if qs.is_empty() => qs,
            qs => format!("&{qs}"),
        }
    }
}

/// The listener condition's parameter: an id, or ids joined by commas.
#[derive(Debug, Clone)]
pub enum ListenerParam {
    One(i32),
    Many(String),
}

impl ToSql for ListenerParam {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match self {
            ListenerParam::One(id) => Value::Int(*id),
            ListenerParam::Many(ids) => Value::Text(ids.clone()),
        }))
    }
}

/// The app as one request's page sees it: with the request's [`Scope`] (from the layer), so
/// the shared queries read whose listening this page is about.
pub struct Scoped(pub App);

impl FromRequestParts<App> for Scoped {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Self::Rejection> {
        let State(app) = State::<App>::from_request_parts(parts, state).await?;
        Ok(Scoped(match parts.extensions.get::<Arc<Scope>>() {
            Some(scope) => app.scoped(Arc::clone(scope)),
            None => app,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(id: i32, name: &str) -> Listener {
        Listener {
            id,
            name: name.into(),
        }
    }

    #[test]
    fn one_listener_is_an_equality_everyone_a_list() {
        let mut scope = Scope::single(listener(3, "alice b"), Viewer::Anonymous);
        assert_eq!(scope.filter("listener_id"), "listener_id = ?");
        assert!(matches!(scope.param(), ListenerParam::One(3)));
        assert_eq!((scope.key(), scope.name()), ("3".into(), "alice b".into()));
        assert_eq!(
            scope.query_string(),
            "",
            "the default listener is not named"
        );
        scope.named = true;
        assert_eq!(scope.query_string(), "listener=alice+b");
        scope.listeners.push(listener(5, "bob"));
        scope.everyone = true;
        assert!(scope.filter("listener_id").contains("string_split"));
        assert!(matches!(scope.param(), ListenerParam::Many(ref ids) if ids == "3,5"));
        assert_eq!(scope.key(), "all:3,5");
        assert_eq!(scope.query_string(), "listener=everyone");
    }

    #[test]
    fn the_parameter_narrows_a_real_query() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE p AS SELECT * FROM (VALUES (1, 10), (2, 20), (3, 30)) t(listener_id, n)",
        )
        .unwrap();
        let mut scope = Scope::single(listener(2, "b"), Viewer::Admin);
        let sum = |scope: &Scope| -> i64 {
            conn.query_row(
                &format!(
                    "SELECT coalesce(sum(n), 0)::BIGINT FROM p WHERE {}",
                    scope.filter("listener_id")
                ),
                [scope.param()],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(sum(&scope), 20);
        scope.listeners = vec![listener(1, "a"), listener(3, "c")];
        scope.everyone = true;
        assert_eq!(sum(&scope), 40);
    }
}
