//! Variables in SQL, as Metabase writes them: `{{name}}` where a value goes, and optional
//! clauses `[[ AND artist_name = {{artist}} ]]` that are dropped when a variable inside them
//! has no value. A date range variable is used as `{{name.from}}` and `{{name.to}}`.
//!
//! Binding turns every `{{…}}` into a `?` placeholder and collects the typed values in order
//! ([`Bound`]): a value never becomes SQL text, so `' OR 1=1 --` is just a string that matches
//! nothing. Text inside quotes, `--` line comments and `/* */` comments is left alone.
//!
//! ```
//! use magpie_questions::variables::{Param, Template, Values, VarDecl, VarType};
//! let t = Template::parse("SELECT * FROM agg_daily_listening WHERE date_id >= {{since}} [[AND listener_id = {{who}}]]").unwrap();
//! let mut decls = std::collections::BTreeMap::new();
//! decls.insert("since".to_string(), VarDecl::of(VarType::Number));
//! let values = Values::from_pairs([("since", "20240101")]);
//! let bound = t.bind(&decls, &values).unwrap();
//! assert_eq!(bound.sql.trim_end(), "SELECT * FROM agg_daily_listening WHERE date_id >= ?");
//! assert_eq!(bound.params, vec![Param::Int(20240101)]);
//! ```

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::QuestionsError;

