//! Rendering a model's SQL with minijinja, providing what dbt provides to templates:
//! `ref()`, `source()`, `config()`, `var()`, `this`, `is_incremental()`, `env_var()`, and
//! `generate_surrogate_key()` (also as `dbt_utils.generate_surrogate_key()`), which compiles to
//! exactly the SQL dbt-utils produces so keys agree under both tools.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// How a model is materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Materialized {
    #[default]
    View,
    Table,
    Incremental,
    Ephemeral,
}

/// What a model's `config()` call said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelConfig {
    pub materialized: Materialized,
    pub schema: Option<String>,
    pub unique_key: Vec<String>,
    /// `append` or `delete+insert` (the default when a unique key is given).
    pub incremental_strategy: Option<String>,
    pub tags: Vec<String>,
    /// dbt's `post_hook`: SQL run after the model is built, in the same transaction, as
    /// written (a template itself: `{{ this }}`, `{{ ref(...) }}`; rendered with the model).
    pub post_hook: Vec<String>,
}

/// The result of rendering one template.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub sql: String,
    pub refs: Vec<String>,
    pub sources: Vec<(String, String)>,
    pub config: ModelConfig,
    /// The config's `post_hook` statements, rendered.
    pub post_hooks: Vec<String>,
}

/// Everything a template can see.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// Relation names of every model, by model name (`"marts"."fact_plays"`).
    pub relations: BTreeMap<String, String>,
    /// Schema of every source, by source name.
    pub source_schemas: BTreeMap<String, String>,
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The relation being built (`this`).
    pub this: Option<String>,
    /// Whether `is_incremental()` is true for this render.
    pub incremental: bool,
    /// dbt's `invocation_id`: the same for every model of one build, new for the next (magpie
    /// uses the build's run id).
    pub invocation_id: String,
    /// In discovery mode unknown refs do not fail (the DAG reports them with file names).
    pub discovery: bool,
}

#[derive(Default)]
struct Capture {
    refs: Vec<String>,
    sources: Vec<(String, String)>,
    config: ModelConfig,
}

/// Why a template did not render: minijinja's message, and the line of the template's own
/// text. The macros are rendered in front of the template, so minijinja's line counts theirs
/// too; this one does not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    /// 1-based line of the template; `None` when minijinja gives none, or the error is in the
    /// macros (the message says so).
    pub line: Option<usize>,
    pub message: String,
}

impl RenderError {
    /// `e` from rendering a source whose first `macro_lines` lines are the macros.
    fn new(e: &Error, macro_lines: usize) -> Self {
        let what = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        match e.line() {
            Some(line) if line > macro_lines => Self {
                line: Some(line - macro_lines),
                message: what,
            },
            Some(line) => Self {
                line: None,
                message: format!(
                    "{what} (in the macros, line {line} of macro-paths' files joined)"
                ),
            },
            None => Self {
                line: None,
                message: what,
            },
        }
    }
}

/// The SQL dbt-utils' `generate_surrogate_key` compiles to on DuckDB.
pub fn surrogate_key_sql(fields: &[String]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("coalesce(cast({f} as VARCHAR), '_dbt_utils_surrogate_key_null_')"))
        .collect();
    format!("md5(cast({} as VARCHAR))", parts.join(" || '-' || "))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A relation name `"schema"."name"`.
pub fn relation(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

fn strings(value: &Value) -> Result<Vec<String>, Error> {
    if let Some(s) = value.as_str() {
        return Ok(vec![s.to_string()]);
    }
    value
        .try_iter()?
        .map(|v| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, "expected a list of strings")
            })
        })
        .collect()
}

