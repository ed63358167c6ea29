//! Data tests: dbt's generic tests from `schema.yml` (`unique`, `not_null`, `accepted_values`,
//! `relationships`) compiled to SQL that returns the failing rows, and singular tests
//! (`tests/*.sql`, failing when they return rows).

use serde_yaml_ng::Value as Yaml;

use crate::ModelsError;

/// One compiled test.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    /// dbt-like name, e.g. `unique_fact_plays_play_id`.
    pub name: String,
    /// The model it is attached to.
    pub model: String,
    /// Other models it reads (relationships), so it runs after them.
    pub depends_on: Vec<String>,
    /// SQL returning the failing rows; `{model}`-style placeholders already resolved by the
    /// caller through `resolve`.
    pub kind: TestKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestKind {
    Unique {
        column: String,
    },
    NotNull {
        column: String,
    },
    AcceptedValues {
        column: String,
        values: Vec<String>,
    },
    Relationships {
        column: String,
        to_model: String,
        field: String,
    },
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl DataTest {
    /// SQL selecting the failing rows, given the relations of the models.
    pub fn sql(&self, relation_of: &dyn Fn(&str) -> Option<String>) -> Result<String, ModelsError> {
        let rel = relation_of(&self.model).ok_or_else(|| {
            ModelsError::Test(format!("{}: no model `{}`", self.name, self.model))
        })?;
        Ok(match &self.kind {
            TestKind::Unique { column } => {
                let c = quote(column);
                format!(
                    "SELECT {c} AS unique_field, count(*) AS n FROM {rel} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
                )
            }
            TestKind::NotNull { column } => {
                format!("SELECT * FROM {rel} WHERE {} IS NULL", quote(column))
            }
            TestKind::AcceptedValues { column, values } => {
                let list: Vec<String> = values.iter().map(|v| literal(v)).collect();
                let c = quote(column);
                format!(
                    "SELECT {c} AS value_field, count(*) AS n FROM {rel} WHERE CAST({c} AS VARCHAR) NOT IN ({}) GROUP BY {c}",
                    list.join(", ")
                )
            }
            TestKind::Relationships {
                column,
                to_model,
                field,
            } => {
                let parent = relation_of(to_model).ok_or_else(|| {
                    ModelsError::Test(format!(
                        "{}: relationships test refers to unknown model `{to_model}`",
                        self.name
                    ))
                })?;
                let (c, f) = (quote(column), quote(field));
                format!(
                    "SELECT child.{c} FROM {rel} AS child LEFT JOIN {parent} AS parent ON child.{c} = parent.{f} \
                     WHERE child.{c} IS NOT NULL AND parent.{f} IS NULL"
                )
            }
        })
    }
}

/// `ref('name')` inside a test argument → `name`.
fn ref_target(text: &str) -> String {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix("ref(").and_then(|r| r.strip_suffix(')')) {
        inner
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string()
    } else {
        t.to_string()
    }
}

fn yaml_str(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compile one column test entry from schema.yml (`- unique`, or `- accepted_values: {values: [...]}`).
pub fn compile_column_test(
    model: &str,
    column: &str,
    spec: &Yaml,
) -> Result<DataTest, ModelsError> {
    let (kind_name, args) = match spec {
        Yaml::String(s) => (s.clone(), None),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            (yaml_str(k).unwrap_or_default(), Some(v.clone()))
        }
        other => {
            return Err(ModelsError::Test(format!(
                "{model}.{column}: cannot read the test {other:?}"
            )));
        }
    };
    // dbt 1.8+ nests arguments under `arguments:`; older files put them directly.
    let args = args.map(|a| match a.get("arguments") {
        Some(inner) => inner.clone(),
        None => a,
    });
    let arg = |key: &str| args.as_ref().and_then(|a| a.get(key)).cloned();
    let kind = match kind_name.as_str() {
        "unique" => TestKind::Unique {
            column: column.into(),
        },
        "not_null" => TestKind::NotNull {
            column: column.into(),
        },
        "accepted_values" => {
            let values = arg("values")
                .and_then(|v| v.as_sequence().cloned())
                .ok_or_else(|| {
                    ModelsError::Test(format!(
                        "{model}.{column}: accepted_values needs `values: [...]`"
                    ))
                })?;
            TestKind::AcceptedValues {
                column: column.into(),
                values: values.iter().filter_map(yaml_str).collect(),
            }
        }
        "relationships" => {
            let to = arg("to").and_then(|v| yaml_str(&v)).ok_or_else(|| {
                ModelsError::Test(format!(
                    "{model}.{column}: relationships needs `to: ref('model')`"
                ))
            })?;
            let field = arg("field").and_then(|v| yaml_str(&v)).ok_or_else(|| {
                ModelsError::Test(format!("{model}.{column}: relationships needs `field:`"))
            })?;
            TestKind::Relationships {
                column: column.into(),
                to_model: ref_target(&to),
                field,
            }
        }
        other => {
            return Err(ModelsError::Test(format!(
                "{model}.{column}: unknown test `{other}` (supported: unique, not_null, accepted_values, relationships)"
            )));
        }
    };
    let depends_on = match &kind {
        TestKind::Relationships { to_model, .. } => vec![to_model.clone()],
        _ => vec![],
    };
    let name = match &kind {
        TestKind::Relationships {
            to_model, field, ..
        } => format!("relationships_{model}_{column}__{field}__{to_model}"),
        _ => format!("{kind_name}_{model}_{column}"),
    };
    Ok(DataTest {
        name,
        model: model.into(),
        depends_on,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Yaml {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn compiles_each_generic_test() {
        let rel = |m: &str| Some(format!("\"marts\".\"{m}\""));
        let t = compile_column_test("fact", "id", &yaml("unique")).unwrap();
        assert!(t.sql(&rel).unwrap().contains("HAVING count(*) > 1"));
        let t = compile_column_test(
            "fact",
            "kind",
            &yaml("accepted_values:\n  values: ['a', 'b']"),
        )
        .unwrap();
        assert!(t.sql(&rel).unwrap().contains("NOT IN ('a', 'b')"));
        let t = compile_column_test(
            "fact",
            "k",
            &yaml("relationships:\n  arguments:\n    to: ref('dim')\n    field: k"),
        )
        .unwrap();
        assert_eq!(t.depends_on, vec!["dim"]);
        assert!(t.sql(&rel).unwrap().contains("LEFT JOIN \"marts\".\"dim\""));
        assert!(compile_column_test("fact", "k", &yaml("mystery")).is_err());
    }
}
