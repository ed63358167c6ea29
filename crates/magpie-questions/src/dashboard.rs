//! A dashboard: `DATA_DIR/dashboards/<slug>.yml` (or one of the built-in examples), with
//! filters at the top wired by name to its cards' variables, and cards on a 12-column grid
//! that stacks on a phone:
//!
//! ```yaml
//! title: My listening
//! description: What I played, by year.
//! filters:
//!   - {name: range, type: date_range, default: 365d, label: Range}
//!   - {name: artist, type: list, options: "SELECT artist_name FROM dim_artist ORDER BY 1"}
//! cards:
//!   - question: top-artists          # a saved question, its own chart unless given here
//!     width: 6
//!   - title: Plays per month
//!     sql: |
//!       SELECT strftime(d.date_day, '%Y-%m') AS month, count(*) AS plays
//!       FROM fact_plays f JOIN dim_date d USING (date_id)
//!       WHERE d.date_day BETWEEN {{range.from}} AND {{range.to}}
//!         [[AND f.artist_id IN (SELECT artist_id FROM dim_artist WHERE artist_name = {{artist}})]]
//!       GROUP BY 1 ORDER BY 1
//!     chart: {kind: column, x: month, y: plays}
//!     width: 6
//!   - title: Plays of at least n minutes
//!     sql: SELECT count(*) AS plays FROM fact_plays WHERE ms_played >= {{minutes}} * 60000
//!     variables: {minutes: {type: number, default: 3}}   # inline SQL's own variables
//!     chart: {kind: number, y: plays}
//!   - text: "Numbers are **plays** of at least 30 seconds."
//!     width: 12
//! ```
//!
//! A card is exactly one of `question`, `sql` or `text`; `width` is 1 to 12 (default 6); a key
//! this format does not know is an error. Errors name the line of the card or key at fault.
//! A filter's value goes to every card variable of its name, with the filter's type
//! ([`Dashboard::decls`]).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};

use crate::FileError;
use crate::chart::ChartSpec;
use crate::question::{Question, check_declarations, file_error, yaml_error};
use crate::variables::{Template, VarDecl, VarType};

/// A dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// The file's stem.
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub filters: Vec<Filter>,
    pub cards: Vec<Card>,
    /// One of the examples compiled into magpie (not a file in the data folder).
    pub builtin: bool,
}

/// A filter at the top of a dashboard: its value goes to every card's variable of the same
/// name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: VarType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A list filter's choices: a query of one column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

impl Filter {
    /// The filter as a variable declaration (for binding a card's SQL).
    pub fn decl(&self) -> VarDecl {
        VarDecl {
            kind: self.kind,
            label: self.label.clone(),
            default: self.default.clone(),
            options: self.options.clone(),
        }
    }
}

/// What a card shows.
#[derive(Debug, Clone, PartialEq)]
pub enum CardBody {
    /// A saved question, by slug.
    Question(String),
    /// SQL written in the dashboard itself.
    Sql(String),
    /// Markdown text.
    Text(String),
}

/// A card on the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub title: Option<String>,
    pub body: CardBody,
    /// Overrides the question's own chart.
    pub chart: Option<ChartSpec>,
    /// Columns of 12 on a wide screen (cards are full width on a phone).
    pub width: u8,
    /// An SQL card's own variable declarations (a question declares its own in its header).
    pub variables: BTreeMap<String, VarDecl>,
}

/// A card's width when the file gives none.
pub const DEFAULT_WIDTH: u8 = 6;

impl Card {
    /// A card of `body` with no title or chart, the default width and no variables.
    pub fn new(body: CardBody) -> Card {
        Card {
            title: None,
            body,
            chart: None,
            width: DEFAULT_WIDTH,
            variables: BTreeMap::new(),
        }
    }

