//! Property tests of the dbt project loader and the model renderer (issue 27, the CI share of
//! fuzzing), seeded from the shipped `models/` folder: one of its YAML files (dbt_project.yml,
//! schema.yml, sources.yml) or one model's Jinja SQL is damaged (cut short, bytes flipped,
//! YAML or Jinja fragments and odd values inserted, lines deleted, repeated, swapped or
//! re-indented), then the project is loaded ([`Project::from_files`]) and planned
//! ([`Runner::plan`], which renders every model: `ref`, `source`, `config`, `var`,
//! `is_incremental`, the shipped macros).
//!
//! Invariants: nothing panics; a refused YAML file is named in the error, with the line the
//! YAML library gives; a model that does not render is named, with the line of the model's
//! own text the Jinja library gives.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`] per property).

#[path = "../../magpie-core/tests/mutate/mod.rs"]
mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use magpie_models::ModelsError;
use magpie_models::project::{Project, ProjectFile};
use magpie_models::runner::Runner;
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 400;

/// YAML's syntax, and values the loader's fields do not take.
const YAML: &[&str] = &[
    ": ",
    "- ",
    "-",
    ":",
    "#",
    "? ",
    "|",
    ">",
    "&a ",
    "*a",
    "*b",
    "!!str ",
    "!!binary ",
    "!!int ",
    "!custom ",
    "<<: *a",
    "{",
    "}",
    "[",
    "]",
    ",",
    "%YAML 1.2\n---\n",
    "---\n",
    "...\n",
    "\n  - name: x\n",
    "\nmodels:\n",
    "\nsources:\n  - name: s\n",
    "\nseeds:\n  - name: genre_families\n",
    "name: ",
    "columns:",
    "tests:",
    "data_tests: [unique]",
    "- unique\n",
    "- not_null\n",
    "accepted_values: {values: 1}",
    "relationships: {to: ref('x'), field: y}",
    "vars: [1]",
    "model-paths: 3",
    "{a: [b: {c",
    "\"unterminated",
    "'single",
    "key: value: other",
];

/// Jinja's syntax and dbt's functions, used right and wrong.
const JINJA: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{ ",
    " }}",
    "{%-",
    "-%}",
    "{% if %}",
    "{% if is_incremental() %}",
    "{% endif %}",
    "{% else %}",
    "{% for x in [1,2] %}",
    "{% endfor %}",
    "{% macro m(a) %}",
    "{% endmacro %}",
    "{% set x = 1 %}",
    "{{ x }}",
    "{{ ref('fact_plays') }}",
    "{{ ref('no_such_model') }}",
    "{{ ref() }}",
    "{{ ref(1) }}",
    "{{ ref('a', 'b', 'c') }}",
    "{{ source('raw', 'listen_events') }}",
    "{{ source('x', 'y') }}",
    "{{ source('raw') }}",
    "{{ config(materialized='table') }}",
    "{{ config(materialized='snapshot') }}",
    "{{ config(materialized=1) }}",
    "{{ config(unique_key=1) }}",
    "{{ config(unique_key=[1]) }}",
    "{{ config(tags={}) }}",
    "{{ config(schema=none) }}",
    "{{ config('positional') }}",
    "{{ var('min_play_ms') }}",
    "{{ var('no_such_var') }}",
    "{{ var() }}",
    "{{ var('x', 1) }}",
    "{{ env_var('NO_SUCH_VARIABLE_FOR_FUZZ') }}",
    "{{ env_var('NO_SUCH_VARIABLE_FOR_FUZZ', 'd') }}",
    "{{ generate_surrogate_key(['a', 'b']) }}",
    "{{ generate_surrogate_key(1) }}",
    "{{ dbt_utils.generate_surrogate_key() }}",
    "{{ dbt_utils.nope() }}",
    "{{ this }}",
    "{{ this.name }}",
    "{{ target.schema }}",
    "{{ normalise_name('x') }}",
    "{{ normalise_name() }}",
    "{{ 1 / 0 }}",
    "{{ 'a' ~ 1 }}",
    "{{ [1][5] }}",
    "{{ none.x }}",
    "{{ x|nofilter }}",
    "{{ caller() }}",
    "{% call %}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
    "{% extends 'x' %}",
    "{% block b %}",
    "{% endblock %}",
    "{% raw %}",
    "{% endraw %}",
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: mutate::cases(DEFAULT_CASES),
        ..ProptestConfig::default()
    }
}

/// The shipped project's files, as the loader reads them from a folder.
fn shipped() -> &'static [ProjectFile] {
    static FILES: OnceLock<Vec<ProjectFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut files = Vec::new();
        read_dir(&root, &root, &mut files);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    })
}

