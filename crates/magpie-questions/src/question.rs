//! A saved question: one `.sql` file in `DATA_DIR/questions/`, named by its slug. The leading
//! lines that start with `--` are a YAML header; the SQL begins at the first line that does not
//! (blank lines between the two are skipped, so the SQL itself may start with a `--` comment
//! after a blank line):
//!
//! ```sql
//! -- title: Top artists of a year
//! -- description: Plays per artist in the chosen year.
//! -- variables:
//! --   year: {type: number, default: 2025}
//! -- chart: {kind: bar, x: artist_name, y: plays}
//!
//! SELECT a.artist_name, count(*) AS plays
//! FROM fact_plays f JOIN dim_artist a USING (artist_id) JOIN dim_date d USING (date_id)
//! WHERE d.year = {{year}}
//! GROUP BY 1 ORDER BY 2 DESC LIMIT 20
//! ```
//!
//! Errors name the file and the line (header lines are the file's lines: `--` and one space are
//! stripped from each, so the YAML's line N is the file's line N).
//!
//! ```
//! use magpie_questions::Question;
//! let q = Question::parse("top", "top.sql", "-- title: Top\n\nSELECT 1").unwrap();
//! assert_eq!((q.title.as_str(), q.sql.as_str()), ("Top", "SELECT 1"));
//! assert_eq!(Question::parse("top", "top.sql", &q.to_file()).unwrap(), q);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::AlertSpec;
use crate::chart::ChartSpec;
use crate::variables::{Template, VarDecl, VarType};
use crate::{FileError, QuestionsError};

/// A saved question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The file's stem.
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub variables: BTreeMap<String, VarDecl>,
    pub chart: Option<ChartSpec>,
    pub alert: Option<AlertSpec>,
    /// The SQL after the header.
    pub sql: String,
    /// The SQL's variables, parsed.
    pub template: Template,
}

/// The YAML header of a question file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, VarDecl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSpec>,
}

impl Question {
    /// Parse a question file. `slug` is the file's stem, `path` names it in errors.
    pub fn parse(slug: &str, path: &str, text: &str) -> Result<Question, FileError> {
        Self::read(slug, path, text).map_err(|e| e.within(text))
    }

    fn read(slug: &str, path: &str, text: &str) -> Result<Question, FileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let parts = split_file(text);
        let header = parse_header(path, &parts.header)?;
        check_declarations(&header.variables).map_err(|(name, message)| {
            file_error(path, variable_line(&parts.header, &name), message)
        })?;
        if parts.sql.is_empty() {
            let message = "there is no SQL after the header".to_string();
            return Err(file_error(path, parts.sql_line, message));
        }
        let template = Template::parse(parts.sql)
            .map_err(|e| file_error(path, parts.sql_line, e.to_string()))?;
        Ok(Question {
            slug: slug.to_string(),
            title: title_or_default(header.title.as_deref(), slug),
            description: header.description,
            variables: header.variables,
            chart: header.chart,
            alert: header.alert,
            sql: parts.sql.to_string(),
            template,
        })
    }

    /// The file text: the `-- ` YAML header (title always; description, variables, chart and
    /// alert when set), a blank line, then the SQL.
    pub fn to_file(&self) -> String {
        let header = Header {
            title: Some(self.title.clone()),
            description: self.description.clone(),
            variables: self.variables.clone(),
            chart: self.chart.clone(),
            alert: self.alert.clone(),
        };
        let yaml = serde_yaml_ng::to_string(&header).expect("a header serialises as YAML");
        let mut out = String::with_capacity(yaml.len() * 2 + self.sql.len());
        for line in yaml.lines() {
            out.push_str(if line.is_empty() { "--" } else { "-- " });
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.sql);
        out.push('\n');
        out
    }

    /// A new question to save (from the explorer): a valid slug and SQL whose `{{ }}` and
    /// `[[ ]]` parse. An empty title becomes the slug's words.
    pub fn new(slug: &str, title: &str, sql: &str) -> Result<Question, QuestionsError> {
        if !crate::valid_slug(slug) {
            return Err(QuestionsError::Invalid(format!(
                "`{slug}` is not a valid name: 1-64 lowercase letters, digits, `-` or `_`, \
                 starting with a letter or digit"
            )));
        }
        let sql = normalise_sql(sql);
        if sql.is_empty() {
            return Err(QuestionsError::Invalid("the SQL is empty".into()));
        }
        let template = Template::parse(sql)?;
        Ok(Question {
            slug: slug.to_string(),
            title: title_or_default(Some(title), slug),
            description: None,
            variables: BTreeMap::new(),
            chart: None,
            alert: None,
            sql: sql.to_string(),
            template,
        })
    }
}

