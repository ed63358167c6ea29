//! The admin's page over every listener (`/admin/listeners`): each one's sources (plays,
//! Spotify, scrobble tokens, imports), who sees their pages, their own login, and adding,
//! renaming, merging two names of one person and removing — merge and remove with a typed
//! confirmation and a backup of the warehouse first ([`magpie_music::listeners`]).
//!
//! Every route here sits behind the admin layer (the admin's session and its CSRF token).
//! Changes are made on the live warehouse; the pages follow at once ([`App::listener_changed`])
//! and the marts at the next build.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use magpie_core::household::{self, Household};
use magpie_music::listeners::ListenerInfo;
use serde::{Deserialize, Serialize};

use super::me::{Choice, choices, known};
use crate::auth::Session;
use crate::pages::Frame;
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Row {
    info: ListenerInfo,
    visibility: &'static str,
    login: bool,
    /// Shown on the pages now (it has plays in the published marts, or is the default).
    shown: bool,
}

#[derive(Debug, Serialize)]
struct ListenersPage {
    listeners: Vec<Row>,
    choices: Vec<Choice>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
    min_length: usize,
}

/// The page.
pub async fn page(State(app): State<App>, Extension(session): Extension<Session>) -> Response {
    page_with(&app, session, None, StatusCode::OK).await
}