fn read_dir(root: &Path, dir: &Path, out: &mut Vec<ProjectFile>) {
    for entry in std::fs::read_dir(dir).expect("the shipped models are readable") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            read_dir(root, &path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("sql" | "yml" | "csv")
        ) {
            out.push(ProjectFile {
                path: path
                    .strip_prefix(root)
                    .expect("under the root")
                    .to_path_buf(),
                text: std::fs::read_to_string(&path).expect("UTF-8"),
            });
        }
    }
}

/// The shipped files whose path satisfies `pick`.
fn seeds(pick: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    shipped()
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| pick(p))
        .collect()
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yml")
}

fn is_model(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "sql") && !p.starts_with("macros") && !p.starts_with("tests")
}

/// The shipped project with `path`'s text replaced.
fn with_file(path: &Path, text: String) -> Vec<ProjectFile> {
    shipped()
        .iter()
        .map(|f| ProjectFile {
            path: f.path.clone(),
            text: if f.path == path {
                text.clone()
            } else {
                f.text.clone()
            },
        })
        .collect()
}

/// Load and plan a project: its error, if any.
fn load_and_plan(files: Vec<ProjectFile>) -> Result<(), ModelsError> {
    let project = Project::from_files(files)?;
    let conn = duckdb::Connection::open_in_memory().expect("an in-memory DuckDB");
    Runner::new(&conn, &project).plan(&BTreeMap::new())?;
    Ok(())
}

/// The line of the YAML library's error reading `text` whatever its types (a syntax error;
/// `None` inside when the library gives no line, e.g. for a second document).
fn yaml_syntax_error_line(text: &str) -> Option<Option<usize>> {
    serde_yaml_ng::from_str::<serde::de::IgnoredAny>(text)
        .err()
        .map(|e| e.location().map(|l| l.line()))
}

/// N of the first "line N:" in `message`.
fn line_of(message: &str) -> Option<usize> {
    let (_, after) = message.split_once("line ")?;
    let (n, _) = after.split_once(':')?;
    n.parse().ok()
}

#[test]
fn the_shipped_project_loads_and_plans() {
    assert!(seeds(is_yaml).len() >= 4, "{:?}", seeds(is_yaml));
    assert!(seeds(is_model).len() >= 20, "{:?}", seeds(is_model));
    load_and_plan(shipped().to_vec()).unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn damaged_yaml_is_refused_naming_the_file_and_line(
        which in any::<Index>(),
        edits in mutate::edits(YAML, 3),
    ) {
        let yaml = seeds(is_yaml);
        let path = &yaml[which.index(yaml.len())];
        let original = &shipped().iter().find(|f| &f.path == path).unwrap().text;
        let text = mutate::apply(original, &edits);
        let Err(e) = load_and_plan(with_file(path, text.clone())) else {
            return Ok(());
        };
        let message = e.to_string();
        // A YAML file the loader refuses is named; a project it loads may still fail to
        // plan for another file's sake (a model whose ref() a schema change broke).
        if let ModelsError::Project(_) = e {
            let named = path.display().to_string();
            prop_assert!(message.contains(&named), "{message:?} does not name {named}");
            // serde_yaml_ng reads as it parses: a field of the wrong type before the syntax
            // error can be the error, at its own line.
            if let Some(Some(_)) = yaml_syntax_error_line(&text) {
                prop_assert!(line_of(&message).is_some(), "{message:?} gives no line\n{text}");
            }
        } else {
            prop_assert!(yaml_syntax_error_line(&text).is_none(), "{message}");
        }
    }

    #[test]
    fn damaged_models_are_refused_naming_the_file_and_line(
        which in any::<Index>(),
        edits in mutate::edits(JINJA, 3),
    ) {
        let models = seeds(is_model);
        let path = &models[which.index(models.len())];
        let original = &shipped().iter().find(|f| &f.path == path).unwrap().text;
        let text = mutate::apply(original, &edits);
        let Err(e) = load_and_plan(with_file(path, text.clone())) else {
            return Ok(());
        };
        let message = e.to_string();
        let named = path.display().to_string();
        match &e {
            ModelsError::Render { file, .. } if file == &named => {
                // A syntax error of the model's own text, where minijinja finds it in the
                // text alone.
                let mut env = minijinja::Environment::new();
                env.set_keep_trailing_newline(true);
                if let Err(syntax) = env.template_from_str(&text)
                    && let Some(line) = syntax.line()
                {
                    prop_assert!(
                        message.contains(&format!("line {line}:")),
                        "{message:?} does not give line {line}\n{text}"
                    );
                }
            }
            // A stem that is another model's name is refused by the loader, naming both.
            ModelsError::Project(m) => prop_assert!(m.contains(&named), "{message}"),
            // An unknown ref or a cycle (only this model changed) names its file.
            ModelsError::Graph(m) => prop_assert!(m.contains(&named), "{message}"),
            _ => prop_assert!(false, "{message:?} does not name {named}"),
        }
    }
}