/// A question file cut in two.
struct Parts<'a> {
    /// The header's YAML, one line per file line.
    header: String,
    /// The SQL, without leading blank lines or trailing whitespace.
    sql: &'a str,
    /// The file line the SQL starts on.
    sql_line: usize,
}

fn split_file(text: &str) -> Parts<'_> {
    let mut header = String::new();
    let mut offset = 0;
    let mut line_no = 0;
    for line in text.split_inclusive('\n') {
        let Some(body) = line.strip_prefix("--") else {
            break;
        };
        let body = body.trim_end_matches(['\n', '\r']);
        header.push_str(body.strip_prefix(' ').unwrap_or(body));
        header.push('\n');
        offset += line.len();
        line_no += 1;
    }
    for line in text[offset..].split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        offset += line.len();
        line_no += 1;
    }
    Parts {
        header,
        sql: text[offset..].trim_end(),
        sql_line: line_no + 1,
    }
}

/// SQL as a question keeps it: no leading blank lines, no trailing whitespace.
fn normalise_sql(sql: &str) -> &str {
    let mut offset = 0;
    for line in sql.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        offset += line.len();
    }
    sql[offset..].trim_end()
}

fn parse_header(path: &str, yaml: &str) -> Result<Header, FileError> {
    if yaml.lines().all(is_blank_or_comment) {
        return Ok(Header::default());
    }
    serde_yaml_ng::from_str(yaml).map_err(|e| {
        let mut err = yaml_error(path, &e);
        err.message = format!("header: {}", err.message);
        err
    })
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Declarations that cannot work: a bad name, or a list without its options.
pub(crate) fn check_declarations(vars: &BTreeMap<String, VarDecl>) -> Result<(), (String, String)> {
    for (name, decl) in vars {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let message = format!("`{name}` is not a variable name (letters, digits and `_`)");
            return Err((name.clone(), message));
        }
        if decl.kind == VarType::List && decl.options.is_none() {
            let message =
                format!("variable `{name}` is a list and needs `options`: a query of one column");
            return Err((name.clone(), message));
        }
    }
    Ok(())
}