    /// What is wrong with the card, if anything (the checks [`Dashboard::parse`] makes).
    pub fn check(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.width) {
            return Err(format!("width {} is not 1 to 12", self.width));
        }
        match &self.body {
            CardBody::Question(slug) if !crate::valid_slug(slug) => {
                return Err(format!("`{slug}` is not a question name"));
            }
            CardBody::Sql(sql) => check_sql(sql)?,
            CardBody::Text(_) if self.chart.is_some() => {
                return Err("a text card has no chart".into());
            }
            _ => {}
        }
        if !self.variables.is_empty() && !matches!(self.body, CardBody::Sql(_)) {
            return Err("`variables` belong to `sql` cards (a question declares its own)".into());
        }
        check_declarations(&self.variables).map_err(|(_, message)| message)
    }
}

fn check_sql(sql: &str) -> Result<(), String> {
    if sql.trim().is_empty() {
        return Err("the card's `sql` is empty".into());
    }
    Template::parse(sql)
        .map(drop)
        .map_err(|e| format!("sql: {e}"))
}

impl Dashboard {
    /// Parse a dashboard file. `slug` is the file's stem, `path` names it in errors.
    pub fn parse(slug: &str, path: &str, text: &str) -> Result<Dashboard, FileError> {
        Self::read(slug, path, text).map_err(|e| e.within(text))
    }

