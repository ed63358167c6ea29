//! First-run setup: while no admin password is set, setting one from the web needs a
//! one-time code that magpie prints to its log and stderr at start (as Jupyter does with its
//! token), so neither someone else on the LAN nor a web page the owner visits can claim a
//! fresh install. The code lives in memory only, changes at every start and is gone once a
//! password is set.

use std::path::Path;
use std::sync::Mutex;

use super::sessions::same_secret;

/// Letters and digits that cannot be mistaken for one another.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The one-time setup code, while no admin password is set.
#[derive(Default)]
pub struct SetupCode {
    code: Mutex<Option<String>>,
}

impl SetupCode {
    /// A fresh code if `data_dir` has no admin password yet.
    pub fn new(data_dir: &Path) -> Self {
        let code = (!magpie_core::secrets::admin_password_set(data_dir)).then(generate);
        Self {
            code: Mutex::new(code),
        }
    }

    /// The code to print (none once a password is set).
    pub fn code(&self) -> Option<String> {
        self.code.lock().ok()?.clone()
    }

    /// Whether `given` is the code (spaces, dashes and case ignored).
    pub fn matches(&self, given: &str) -> bool {
        let given: String = given
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let Ok(code) = self.code.lock() else {
            return false;
        };
        code.as_deref()
            .is_some_and(|c| same_secret(&c.replace('-', ""), &given))
    }

    /// The password is set: the code is spent.
    pub fn spend(&self) {
        if let Ok(mut code) = self.code.lock() {
            *code = None;
        }
    }
}

/// Three groups of four characters from [`ALPHABET`] (60 bits).
fn generate() -> String {
    let bytes: [u8; 12] = rand::random();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_exists_until_a_password_is_set_and_matches_loosely() {
        let dir = tempfile::tempdir().unwrap();
        let setup = SetupCode::new(dir.path());
        let code = setup.code().expect("no password yet");
        assert_eq!(code.len(), 14);
        assert!(setup.matches(&code));
        assert!(setup.matches(&code.to_lowercase().replace('-', " ")));
        assert!(!setup.matches("AAAA-AAAA-AAAA"));
        assert!(!setup.matches(""));
        setup.spend();
        assert!(setup.code().is_none());
        assert!(!setup.matches(&code));
        magpie_core::secrets::set_admin_password(dir.path(), "a long enough secret").unwrap();
        assert!(SetupCode::new(dir.path()).code().is_none());
    }
}
