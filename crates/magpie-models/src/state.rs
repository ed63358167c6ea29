//! Incremental state: what each incremental model was last built from, so that a change the
//! model's own `is_incremental()` branch cannot see rebuilds it in full.
//!
//! dbt leaves that to the user (`--full-refresh`); magpie keeps, per incremental model, a
//! fingerprint in `meta.incremental_state` of everything its rows depend on besides the new
//! rows of append-only sources: its SQL and every ancestor's (models and seeds), the macros,
//! the vars, and the contents of every source it reads (directly or through ancestors) that is
//! not marked `meta: {append_only: true}` in a sources file. A new fingerprint, a model built
//! in full upstream, or `--full-refresh` rebuilds the model from scratch; otherwise its
//! `is_incremental()` branch runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use duckdb::{Connection, OptionalExt};

use crate::ModelsError;
use crate::project::Project;
use crate::render::Materialized;
use crate::runner::Plan;

/// The fingerprint of every incremental model of `plan`, from `vars` (the project's merged
/// with the caller's, without per-run values such as a watermark).
pub fn fingerprints(
    conn: &Connection,
    project: &Project,
    plan: &Plan,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ModelsError> {
    let mut digests: HashMap<(String, String), String> = HashMap::new();
    let mut out = BTreeMap::new();
    let vars = serde_json::to_string(vars).unwrap_or_default();
    for (name, config) in &plan.configs {
        if config.materialized != Materialized::Incremental {
            continue;
        }
        let mut nodes = ancestors(plan, name);
        nodes.insert(name.clone());
        let mut text = format!("macros\n{}\nvars\n{vars}\n", project.macros);
        let mut sources = BTreeSet::new();
        for node in &nodes {
            if let Some(model) = project.model(node) {
                text.push_str(&format!("model {node}\n{}\n", model.sql));
                sources.extend(plan.sources.get(node).into_iter().flatten().cloned());
            } else if let Some(seed) = project.seeds.iter().find(|s| &s.name == node) {
                text.push_str(&format!(
                    "seed {node}\n{}\n{:?}\n",
                    seed.csv, seed.column_types
                ));
            }
        }
        for (source, table) in sources {
            if append_only(project, &source, &table) {
                continue;
            }
            let key = (source.clone(), table.clone());
            if !digests.contains_key(&key) {
                let digest = digest(conn, project, &source, &table);
                digests.insert(key.clone(), digest);
            }
            text.push_str(&format!("source {source}.{table} {}\n", digests[&key]));
        }
        let fingerprint: String = conn.query_row("SELECT md5(?)", [&text], |r| r.get(0))?;
        out.insert(name.clone(), fingerprint);
    }
    Ok(out)
}

/// The fingerprints recorded by earlier builds (none where the table does not exist).
pub fn recorded(conn: &Connection) -> BTreeMap<String, String> {
    let read = || -> duckdb::Result<BTreeMap<String, String>> {
        let mut stmt = conn.prepare("SELECT model, fingerprint FROM meta.incremental_state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    };
    read().unwrap_or_default()
}

/// Forget what `models` were built from, before a build runs them: each records its
/// fingerprint again when it succeeds, so one that fails, is skipped or is killed on the way is
/// rebuilt in full by the next build, as is every incremental model below one that ran (their
/// `is_incremental()` branch reads only what the current build wrote upstream: rows an earlier,
/// interrupted build wrote there would otherwise never reach them).
pub fn forget<'a>(
    conn: &Connection,
    models: impl IntoIterator<Item = &'a String>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare("DELETE FROM meta.incremental_state WHERE model = ?")?;
    for model in models {
        stmt.execute([model])?;
    }
    Ok(())
}

/// Record that `model` was built from `fingerprint`.
pub fn record(conn: &Connection, model: &str, fingerprint: &str) -> duckdb::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta.incremental_state VALUES (?, ?, current_timestamp)",
        [model, fingerprint],
    )
    .map(|_| ())
}

/// The incremental models to build from scratch: all with `full_refresh`, else those whose
/// fingerprint is new and those below an incremental model built from scratch (in `order`,
/// parents first).
pub fn to_rebuild(
    plan: &Plan,
    order: &[String],
    now: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
    full_refresh: bool,
) -> BTreeSet<String> {
    let mut rebuild = BTreeSet::new();
    for name in order {
        let Some(fingerprint) = now.get(name) else {
            continue;
        };
        if full_refresh
            || before.get(name) != Some(fingerprint)
            || ancestors(plan, name).iter().any(|a| rebuild.contains(a))
        {
            rebuild.insert(name.clone());
        }
    }
    rebuild
}

/// Every node `name` reads, directly or through others.
fn ancestors(plan: &Plan, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_string()];
    while let Some(node) = stack.pop() {
        for parent in plan.dag.parents.get(&node).into_iter().flatten() {
            if seen.insert(parent.clone()) {
                stack.push(parent.clone());
            }
        }
    }
    seen
}

fn append_only(project: &Project, source: &str, table: &str) -> bool {
    project
        .sources
        .iter()
        .filter(|s| s.name == source)
        .flat_map(|s| &s.tables)
        .any(|t| t.name == table && t.append_only())
}

/// Row count and an order-independent hash of a source table's rows ("missing" when it cannot
/// be read: the model's own build will say why).
fn digest(conn: &Connection, project: &Project, source: &str, table: &str) -> String {
    let schema = project
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| s.schema.clone())
        .unwrap_or_else(|| source.to_string());
    let sql = format!(
        "SELECT count(*)::VARCHAR || ':' || coalesce(bit_xor(hash(t))::VARCHAR, '') FROM \"{}\".\"{}\" AS t",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    );
    conn.query_row(&sql, [], |r| r.get::<_, String>(0))
        .optional()
        .ok()
        .flatten()
        .unwrap_or_else(|| "missing".into())
}