/// The 1-based line declaring variable `name` in a header's YAML: the first `name:` after
/// `variables:` (the `variables:` line itself, or 1, when not found).
fn variable_line(yaml: &str, name: &str) -> usize {
    let lines: Vec<&str> = yaml.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("variables:")) else {
        return 1;
    };
    let quoted = [name.to_string(), format!("\"{name}\""), format!("'{name}'")];
    let declares = |line: &&str| {
        let line = line.trim_start().trim_start_matches('{').trim_start();
        quoted.iter().any(|q| {
            line.strip_prefix(q.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    };
    let own_line = lines[start]
        .strip_prefix("variables:")
        .is_some_and(|rest| rest.contains(&format!("{name}:")));
    if own_line {
        return start + 1;
    }
    lines[start + 1..]
        .iter()
        .position(declares)
        .map_or(start + 1, |i| start + i + 2)
}

/// The title, or the slug's words (`top-artists` -> "Top artists").
fn title_or_default(title: Option<&str>, slug: &str) -> String {
    match title.map(str::trim).filter(|t| !t.is_empty()) {
        Some(title) => title.to_string(),
        None => {
            let words = slug.replace(['-', '_'], " ");
            let mut chars = words.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
    }
}

pub(crate) fn file_error(path: &str, line: usize, message: String) -> FileError {
    FileError {
        path: path.to_string(),
        line,
        message,
    }
}

/// A YAML error as a [`FileError`]: its line (0 when it has none) and its message without the
/// "at line N column M" that the line already says.
pub(crate) fn yaml_error(path: &str, err: &serde_yaml_ng::Error) -> FileError {
    let line = err.location().map_or(0, |l| l.line());
    let message = match err.to_string() {
        m if m.starts_with("EOF while parsing") => "the YAML ends too early".to_string(),
        m => strip_locations(&m),
    };
    file_error(path, line, message)
}

/// `msg` without its " at line N column M" and " at position N" parts.
fn strip_locations(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        match location_len(after) {
            Some(n) => rest = &after[n..],
            None => {
                out.push_str(" at ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The length of `line N column M` or `position N` at the start of `s`.
fn location_len(s: &str) -> Option<usize> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    if let Some(r) = s.strip_prefix("line ") {
        let n = digits(r);
        let r = r[n..].strip_prefix(" column ")?;
        let m = digits(r);
        (n > 0 && m > 0).then(|| s.len() - r.len() + m)
    } else {
        let r = s.strip_prefix("position ")?;
        let n = digits(r);
        (n > 0).then(|| "position ".len() + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Condition;
    use crate::chart::ChartKind;

    const FILE: &str = "\
-- title: Top artists of a year
-- description: Plays per artist in the chosen year.
-- variables:
--   year: {type: number, default: 2025}
--   artist: {type: list, options: SELECT artist_name FROM dim_artist}
-- chart: {kind: bar, x: artist_name, y: plays}

SELECT a.artist_name, count(*) AS plays
FROM fact_plays f JOIN dim_artist a USING (artist_id) JOIN dim_date d USING (date_id)
WHERE d.year = {{year}} [[AND a.artist_name = {{artist}}]]
GROUP BY 1 ORDER BY 2 DESC LIMIT 20
";

    fn parse(text: &str) -> Result<Question, FileError> {
        Question::parse("top-artists", "questions/top-artists.sql", text)
    }

    #[test]
    fn a_file_is_a_header_and_sql() {
        let q = parse(FILE).unwrap();
        assert_eq!(q.title, "Top artists of a year");
        assert_eq!(
            q.description.as_deref(),
            Some("Plays per artist in the chosen year.")
        );
        assert_eq!(q.variables["year"].kind, VarType::Number);
        assert_eq!(q.variables["year"].default.as_deref(), Some("2025"));
        assert_eq!(q.variables["artist"].kind, VarType::List);
        assert_eq!(q.chart.as_ref().unwrap().kind, ChartKind::Bar);
        assert!(q.sql.starts_with("SELECT a.artist_name"));
        assert!(q.sql.ends_with("LIMIT 20"));
        assert_eq!(q.template.variables(), ["year", "artist"]);
    }

    #[test]
    fn the_title_defaults_to_the_slug_and_the_header_is_optional() {
        let q = parse("SELECT 1\n").unwrap();
        assert_eq!(q.title, "Top artists");
        assert_eq!(q.sql, "SELECT 1");
        let q = parse("-- title: ''\n-- # a comment\nSELECT 2").unwrap();
        assert_eq!(q.title, "Top artists");
        let q = parse("--\n-- # only a comment\n\n\nSELECT 3 -- {{x}}\n\n").unwrap();
        assert_eq!((q.sql.as_str(), q.description), ("SELECT 3 -- {{x}}", None));
    }

    #[test]
    fn undeclared_variables_are_allowed() {
        let q = parse("-- title: x\nSELECT {{who}}").unwrap();
        assert_eq!(q.template.variables(), ["who"]);
        assert!(q.variables.is_empty());
    }

    #[test]
    fn header_errors_name_the_file_line() {
        let err = parse("-- title: x\n-- colour: red\nSELECT 1").unwrap_err();
        assert_eq!(err.path, "questions/top-artists.sql");
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert!(!err.message.contains("column"), "{err}");

        let err = parse("-- title: x\n-- chart: {kind: pie}\nSELECT 1").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("pie"), "{err}");

        let err = parse("-- title: x\n-- variables:\n--   y: [unclosed\nSELECT 1").unwrap_err();
        assert!(err.line >= 3, "{err}");

        let err = parse("-- Just a comment about this query\nSELECT 1").unwrap_err();
        assert_eq!(err.line, 1, "{err}");
        assert!(err.message.starts_with("header: "), "{err}");
    }

    /// Found by tests/fuzz_files.rs: a file that does not end with a line break was told of
    /// an error on the line after its last.
    #[test]
    fn regression_an_error_is_on_a_line_of_the_file() {
        let err = parse("-- title:").unwrap_err();
        assert_eq!(err.line, 1, "{err}");
        assert_eq!(parse("-- title:\n").unwrap_err().line, 2);
    }

    #[test]
    fn a_list_without_options_is_named() {
        let text = "-- title: x\n-- variables:\n--   year: {type: number}\n--   artist: {type: list}\nSELECT {{artist}}";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("`artist`"), "{err}");
        assert!(err.message.contains("options"), "{err}");
        let text = "-- title: a list\n-- variables:\n--   title: {type: list}\nSELECT {{title}}";
        assert_eq!(
            parse(text).unwrap_err().line,
            3,
            "the declaration, not the title"
        );
        let text = "-- variables: {a: {type: number}, title: {type: list}}\nSELECT 1";
        assert_eq!(parse(text).unwrap_err().line, 1);
        let err = parse("-- variables:\n--   'my var': {type: text}\nSELECT 1").unwrap_err();
        assert!(err.message.contains("not a variable name"), "{err}");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn sql_errors_are_on_the_first_sql_line() {
        let err = parse("-- title: x\n-- description: y\n\nSELECT {{x").unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("no closing"), "{err}");
        let err = parse("-- title: x\n\n  \n").unwrap_err();
        assert!(err.message.contains("no SQL"), "{err}");
        assert_eq!(
            err.to_string(),
            "questions/top-artists.sql:4: there is no SQL after the header"
        );
    }

    #[test]
    fn to_file_round_trips() {
        let q = parse(FILE).unwrap();
        let text = q.to_file();
        assert!(
            text.starts_with("-- title: Top artists of a year\n"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), q);
    }

    #[test]
    fn to_file_round_trips_multi_line_text_and_sql_comments() {
        let mut q = Question::new(
            "weird",
            "A title: with a colon, \"quotes\" and # hash",
            "\n\n-- a comment first\nSELECT 1 AS x -- and {{not_a_var}}\n--\n-- more comment\n  , {{n}} AS n\n\n",
        )
        .unwrap();
        q.description = Some(
            "First line.\n\n  Indented second paragraph: with: colons\n-- not a header\ntrailing  "
                .into(),
        );
        let mut decl = VarDecl::of(VarType::Number);
        decl.default = Some("3".into());
        decl.label = Some("How many?\nreally".into());
        q.variables.insert("n".into(), decl);
        let mut list = VarDecl::of(VarType::List);
        list.options = Some("SELECT artist_name\nFROM dim_artist -- all of them".into());
        q.variables.insert("artist".into(), list);
        q.chart = Some(ChartSpec {
            kind: ChartKind::Line,
            x: Some("x".into()),
            y: None,
            series: Some("s".into()),
        });
        q.alert = Some(AlertSpec {
            every: Some(std::time::Duration::from_secs(86_400)),
            cron: None,
            when: Condition::Above {
                column: "n".into(),
                value: 2.5,
            },
            message: Some("Over!".into()),
        });
        let text = q.to_file();
        let back =
            Question::parse("weird", "weird.sql", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, q, "{text}");
        assert_eq!(back.sql.lines().next(), Some("-- a comment first"));
        assert_eq!(back.template.variables(), ["n"]);
        assert_eq!(back.to_file(), text);
    }

    #[test]
    fn new_checks_the_slug_and_the_template() {
        let q = Question::new("plays-2024", " ", "SELECT {{a}}").unwrap();
        assert_eq!(q.title, "Plays 2024");
        assert!(matches!(
            Question::new("Bad Slug", "t", "SELECT 1"),
            Err(QuestionsError::Invalid(_))
        ));
        assert!(matches!(
            Question::new("ok", "t", "SELECT {{a"),
            Err(QuestionsError::Template(_))
        ));
        assert!(matches!(
            Question::new("ok", "t", " \n "),
            Err(QuestionsError::Invalid(_))
        ));
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_read() {
        let q = parse("\u{feff}-- title: Windows\r\n\r\nSELECT 1\r\n").unwrap();
        assert_eq!((q.title.as_str(), q.sql.as_str()), ("Windows", "SELECT 1"));
    }

    #[test]
    fn locations_are_stripped_from_messages() {
        assert_eq!(
            strip_locations("bad thing at line 3 column 7, while parsing at line 1 column 1"),
            "bad thing, while parsing"
        );
        assert_eq!(
            strip_locations("look at this at position 12"),
            "look at this"
        );
        assert_eq!(strip_locations("at line x"), "at line x");
    }
}