/// The type of a variable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    #[default]
    Text,
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD..YYYY-MM-DD`, used as `{{name.from}}` and `{{name.to}}`.
    DateRange,
    /// One value from a list: the distinct values of `options` (a query of one column).
    List,
}

impl VarType {
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::Text => "text",
            VarType::Number => "number",
            VarType::Date => "date",
            VarType::DateRange => "date_range",
            VarType::List => "list",
        }
    }
}

/// How a question or dashboard declares a variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarDecl {
    #[serde(rename = "type", default)]
    pub kind: VarType,
    /// Shown beside the input (default: the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The value when none is given (for a date range also a preset: `365d`, `all`, `2024`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "scalar_as_string"
    )]
    pub default: Option<String>,
    /// A list variable's choices: a query returning one column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

impl VarDecl {
    pub fn of(kind: VarType) -> Self {
        Self {
            kind,
            ..Default::default()
        }
    }
}

/// YAML's `default: 2025` is a number; keep every default as text.
fn scalar_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_yaml_ng::Value>::deserialize(d)?;
    Ok(match value {
        None | Some(serde_yaml_ng::Value::Null) => None,
        Some(serde_yaml_ng::Value::String(s)) => Some(s),
        Some(serde_yaml_ng::Value::Number(n)) => Some(n.to_string()),
        Some(serde_yaml_ng::Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "a default is a single value, not {other:?}"
            )));
        }
    })
}

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
}

/// Variable values as given (URL query, JSON body, a share's locked values), by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(pub BTreeMap<String, String>);

impl Values {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The value of `name`, unless it is empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Sql(String),
    /// `{{name}}` or `{{name.from}}` / `{{name.to}}`.
    Var {
        name: String,
        part: Option<RangePart>,
    },
    /// `[[ … ]]`: kept only when every variable in it has a value.
    Optional(Vec<Piece>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangePart {
    From,
    To,
}

/// SQL with variables, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// SQL with `?` placeholders and their values in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Template {
    /// Parse `sql`: `{{ name }}` (letters, digits, `_`; `.from`/`.to` for a date range) and
    /// `[[ … ]]` (not nested). Quotes and comments are skipped, so a `{{` inside a string
    /// literal stays text.
    pub fn parse(sql: &str) -> Result<Self, QuestionsError> {
        let mut stack: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut text = String::new();
        let bytes = sql.as_bytes();
        let mut i = 0;
        let flush = |text: &mut String, stack: &mut Vec<Vec<Piece>>| {
            if !text.is_empty() {
                stack
                    .last_mut()
                    .expect("a level")
                    .push(Piece::Sql(std::mem::take(text)));
            }
        };
        while i < bytes.len() {
            let rest = &sql[i..];
            if rest.starts_with('\'') || rest.starts_with('"') {
                let quote = rest.as_bytes()[0];
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => break,
                        Some(&b) if b == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
                        Some(&b) if b == quote => {
                            j += 1;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                text.push_str(&sql[i..j]);
                i = j;
            } else if rest.starts_with("--") {
                let end = rest.find('\n').map_or(sql.len(), |n| i + n);
                text.push_str(&sql[i..end]);
                i = end;
            } else if let Some(comment) = rest.strip_prefix("/*") {
                let end = comment.find("*/").map_or(sql.len(), |n| i + 2 + n + 2);
                text.push_str(&sql[i..end]);
                i = end;
            } else if rest.starts_with("{{") {
                let close = rest.find("}}").ok_or_else(|| {
                    QuestionsError::Template(format!(
                        "`{{{{` at character {} has no closing `}}}}`",
                        i + 1
                    ))
                })?;
                let inner = rest[2..close].trim();
                let (name, part) = match inner.split_once('.') {
                    Some((n, "from")) => (n, Some(RangePart::From)),
                    Some((n, "to")) => (n, Some(RangePart::To)),
                    Some((_, other)) => {
                        return Err(QuestionsError::Template(format!(
                            "`{{{{{inner}}}}}`: a variable part is `.from` or `.to`, not `.{other}`"
                        )));
                    }
                    None => (inner, None),
                };
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(QuestionsError::Template(format!(
                        "`{{{{{inner}}}}}` is not a variable name (letters, digits and `_`)"
                    )));
                }
                flush(&mut text, &mut stack);
                stack.last_mut().expect("a level").push(Piece::Var {
                    name: name.to_string(),
                    part,
                });
                i += close + 2;
            } else if rest.starts_with("[[") {
                if stack.len() > 1 {
                    return Err(QuestionsError::Template(format!(
                        "`[[` at character {} is inside another `[[ ]]`: optional clauses do not nest",
                        i + 1
                    )));
                }
                flush(&mut text, &mut stack);
                stack.push(Vec::new());
                i += 2;
            } else if rest.starts_with("]]") && stack.len() > 1 {
                flush(&mut text, &mut stack);
                let clause = stack.pop().expect("an open clause");
                if !clause.iter().any(|p| matches!(p, Piece::Var { .. })) {
                    return Err(QuestionsError::Template(format!(
                        "the `[[ ]]` ending at character {} holds no variable",
                        i + 1
                    )));
                }
                stack
                    .last_mut()
                    .expect("a level")
                    .push(Piece::Optional(clause));
                i += 2;
            } else {
                let c = rest.chars().next().expect("not at the end");
                text.push(c);
                i += c.len_utf8();
            }
        }
        if stack.len() > 1 {
            return Err(QuestionsError::Template(
                "a `[[` has no closing `]]`".into(),
            ));
        }
        flush(&mut text, &mut stack);
        Ok(Self {
            pieces: stack.pop().expect("the top level"),
        })
    }

    /// The variable names the SQL uses, in order of first use.
    pub fn variables(&self) -> Vec<String> {
        fn walk(pieces: &[Piece], out: &mut Vec<String>) {
            for p in pieces {
                match p {
                    Piece::Var { name, .. } if !out.contains(name) => out.push(name.clone()),
                    Piece::Optional(inner) => walk(inner, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.pieces, &mut out);
        out
    }

    /// The variables outside any `[[ ]]`: they must have a value (or a default).
    pub fn required(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.pieces {
            if let Piece::Var { name, .. } = p
                && !out.contains(name)
            {
                out.push(name.clone());
            }
        }
        out
    }

    /// Bind `values` (then each declaration's default) as parameters; optional clauses whose
    /// variables lack a value are dropped. Undeclared variables are text.
    pub fn bind(
        &self,
        decls: &BTreeMap<String, VarDecl>,
        values: &Values,
    ) -> Result<Bound, QuestionsError> {
        let value_of = |name: &str| -> Option<String> {
            values
                .get(name)
                .map(str::to_string)
                .or_else(|| decls.get(name).and_then(|d| d.default.clone()))
                .filter(|v| !v.trim().is_empty())
        };
        let mut bound = Bound {
            sql: String::new(),
            params: Vec::new(),
        };
        for piece in &self.pieces {
            match piece {
                Piece::Sql(text) => bound.sql.push_str(text),
                Piece::Var { name, part } => {
                    let value = value_of(name).ok_or_else(|| QuestionsError::Variable {
                        name: name.clone(),
                        message: "needs a value".into(),
                    })?;
                    push_var(&mut bound, decls, name, *part, &value)?;
                }
                Piece::Optional(inner) => {
                    let all_set = inner.iter().all(|p| match p {
                        Piece::Var { name, .. } => value_of(name).is_some(),
                        _ => true,
                    });
                    if !all_set {
                        continue;
                    }
                    for p in inner {
                        match p {
                            Piece::Sql(text) => bound.sql.push_str(text),
                            Piece::Var { name, part } => {
                                let value = value_of(name).expect("checked above");
                                push_var(&mut bound, decls, name, *part, &value)?;
                            }
                            Piece::Optional(_) => unreachable!("optional clauses do not nest"),
                        }
                    }
                }
            }
        }
        Ok(bound)
    }
}

fn push_var(
    bound: &mut Bound,
    decls: &BTreeMap<String, VarDecl>,
    name: &str,
    part: Option<RangePart>,
    value: &str,
) -> Result<(), QuestionsError> {
    let kind = decls.get(name).map_or(VarType::Text, |d| d.kind);
    let bad = |message: String| QuestionsError::Variable {
        name: name.to_string(),
        message,
    };
    let param = match (kind, part) {
        (VarType::DateRange, Some(part)) => {
            let (from, to) = parse_range(value).map_err(bad)?;
            Param::Date(if part == RangePart::From { from } else { to })
        }
        (VarType::DateRange, None) => {
            return Err(bad(
                "a date range is used as `{{name.from}}` and `{{name.to}}`".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(bad(format!(
                "`.from`/`.to` belong to date ranges, and this variable is {}",
                kind.as_str()
            )));
        }
        (kind, None) => parse_value(kind, value).map_err(bad)?,
    };
    bound.sql.push('?');
    bound.params.push(param);
    Ok(())
}

/// `value` as a parameter of `kind`, or what is wrong with it.
pub fn parse_value(kind: VarType, value: &str) -> Result<Param, String> {
    let value = value.trim();
    if value.len() > 1000 {
        return Err("is longer than 1,000 characters".into());
    }
    match kind {
        VarType::Text | VarType::List => Ok(Param::Text(value.to_string())),
        VarType::Number => value
            .parse::<i64>()
            .map(Param::Int)
            .or_else(|_| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Param::Float)
                    .ok_or(())
            })
            .map_err(|_| format!("`{value}` is not a number")),
        VarType::Date => parse_date(value).map(Param::Date),
        VarType::DateRange => Err("a date range has two parts".into()),
    }
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| format!("`{value}` is not a date (YYYY-MM-DD)"))
}

/// `YYYY-MM-DD..YYYY-MM-DD` (from first; a single date is a one-day range).
pub fn parse_range(value: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let (from, to) = value.split_once("..").unwrap_or((value, value));
    let (from, to) = (parse_date(from.trim())?, parse_date(to.trim())?);
    if from > to {
        return Err(format!("the range `{value}` ends before it starts"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(list: &[(&str, VarType)]) -> BTreeMap<String, VarDecl> {
        list.iter()
            .map(|(n, k)| (n.to_string(), VarDecl::of(*k)))
            .collect()
    }

    #[test]
    fn values_become_parameters_in_order() {
        let t = Template::parse("SELECT * FROM t WHERE a = {{ x }} AND b = {{y}} AND c = {{x}}")
            .unwrap();
        assert_eq!(t.variables(), ["x", "y"]);
        let b = t
            .bind(
                &decls(&[("x", VarType::Number)]),
                &Values::from_pairs([("x", "7"), ("y", "it's")]),
            )
            .unwrap();
        assert_eq!(b.sql, "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?");
        assert_eq!(
            b.params,
            [Param::Int(7), Param::Text("it's".into()), Param::Int(7)]
        );
    }

    #[test]
    fn an_injection_is_a_value_not_sql() {
        let t = Template::parse("SELECT * FROM t WHERE name = {{name}}").unwrap();
        let b = t
            .bind(
                &BTreeMap::new(),
                &Values::from_pairs([("name", "x' OR 1=1; DROP TABLE t; --")]),
            )
            .unwrap();
        assert_eq!(b.sql, "SELECT * FROM t WHERE name = ?");
        assert_eq!(
            b.params,
            [Param::Text("x' OR 1=1; DROP TABLE t; --".into())]
        );
    }

    #[test]
    fn optional_clauses_go_when_their_variable_is_empty() {
        let t = Template::parse(
            "SELECT 1 WHERE true [[ AND a = {{a}} ]][[AND b BETWEEN {{r.from}} AND {{r.to}}]]",
        )
        .unwrap();
        let d = decls(&[("r", VarType::DateRange)]);
        let none = t.bind(&d, &Values::default()).unwrap();
        assert_eq!(none.sql, "SELECT 1 WHERE true ");
        let both = t
            .bind(
                &d,
                &Values::from_pairs([("a", "x"), ("r", "2024-01-01..2024-12-31")]),
            )
            .unwrap();
        assert_eq!(
            both.sql,
            "SELECT 1 WHERE true  AND a = ? AND b BETWEEN ? AND ?"
        );
        assert_eq!(both.params.len(), 3);
        let blank = t.bind(&d, &Values::from_pairs([("a", "  ")])).unwrap();
        assert!(blank.params.is_empty(), "a blank value is no value");
    }

    #[test]
    fn defaults_fill_in_and_required_variables_must_have_a_value() {
        let t = Template::parse("SELECT {{n}}").unwrap();
        assert_eq!(t.required(), ["n"]);
        let err = t.bind(&BTreeMap::new(), &Values::default()).unwrap_err();
        assert_eq!(err.to_string(), "variable `n`: needs a value");
        let mut d = decls(&[("n", VarType::Number)]);
        d.get_mut("n").unwrap().default = Some("2.5".into());
        let b = t.bind(&d, &Values::default()).unwrap();
        assert_eq!(b.params, [Param::Float(2.5)]);
    }

    #[test]
    fn typed_values_are_checked() {
        let t = Template::parse("SELECT {{n}}, {{d}}").unwrap();
        let d = decls(&[("n", VarType::Number), ("d", VarType::Date)]);
        let err = t
            .bind(
                &d,
                &Values::from_pairs([("n", "1; DROP"), ("d", "2024-01-01")]),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("`1; DROP` is not a number"),
            "{err}"
        );
        let err = t
            .bind(&d, &Values::from_pairs([("n", "1"), ("d", "yesterday")]))
            .unwrap_err();
        assert!(err.to_string().contains("is not a date"), "{err}");
        let err = Template::parse("SELECT {{r}}")
            .unwrap()
            .bind(
                &decls(&[("r", VarType::DateRange)]),
                &Values::from_pairs([("r", "2024-01-01..2024-02-01")]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("{{name.from}}"), "{err}");
        assert!(parse_range("2024-02-01..2024-01-01").is_err());
    }

    #[test]
    fn quotes_and_comments_are_left_alone() {
        let t = Template::parse(
            "SELECT '{{not}}', \"{{col}}\" -- {{nor}}\n/* [[ {{this}} ]] */ FROM t WHERE x = {{yes}}",
        )
        .unwrap();
        assert_eq!(t.variables(), ["yes"]);
        let b = t
            .bind(&BTreeMap::new(), &Values::from_pairs([("yes", "1")]))
            .unwrap();
        assert!(
            b.sql
                .starts_with("SELECT '{{not}}', \"{{col}}\" -- {{nor}}\n/* [[ {{this}} ]] */")
        );
    }

    #[test]
    fn malformed_templates_say_what_is_wrong() {
        for (sql, needle) in [
            ("SELECT {{x", "no closing"),
            ("SELECT {{x y}}", "not a variable name"),
            ("SELECT {{x.y}}", "`.from` or `.to`"),
            ("SELECT 1 [[ AND a = {{a}}", "no closing `]]`"),
            ("SELECT 1 [[ [[ {{a}} ]] ]]", "do not nest"),
            ("SELECT 1 [[ AND true ]]", "holds no variable"),
        ] {
            let err = Template::parse(sql).unwrap_err().to_string();
            assert!(err.contains(needle), "{sql}: {err}");
        }
    }
}
