//! Logged-in sessions: an unguessable id in an HttpOnly, SameSite=Strict cookie (`Secure` when
//! magpie is reached over https), each with its own CSRF token and whose it is (the admin, or a
//! listener with a login of their own). Kept in memory: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use magpie_core::household::Viewer;

/// The session cookie's name.
pub const COOKIE: &str = "magpie_session";
/// How long a session lasts after its login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; logging in beyond it ends the oldest.
const MAX_SESSIONS: usize = 64;

/// A live session, as handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token every state-changing request of this session carries (form field `csrf` or
    /// header `X-CSRF-Token`).
    pub csrf: String,
    /// Whose session: [`Viewer::Admin`] or [`Viewer::Listener`].
    pub viewer: Viewer,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.viewer == Viewer::Admin
    }
}

struct Entry {
    opened: Instant,
    csrf: String,
    viewer: Viewer,
}

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub(crate) fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Open a session for `viewer`; its id.
    pub fn open(&self, viewer: Viewer) -> String {
        let id = token();
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, e| e.opened.elapsed() < SESSION_TTL);
            if live.len() >= MAX_SESSIONS
                && let Some(oldest) = live
                    .iter()
                    .min_by_key(|(_, e)| e.opened)
                    .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
            live.insert(
                id.clone(),
                Entry {
                    opened: Instant::now(),
                    csrf: token(),
                    viewer,
                },
            );
        }
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let live = self.live.lock().ok()?;
        live.get(id)
            .filter(|e| e.opened.elapsed() < SESSION_TTL)
            .map(|e| Session {
                csrf: e.csrf.clone(),
                viewer: e.viewer.clone(),
            })
    }

    /// The live session the request's cookie names.
    pub fn from_jar(&self, jar: &CookieJar) -> Option<Session> {
        jar.get(COOKIE).and_then(|c| self.get(c.value()))
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
    }

    /// Every session of `listener` ended (their login was taken away or changed).
    pub fn close_listener(&self, listener: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, e| e.viewer != Viewer::Listener(listener.to_string()));
        }
    }

    /// Everyone logged out (the admin password changed).
    pub fn close_all(&self) {
        if let Ok(mut live) = self.live.lock() {
            live.clear();
        }
    }
}

/// The session cookie for `id`.
pub fn cookie(id: String, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .build()
}

/// The cookie that removes the session cookie.
pub fn removal() -> Cookie<'static> {
    Cookie::build(COOKIE).path("/").build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_their_own_csrf_tokens_and_end() {
        let sessions = Sessions::default();
        let a = sessions.open(Viewer::Admin);
        let b = sessions.open(Viewer::Listener("alice".into()));
        let (sa, sb) = (sessions.get(&a).unwrap(), sessions.get(&b).unwrap());
        assert_ne!(sa.csrf, sb.csrf);
        assert_eq!(sa.csrf.len(), 64);
        sessions.close(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get(&b).is_some());
        assert!(sb.viewer == Viewer::Listener("alice".into()) && !sb.is_admin() && sa.is_admin());
        assert!(sessions.get("forged").is_none());
        sessions.close_listener("bob");
        assert!(sessions.get(&b).is_some());
        sessions.close_all();
        assert!(sessions.get(&b).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