    fn read(slug: &str, path: &str, text: &str) -> Result<Dashboard, FileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.lines().all(is_blank_or_comment) {
            let message = "the file is empty: a dashboard needs at least a `title:`".to_string();
            return Err(file_error(path, 0, message));
        }
        let file: DashboardFile =
            serde_yaml_ng::from_str(text).map_err(|e| yaml_error(path, &e))?;
        check_filters(&file.filters)
            .map_err(|(name, message)| file_error(path, filter_line(text, &name), message))?;
        if file.title.trim().is_empty() {
            return Err(file_error(path, 1, "the title is empty".into()));
        }
        Ok(Dashboard {
            slug: slug.to_string(),
            title: file.title,
            description: file.description,
            filters: file.filters.into_iter().map(|f| f.0).collect(),
            cards: file.cards.into_iter().map(|c| c.0.into_card()).collect(),
            builtin: false,
        })
    }

    /// The dashboard as a file that [`Dashboard::parse`] reads back the same.
    pub fn to_yaml(&self) -> String {
        let file = DashboardFile {
            title: self.title.clone(),
            description: self.description.clone(),
            filters: self.filters.iter().cloned().map(Checked).collect(),
            cards: self
                .cards
                .iter()
                .map(|c| Checked(CardFile::of(c)))
                .collect(),
        };
        serde_yaml_ng::to_string(&file).expect("a dashboard serialises as YAML")
    }

    /// The filter named `name`.
    pub fn filter(&self, name: &str) -> Option<&Filter> {
        self.filters.iter().find(|f| f.name == name)
    }

    /// The declarations to bind a card's SQL with: the card's own (an SQL card's `variables`,
    /// or `question`'s header for a question card), then, for every variable the SQL uses
    /// that a filter of this dashboard names, the filter's (its type, label, default and
    /// options win: the filter is what sets the value).
    pub fn decls(&self, card: &Card, question: Option<&Question>) -> BTreeMap<String, VarDecl> {
        let (mut decls, used) = match (&card.body, question) {
            (CardBody::Question(_), Some(q)) => (q.variables.clone(), q.template.variables()),
            (CardBody::Sql(sql), _) => (
                card.variables.clone(),
                Template::parse(sql)
                    .map(|t| t.variables())
                    .unwrap_or_default(),
            ),
            _ => return BTreeMap::new(),
        };
        for name in used {
            if let Some(filter) = self.filter(&name) {
                decls.insert(name, filter.decl());
            }
        }
        decls
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Two filters of one name, with the name at fault (each filter is checked as it is read).
fn check_filters(filters: &[Checked<Filter>]) -> Result<(), (String, String)> {
    for (i, f) in filters.iter().enumerate() {
        if filters[..i].iter().any(|g| g.0.name == f.0.name) {
            return Err((
                f.0.name.clone(),
                format!("two filters are named `{}`", f.0.name),
            ));
        }
    }
    Ok(())
}

/// The line of the last filter named `name` (two of them: the second is at fault).
fn filter_line(text: &str, name: &str) -> usize {
    let needles = [
        format!("name: {name}"),
        format!("name: \"{name}\""),
        format!("name: '{name}'"),
    ];
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            needles.iter().any(|n| {
                line.find(n.as_str()).is_some_and(|i| {
                    let after = &line[i + n.len()..];
                    !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .last()
        .map_or(1, |(i, _)| i + 1)
}

/// The file's shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardFile {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    filters: Vec<Checked<Filter>>,
    #[serde(default)]
    cards: Vec<Checked<CardFile>>,
}

/// A card as written: one of `question`, `sql` or `text`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    variables: BTreeMap<String, VarDecl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chart: Option<ChartSpec>,
    #[serde(default = "default_width")]
    width: u8,
}

fn default_width() -> u8 {
    DEFAULT_WIDTH
}

impl CardFile {
    fn of(card: &Card) -> CardFile {
        let (mut question, mut sql, mut text) = (None, None, None);
        match &card.body {
            CardBody::Question(s) => question = Some(s.clone()),
            CardBody::Sql(s) => sql = Some(s.clone()),
            CardBody::Text(s) => text = Some(s.clone()),
        }
        CardFile {
            title: card.title.clone(),
            question,
            sql,
            text,
            variables: card.variables.clone(),
            chart: card.chart.clone(),
            width: card.width,
        }
    }

    fn body(&self) -> Result<CardBody, String> {
        match (&self.question, &self.sql, &self.text) {
            (Some(q), None, None) => Ok(CardBody::Question(q.clone())),
            (None, Some(s), None) => Ok(CardBody::Sql(s.clone())),
            (None, None, Some(t)) => Ok(CardBody::Text(t.clone())),
            (None, None, None) => Err("a card needs one of `question`, `sql` or `text`".into()),
            _ => Err("a card has only one of `question`, `sql` or `text`".into()),
        }
    }

    fn into_card(self) -> Card {
        Card {
            body: self.body().expect("checked when read"),
            title: self.title,
            chart: self.chart,
            width: self.width,
            variables: self.variables,
        }
    }
}

/// A part of the file that is checked as it is read, so that its error carries the line
/// where it starts.
trait Check: Sized {
    /// What the YAML should hold, for "expected ..." messages.
    const EXPECTING: &'static str;
    fn check(&self) -> Result<(), String>;
}

impl Check for Filter {
    const EXPECTING: &'static str = "a filter: {name: ..., type: ...}";
    fn check(&self) -> Result<(), String> {
        let decls = BTreeMap::from([(self.name.clone(), self.decl())]);
        check_declarations(&decls).map_err(|(_, message)| format!("filter: {message}"))
    }
}

impl Check for CardFile {
    const EXPECTING: &'static str = "a card: {question: ...}, {sql: ...} or {text: ...}";
    fn check(&self) -> Result<(), String> {
        let card = Card {
            body: self.body()?,
            title: None,
            chart: self.chart.clone(),
            width: self.width,
            variables: self.variables.clone(),
        };
        card.check()
    }
}

/// `T`, checked with [`Check`] inside the YAML mapping it is read from.
#[derive(Serialize)]
#[serde(transparent)]
struct Checked<T>(T);

impl<'de, T: Deserialize<'de> + Check> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CheckedVisitor(PhantomData))
    }
}