/// Render `template` (with `macros` prepended) in `ctx`. An error's line is the template's.
pub fn render(
    name: &str,
    template: &str,
    macros: &str,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let capture = Arc::new(Mutex::new(Capture::default()));
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);

    {
        let capture = capture.clone();
        let relations = ctx.relations.clone();
        let discovery = ctx.discovery;
        env.add_function("ref", move |args: &[Value]| -> Result<Value, Error> {
            // ref('model') or ref('package', 'model')
            let model = args
                .last()
                .and_then(Value::as_str)
                .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "ref() needs a model name"))?
                .to_string();
            capture.lock().expect("capture").refs.push(model.clone());
            match relations.get(&model) {
                Some(rel) => Ok(Value::from(rel.clone())),
                None if discovery => Ok(Value::from(quote(&model))),
                None => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("ref('{model}'): no model of that name"),
                )),
            }
        });
    }
    {
        let capture = capture.clone();
        let schemas = ctx.source_schemas.clone();
        env.add_function(
            "source",
            move |source: String, table: String| -> Result<Value, Error> {
                capture
                    .lock()
                    .expect("capture")
                    .sources
                    .push((source.clone(), table.clone()));
                let schema = schemas.get(&source).cloned().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "source('{source}', '{table}'): no source `{source}` in any schema.yml"
                        ),
                    )
                })?;
                Ok(Value::from(relation(&schema, &table)))
            },
        );
    }
    {
        let capture = capture.clone();
        env.add_function("config", move |kwargs: Kwargs| -> Result<Value, Error> {
            let mut cap = capture.lock().expect("capture");
            if let Some(m) = kwargs.get::<Option<String>>("materialized")? {
                cap.config.materialized = match m.as_str() {
                    "view" => Materialized::View,
                    "table" => Materialized::Table,
                    "incremental" => Materialized::Incremental,
                    "ephemeral" => Materialized::Ephemeral,
                    other => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            format!("materialized='{other}': expected view, table, incremental or ephemeral"),
                        ));
                    }
                };
            }
            if let Some(s) = kwargs.get::<Option<String>>("schema")? {
                cap.config.schema = Some(s);
            }
            if let Some(k) = kwargs.get::<Option<Value>>("unique_key")? {
                cap.config.unique_key = strings(&k)?;
            }
            if let Some(s) = kwargs.get::<Option<String>>("incremental_strategy")? {
                cap.config.incremental_strategy = Some(s);
            }
            if let Some(t) = kwargs.get::<Option<Value>>("tags")? {
                cap.config.tags = strings(&t)?;
            }
            if let Some(h) = kwargs.get::<Option<Value>>("post_hook")? {
                cap.config.post_hook = strings(&h)?;
            }
            // Other dbt configs (alias, docs, meta, ...) are accepted and ignored.
            Ok(Value::from(""))
        });
    }
    {
        let vars = ctx.vars.clone();
        env.add_function(
            "var",
            // `var('x', none)` has a default (none), `var('x')` has none: a second argument
            // counts whatever its value.
            move |name: String, default: minijinja::value::Rest<Value>| -> Result<Value, Error> {
                match vars.get(&name) {
                    Some(v) => Ok(Value::from_serialize(v)),
                    None => default.0.first().cloned().ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "var('{name}') is not set in dbt_project.yml and has no default"
                            ),
                        )
                    }),
                }
            },
        );
    }
    env.add_function(
        "env_var",
        |name: String, default: Option<String>| -> Result<Value, Error> {
            match std::env::var(&name) {
                Ok(v) => Ok(Value::from(v)),
                Err(_) => default.map(Value::from).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("env_var('{name}') is not set"),
                    )
                }),
            }
        },
    );
    let incremental = ctx.incremental;
    env.add_function("is_incremental", move || incremental);
    env.add_function(
        "generate_surrogate_key",
        |fields: Value| -> Result<Value, Error> {
            Ok(Value::from(surrogate_key_sql(&strings(&fields)?)))
        },
    );
    env.add_global("dbt_utils", Value::from_object(DbtUtils));
    env.add_global("invocation_id", Value::from(ctx.invocation_id.clone()));
    env.add_global(
        "this",
        Value::from(ctx.this.clone().unwrap_or_else(|| quote(name))),
    );
    env.add_global(
        "target",
        Value::from_serialize(
            serde_json::json!({"type": "duckdb", "name": "magpie", "schema": "main"}),
        ),
    );

    let prefix = if macros.is_empty() || macros.ends_with('\n') {
        macros.to_string()
    } else {
        format!("{macros}\n")
    };
    let macro_lines = prefix.matches('\n').count();
    let source = format!("{prefix}{template}");
    let sql = env
        .render_str(&source, ())
        .map_err(|e| RenderError::new(&e, macro_lines))?;
    let hooks = capture.lock().expect("capture").config.post_hook.clone();
    let post_hooks = hooks
        .iter()
        .map(|hook| {
            env.render_str(&format!("{prefix}{hook}"), ())
                .map(|sql| sql.trim().to_string())
                .map_err(|e| RenderError {
                    line: None,
                    message: format!("post_hook {hook:?}: {}", RenderError::new(&e, macro_lines)),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cap = std::mem::take(&mut *capture.lock().expect("capture"));
    Ok(Rendered {
        sql: sql.trim().to_string(),
        refs: cap.refs,
        sources: cap.sources,
        config: cap.config,
        post_hooks,
    })
}

/// `dbt_utils.generate_surrogate_key(...)` for templates written against dbt-utils.
#[derive(Debug)]
struct DbtUtils;

impl minijinja::value::Object for DbtUtils {
    fn call_method(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "generate_surrogate_key" => {
                let fields = args.first().ok_or_else(|| {
                    Error::new(
                        ErrorKind::MissingArgument,
                        "generate_surrogate_key needs a list",
                    )
                })?;
                Ok(Value::from(surrogate_key_sql(&strings(fields)?)))
            }
            other => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("dbt_utils.{other} is not provided"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RenderContext {
        let mut c = RenderContext::default();
        c.relations.insert("stg".into(), relation("staging", "stg"));
        c.source_schemas.insert("raw".into(), "raw".into());
        c.vars.insert("min_ms".into(), serde_json::json!(30000));
        c
    }

    #[test]
    fn a_var_defaults_to_none_when_given_none() {
        let r = render(
            "m",
            "{{ var('unset', none) is none }} {{ var('unset', 3) }}",
            "",
            &ctx(),
        )
        .unwrap();
        assert_eq!(r.sql, "True 3");
        let e = render("m", "{{ var('unset') }}", "", &ctx()).unwrap_err();
        assert!(e.message.contains("var('unset') is not set"), "{e:?}");
    }

    #[test]
    fn dbt_functions_render() {
        let r = render(
            "m",
            "{{ config(materialized='incremental', unique_key=['a','b'], schema='marts') }}\
             select {{ generate_surrogate_key(['a', 'b']) }} as k from {{ ref('stg') }} \
             join {{ source('raw', 'listen_events') }} using (x) where ms >= {{ var('min_ms') }} \
             {% if is_incremental() %}and t > (select max(t) from {{ this }}){% endif %}",
            "",
            &ctx(),
        )
        .unwrap();
        assert_eq!(r.refs, vec!["stg"]);
        assert_eq!(
            r.sources,
            vec![("raw".to_string(), "listen_events".to_string())]
        );
        assert_eq!(r.config.materialized, Materialized::Incremental);
        assert_eq!(r.config.unique_key, vec!["a", "b"]);
        assert!(r.sql.contains("\"staging\".\"stg\""));
        assert!(r.sql.contains("\"raw\".\"listen_events\""));
        assert!(r.sql.contains(">= 30000"));
        assert!(!r.sql.contains("max(t)"), "not incremental in this render");
        assert!(r.sql.contains(
            "md5(cast(coalesce(cast(a as VARCHAR), '_dbt_utils_surrogate_key_null_') || '-' || coalesce(cast(b as VARCHAR), '_dbt_utils_surrogate_key_null_') as VARCHAR))"
        ));
    }

    #[test]
    fn post_hooks_render_with_this_and_ref() {
        let mut c = ctx();
        c.this = Some(relation("marts", "m"));
        let r = render(
            "m",
            "{{ config(materialized='table', post_hook=\"delete from {{ this }} where k in (select k from {{ ref('stg') }})\") }}select 1 as k",
            "",
            &c,
        )
        .unwrap();
        assert_eq!(
            r.post_hooks,
            vec![r#"delete from "marts"."m" where k in (select k from "staging"."stg")"#]
        );
        assert_eq!(r.refs, vec!["stg"], "a hook's ref is a dependency");
        let none = render("m", "select 1", "", &c).unwrap();
        assert!(none.post_hooks.is_empty());
        let bad = render(
            "m",
            "{{ config(post_hook=[\"select {{ ref('nope') }}\"]) }}select 1",
            "",
            &c,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("post_hook"), "{bad}");
    }

    #[test]
    fn errors_name_what_is_missing() {
        let e = render("m", "select * from {{ ref('nope') }}", "", &ctx()).unwrap_err();
        assert!(e.to_string().contains("ref('nope')"), "{e}");
        let e = render("m", "{{ var('unset') }}", "", &ctx()).unwrap_err();
        assert!(e.to_string().contains("var('unset')"), "{e}");
        let e = render("m", "{{ config(materialized='snapshot') }}", "", &ctx()).unwrap_err();
        assert!(e.to_string().contains("snapshot"), "{e}");
    }

    /// Found by tests/fuzz_models.rs: the line of an error counted the macros' lines put
    /// before the model, so the shipped project's error on line 1 said line 19.
    #[test]
    fn regression_an_error_line_is_the_models_not_the_macros() {
        let macros = "{% macro a() %}\nx\n{% endmacro %}\n{% macro b() %}y{% endmacro %}\n";
        let e = render("m", "select 1,\n  {{ ref( }}", macros, &ctx()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(!e.message.contains("<string>"), "{e:?}");
        let e = render("m", "{{ onfig() }}", macros, &ctx()).unwrap_err();
        assert_eq!(e.line, Some(1), "{e:?}");
        // An error in the macros is not given a line of the model.
        let e = render("m", "select 1", "{% macro a( %}\n", &ctx()).unwrap_err();
        assert_eq!(e.line, None, "{e:?}");
        assert!(e.message.contains("in the macros"), "{e:?}");
    }

    #[test]
    fn macros_and_dbt_utils_namespace() {
        let r = render(
            "m",
            "select {{ twice('x') }}, {{ dbt_utils.generate_surrogate_key(['y']) }}",
            "{% macro twice(c) %}{{ c }} * 2{% endmacro %}",
            &ctx(),
        )
        .unwrap();
        assert!(r.sql.starts_with("select x * 2, md5("), "{}", r.sql);
    }
}
