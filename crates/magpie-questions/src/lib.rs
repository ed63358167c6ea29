//! Questions, dashboards and share links, kept as plain files a user can read, edit by hand and
//! keep in git: what Metabase kept in its own database.
//!
//! - [`variables`]: `{{name}}` in SQL, typed, and optional clauses `[[ AND x = {{name}} ]]`
//!   dropped when their variable is empty. Values are bound as DuckDB parameters, never spliced
//!   into the SQL text.
//! - [`question`]: a saved question: a `.sql` file in `DATA_DIR/questions/` whose leading
//!   `-- ` comment lines are a YAML header (title, description, variables, chart, alert).
//! - [`dashboard`]: a dashboard: `DATA_DIR/dashboards/<slug>.yml` with filters and cards (a
//!   saved question, inline SQL, or Markdown text), laid out on a 12-column grid.
//! - [`library`]: every question and dashboard on disk (and the built-in examples), read
//!   afresh when asked, with broken files reported by name and line while the others work.
//! - [`share`]: public links: random 128-bit tokens, stored hashed, each for one dashboard or
//!   question with some variables locked.
//! - [`alert`]: a question's schedule and condition, checked against its result.
//! - [`chart`]: how a result is drawn (the chart kinds the dashboards use).
//!
//! ```
//! use magpie_questions::variables::{Template, Values};
//! let t = Template::parse("SELECT * FROM dim_artist WHERE true [[AND artist_name = {{artist}}]]").unwrap();
//! let bound = t.bind(&Default::default(), &Values::default()).unwrap();
//! assert_eq!(bound.sql.trim_end(), "SELECT * FROM dim_artist WHERE true");
//! assert!(bound.params.is_empty());
//! ```

pub mod alert;
pub mod chart;
pub mod dashboard;
pub mod library;
pub mod question;
pub mod share;
pub mod variables;

pub use dashboard::{Card, CardBody, Dashboard, Filter};
pub use library::{Broken, Library};
pub use question::Question;
pub use share::{Share, ShareStore, ShareTarget};
pub use variables::{Param, Template, Values, VarDecl, VarType};

/// A problem with a file, named by path and line (1-based; 0 when the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{path}:{line}: {message}")]
pub struct FileError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

impl FileError {
    /// The error with its line at most `text`'s last (one more than its line breaks: `\n`,
    /// `\r\n` or a lone `\r`, as YAML counts them). YAML, and a header with no SQL after it,
    /// point at the line after a text that does not end with a line break.
    pub(crate) fn within(mut self, text: &str) -> FileError {
        let last = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1;
        self.line = self.line.min(last);
        self
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum QuestionsError {
    /// A variable's value does not fit its type, or a required one is missing.
    #[error("variable `{name}`: {message}")]
    Variable { name: String, message: String },
    /// The SQL's `{{ }}` or `[[ ]]` are malformed.
    #[error("{0}")]
    Template(String),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("no {kind} named `{slug}`")]
    NotFound { kind: &'static str, slug: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] magpie_core::secrets::SecretsError),
    #[error("{0}")]
    Invalid(String),
}

/// A slug: 1-64 lowercase letters, digits, `-` or `_`, starting with a letter or digit (file
/// names and URL parts).
pub fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug.as_bytes()[0].is_ascii_alphanumeric()
}

/// A slug made from a title ("Top artists of 2024" -> "top-artists-of-2024").
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(64).collect();
    if out.is_empty() {
        "question".into()
    } else {
        out.trim_end_matches('-').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Top artists of 2024!"), "top-artists-of-2024");
        assert_eq!(slugify("  ¿Qué?  "), "qu");
        assert_eq!(slugify("!!!"), "question");
        assert!(valid_slug("top-artists_2"));
        for bad in ["", "-x", "Top", "a/b", "..", &"x".repeat(65)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