struct CheckedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Check> Visitor<'de> for CheckedVisitor<T> {
    type Value = Checked<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked<T>, A::Error> {
        let value = T::deserialize(MapAccessDeserializer::new(map))?;
        value.check().map_err(de::Error::custom)?;
        Ok(Checked(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::ChartKind;

    const FILE: &str = r#"title: My listening
description: What I played, by year.
filters:
  - {name: range, type: date_range, default: 365d, label: Range}
  - {name: artist, type: list, options: "SELECT artist_name FROM dim_artist ORDER BY 1"}
cards:
  - question: top-artists
    width: 4
  - title: Plays per month
    sql: |
      SELECT strftime(d.date_day, '%Y-%m') AS month, count(*) AS plays
      FROM fact_plays f JOIN dim_date d USING (date_id)
      WHERE d.date_day BETWEEN {{range.from}} AND {{range.to}} [[AND {{artist}} = {{artist}}]]
      GROUP BY 1 ORDER BY 1
    chart: {kind: column, x: month, y: plays}
  - sql: SELECT {{n}} AS n
    variables: {n: {type: number, default: 3}}
    chart: {kind: number}
  - text: "Numbers are **plays** of at least 30 seconds."
    width: 12
"#;

    fn parse(text: &str) -> Result<Dashboard, FileError> {
        Dashboard::parse("mine", "dashboards/mine.yml", text)
    }

    #[test]
    fn a_dashboard_has_filters_and_cards() {
        let d = parse(FILE).unwrap();
        assert_eq!(d.title, "My listening");
        assert!(!d.builtin);
        assert_eq!(d.filters.len(), 2);
        assert_eq!(d.filters[0].kind, VarType::DateRange);
        assert_eq!(d.filters[0].default.as_deref(), Some("365d"));
        assert_eq!(d.cards.len(), 4);
        assert_eq!(d.cards[0].body, CardBody::Question("top-artists".into()));
        assert_eq!(d.cards[0].width, 4);
        assert_eq!(d.cards[1].width, DEFAULT_WIDTH);
        assert_eq!(d.cards[1].title.as_deref(), Some("Plays per month"));
        assert_eq!(d.cards[1].chart.as_ref().unwrap().kind, ChartKind::Column);
        assert!(matches!(&d.cards[1].body, CardBody::Sql(s) if s.ends_with("ORDER BY 1\n")));
        assert_eq!(d.cards[2].variables["n"].kind, VarType::Number);
        assert_eq!(
            d.cards[3].body,
            CardBody::Text("Numbers are **plays** of at least 30 seconds.".into())
        );
    }

    #[test]
    fn to_yaml_round_trips() {
        let d = parse(FILE).unwrap();
        let yaml = d.to_yaml();
        assert_eq!(parse(&yaml).unwrap(), d, "{yaml}");
        assert!(
            yaml.contains("sql: |"),
            "multi-line SQL stays readable:\n{yaml}"
        );
        let mut tricky = d.clone();
        tricky.title = "A: title # with 'quotes' and \"more\"".into();
        tricky.description = Some("Line one\n\n  indented: two\n".into());
        tricky.cards.push(Card::new(CardBody::Text(
            "- a list\n- of items\n\n```sql\nSELECT 1\n```".into(),
        )));
        assert_eq!(parse(&tricky.to_yaml()).unwrap(), tricky);
        let empty = Dashboard {
            cards: vec![],
            filters: vec![],
            ..d
        };
        assert_eq!(parse(&empty.to_yaml()).unwrap(), empty);
    }

    #[test]
    fn card_errors_name_the_card_line() {
        let cases = [
            (
                "title: t\ncards:\n  - text: a\n  - text: b\n    colour: red\n",
                5,
                "unknown field `colour`",
            ),
            (
                "title: t\ncards:\n  - text: a\n  - title: two\n    sql: SELECT 1\n    text: b\n",
                4,
                "only one of",
            ),
            ("title: t\ncards:\n  - title: nothing\n", 3, "needs one of"),
            (
                "title: t\ncards:\n  - text: a\n  - text: b\n    width: 0\n",
                4,
                "width 0",
            ),
            ("title: t\ncards:\n  - text: a\n    width: 300\n", 4, "300"),
            (
                "title: t\ncards:\n  - text: a\n\n  - sql: |\n      SELECT\n      {{x\n",
                5,
                "no closing",
            ),
            (
                "title: t\ncards:\n  - question: Not A Slug\n",
                3,
                "not a question name",
            ),
            (
                "title: t\ncards:\n  - text: a\n    chart: {kind: bar}\n",
                3,
                "text card has no chart",
            ),
            (
                "title: t\ncards:\n  - question: q\n    variables: {a: {type: text}}\n",
                3,
                "belong to `sql` cards",
            ),
            (
                "title: t\ncards:\n  - sql: SELECT {{a}}\n    variables: {a: {type: list}}\n",
                3,
                "`a` is a list",
            ),
            (
                "title: t\ncards:\n  - sql: SELECT 1\n    chart: {kind: bar, colour: red}\n",
                4,
                "unknown field `colour`",
            ),
            (
                "title: t\ncards:\n  - just a string\n",
                3,
                "expected a card",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path, "dashboards/mine.yml");
            assert_eq!(err.line, line, "{text}\n{err}");
            assert!(err.message.contains(needle), "{text}\n{err}");
            assert!(!err.message.contains(" column "), "{err}");
        }
    }

    #[test]
    fn file_errors_name_their_line() {
        let cases = [
            ("", 0, "empty"),
            ("# only a comment\n", 0, "empty"),
            ("description: no title\n", 1, "missing field `title`"),
            ("title: ' '\n", 1, "title is empty"),
            ("title: t\nlayout: grid\n", 2, "unknown field `layout`"),
            ("title: t\ncards: [\n", 3, ""),
            (
                "title: t\nfilters:\n  - {name: a}\n  - {name: b, type: list}\n",
                4,
                "`b` is a list",
            ),
            (
                "title: t\nfilters:\n  - {name: a}\n  - {name: a, type: number}\n",
                4,
                "two filters",
            ),
            (
                "title: t\nfilters:\n  - {name: a, type: month}\n",
                3,
                "month",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}\n{err}");
            assert!(err.message.contains(needle), "{text}\n{err}");
        }
    }

    /// Found by tests/fuzz_files.rs: YAML cut short without a final line break was reported
    /// on the line after the file's last.
    #[test]
    fn regression_an_error_is_on_a_line_of_the_file() {
        let err = parse("title: t\ncards:\n  - title: x\n    s").unwrap_err();
        assert_eq!(err.line, 4, "{err}");
    }

    #[test]
    fn decls_give_filters_to_the_variables_that_use_them() {
        let d = parse(FILE).unwrap();
        let decls = d.decls(&d.cards[1], None);
        assert_eq!(decls["range"].kind, VarType::DateRange);
        assert_eq!(decls["artist"].kind, VarType::List);
        let decls = d.decls(&d.cards[2], None);
        assert_eq!(decls.keys().collect::<Vec<_>>(), ["n"]);
        assert!(d.decls(&d.cards[3], None).is_empty());
        let q = Question::parse(
            "top-artists",
            "q.sql",
            "-- variables: {range: {type: date}, k: {type: number}}\nSELECT {{range.from}}, {{k}}",
        )
        .unwrap();
        let decls = d.decls(&d.cards[0], Some(&q));
        assert_eq!(
            decls["range"].kind,
            VarType::DateRange,
            "the filter's type wins"
        );
        assert_eq!(decls["k"].kind, VarType::Number);
    }

    #[test]
    fn cards_check_what_the_file_checks() {
        assert!(Card::new(CardBody::Sql("SELECT 1".into())).check().is_ok());
        let mut wide = Card::new(CardBody::Text("x".into()));
        wide.width = 13;
        assert!(wide.check().unwrap_err().contains("width 13"));
        assert!(Card::new(CardBody::Sql(" ".into())).check().is_err());
    }
}