/// The page with a message (after a change) and the status to answer with.
pub(crate) async fn page_with(
    app: &App,
    session: Session,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let (message, error) = if status.is_success() {
        (message, None)
    } else {
        (None, message)
    };
    let household = match Household::load(app.data_dir()) {
        Ok(h) => h,
        Err(e) => return WebError::Internal(e.to_string()).into_response(),
    };
    let infos = match app.live().listeners(app.listener_admin()).await {
        Ok(infos) => infos,
        Err(e) => return e.into_response(),
    };
    let (shown, _) = app.listeners();
    let data = ListenersPage {
        listeners: infos
            .into_iter()
            .map(|info| Row {
                visibility: household.visibility(&info.name).as_str(),
                login: household.has_login(&info.name),
                shown: shown.iter().any(|l| l.name == info.name),
                info,
            })
            .collect(),
        choices: choices(),
        csrf: session.csrf,
        message,
        error,
        min_length: magpie_core::secrets::MIN_PASSWORD_LEN,
    };
    crate::admin::page(
        app,
        status,
        &Frame::plain(app, "Listeners", "admin", "/admin/listeners"),
        &data,
        "admin_listeners.html",
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    listener: String,
    /// Empty: take the login away.
    #[serde(default)]
    password: String,
}

/// Give a listener a login of their own (or a new password), or take it away; their open
/// sessions end either way.
pub async fn set_login(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<LoginForm>,
) -> Response {
    let name = form.listener.trim().to_string();
    if !known(&app, &name) {
        let message = Some(format!("There is no listener `{name}` on the pages."));
        return page_with(&app, session, message, StatusCode::BAD_REQUEST).await;
    }
    let dir = app.data_dir().to_path_buf();
    let (who, password) = (name.clone(), form.password);
    let taking_away = password.is_empty();
    let done = crate::auth::login::hashing(&app, move || {
        if taking_away {
            household::remove_login(&dir, &who)
        } else {
            household::set_password(&dir, &who, &password)
        }
    })
    .await;
    let (status, message) = match done {
        Ok(Ok(())) => {
            app.auth().sessions.close_listener(&name);
            tracing::info!(listener = %name, removed = taking_away, "a listener's login changed");
            let message = if taking_away {
                format!("{name} can no longer log in.")
            } else {
                format!("{name} can log in with their name and the new password.")
            };
            (StatusCode::OK, message)
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return e.into_response(),
    };
    page_with(&app, session, Some(message), status).await
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    /// add | rename | merge | remove
    action: String,
    /// The listener changed (the new one's name for `add`).
    listener: String,
    /// rename: the new name; merge: the listener that stays.
    #[serde(default)]
    to: String,
    /// merge and remove: the listener's name typed again.
    #[serde(default)]
    confirm: String,
}

/// Add, rename, merge or remove a listener.
pub async fn change(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let listener = form.listener.trim().to_string();
    let to = form.to.trim().to_string();
    let admin = app.listener_admin();
    let live = app.live();
    if matches!(form.action.as_str(), "merge" | "remove") && form.confirm.trim() != listener {
        let message = Some(format!(
            "To {} {listener}, type its name in the confirmation box.",
            form.action
        ));
        return page_with(&app, session, message, StatusCode::BAD_REQUEST).await;
    }
    let outcome: Result<Result<String, _>, WebError> = match form.action.as_str() {
        "add" => {
            let name = listener.clone();
            let a = admin.clone();
            live.write(move |conn| a.add(conn, &name)).await.map(|r| {
                r.map(|_| {
                    format!(
                        "Added {listener}: their pages appear after their first plays are built."
                    )
                })
            })
        }
        "rename" => {
            let (old, new) = (listener.clone(), to.clone());
            let done = live
                .write({
                    let a = admin.clone();
                    move |conn| a.rename(conn, &old, &new)
                })
                .await;
            done.map(|r| {
                r.map(|renamed| {
                    if let Some(id) = renamed.id {
                        app.listener_changed(id, Some(&renamed.new));
                    }
                    app.auth().sessions.close_listener(&renamed.old);
                    let mut message = format!("Renamed {} to {}.", renamed.old, renamed.new);
                    if renamed.was_default {
                        message.push_str(
                            " It was the configured default_listener: change it in the configuration too.",
                        );
                    }
                    with_notes(message, &renamed.notes)
                })
            })
        }
        "merge" => {
            let (from, into) = (listener.clone(), to.clone());
            let from_id = app
                .listeners()
                .0
                .into_iter()
                .find(|l| l.name == from)
                .map(|l| l.id);
            let done = live
                .write({
                    let a = admin.clone();
                    move |conn| a.merge(conn, &from, &into, false)
                })
                .await;
            done.map(|r| {
                r.map(|merged| {
                    if let Some(id) = from_id {
                        app.listener_changed(id, None);
                    }
                    app.auth().sessions.close_listener(&merged.from);
                    let message = format!(
                        "Merged {} into {}: {} plays moved, {} already there, {} recorded by another \
                         source too. The backup taken first: {}. The pages add the moved plays at the next build.",
                        merged.from,
                        merged.into,
                        merged.events_moved,
                        merged.exact_duplicates,
                        merged.cross_source_duplicates,
                        merged.backup.display()
                    );
                    with_notes(message, &merged.notes)
                })
            })
        }
        "remove" => {
            let name = listener.clone();
            let id = app
                .listeners()
                .0
                .into_iter()
                .find(|l| l.name == name)
                .map(|l| l.id);
            let done = live
                .write({
                    let a = admin.clone();
                    move |conn| a.remove(conn, &name, false)
                })
                .await;
            done.map(|r| {
                r.map(|removed| {
                    if let Some(id) = id {
                        app.listener_changed(id, None);
                    }
                    app.auth().sessions.close_listener(&removed.name);
                    let message = format!(
                        "Removed {} and their {} events. The backup taken first: {}.",
                        removed.name,
                        removed.events_deleted,
                        removed.backup.display()
                    );
                    with_notes(message, &removed.notes)
                })
            })
        }
        other => Err(WebError::BadRequest(format!(
            "`{other}` is not one of add, rename, merge, remove"
        ))),
    };
    match outcome {
        Ok(Ok(message)) => {
            tracing::info!(action = %form.action, listener = %listener, "listener administration");
            page_with(&app, session, Some(message), StatusCode::OK).await
        }
        Ok(Err(refused)) => {
            page_with(
                &app,
                session,
                Some(refused.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

fn with_notes(mut message: String, notes: &[String]) -> String {
    for note in notes {
        message.push_str(" Note: ");
        message.push_str(note);
        message.push('.');
    }
    message
}
