//! `magpie build`: load seeds, render and order the models, materialise the selected ones,
//! run their data tests, and record every node's result in `meta.model_runs`.
//!
//! A model that fails stops its descendants (they are reported as skipped) and leaves its
//! previous relation in place, since each materialisation is one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use duckdb::{Connection, params};

use crate::ModelsError;
use crate::dag::Dag;
use crate::datatests::{self, DataTest};
use crate::materialize;
use crate::project::Project;
use crate::render::{self, Materialized, ModelConfig, RenderContext};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// dbt-style selector (`name`, `name+`, `+name`); all models when `None`.
    pub select: Option<String>,
    /// Rebuild incremental models from scratch.
    pub full_refresh: bool,
    /// Extra or overriding `var()` values.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Run data tests after the models (on by default in `magpie build`).
    pub run_tests: bool,
    /// Where seed CSVs are written for DuckDB to read.
    pub temp_dir: PathBuf,
}

/// The kind of a node in the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Seed,
    Model,
    Test,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Model => "model",
            Self::Test => "test",
        }
    }
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A data test found this many failing rows.
    Fail(u64),
    Error(String),
    /// Not run because something upstream failed.
    Skipped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Fail(_) => "fail",
            Self::Error(_) => "error",
            Self::Skipped => "skipped",
        }
    }
}

/// One node's result.
#[derive(Debug, Clone)]
pub struct NodeResult {
    pub kind: NodeKind,
    pub name: String,
    pub status: Status,
    pub rows: Option<u64>,
    pub duration: Duration,
    pub materialized: Option<Materialized>,
}

/// The whole build.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub run_id: i64,
    pub nodes: Vec<NodeResult>,
    pub elapsed: Duration,
}

impl BuildReport {
    pub fn ok(&self) -> bool {
        self.nodes.iter().all(|n| n.status == Status::Success)
    }

    pub fn count(&self, kind: NodeKind, status: &str) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.kind == kind && n.status.as_str() == status)
            .count()
    }
}

/// Builds a project in one warehouse connection.
pub struct Runner<'a> {
    conn: &'a Connection,
    project: &'a Project,
}

impl<'a> Runner<'a> {
    pub fn new(conn: &'a Connection, project: &'a Project) -> Self {
        Self { conn, project }
    }

    /// Render every model once to learn its refs and config.
    pub fn plan(&self, vars: &BTreeMap<String, serde_json::Value>) -> Result<Plan, ModelsError> {
        let mut ctx = self.base_context(vars, &BTreeMap::new());
        ctx.discovery = true;
        let mut configs = BTreeMap::new();
        let mut edges = Vec::new();
        for model in &self.project.models {
            let rendered = render::render(&model.name, &model.sql, &self.project.macros, &ctx)
                .map_err(|e| render_error(&model.path, &e))?;
            edges.push((model.name.clone(), model.path.clone(), dedup(rendered.refs)));
            configs.insert(model.name.clone(), rendered.config);
        }
        // Seeds are nodes too: models `ref()` them.
        for seed in &self.project.seeds {
            edges.push((seed.name.clone(), seed.path.clone(), vec![]));
        }
        let dag = Dag::new(edges)?;
        let mut relations: BTreeMap<String, String> = configs
            .iter()
            .map(|(name, cfg)| {
                (
                    name.clone(),
                    render::relation(cfg.schema.as_deref().unwrap_or("main"), name),
                )
            })
            .collect();
        for seed in &self.project.seeds {
            relations.insert(
                seed.name.clone(),
                render::relation(seed.schema.as_deref().unwrap_or("seeds"), &seed.name),
            );
        }
        Ok(Plan {
            dag,
            configs,
            relations,
        })
    }

    fn base_context(
        &self,
        vars: &BTreeMap<String, serde_json::Value>,
        relations: &BTreeMap<String, String>,
    ) -> RenderContext {
        let mut all_vars = self.project.vars.clone();
        all_vars.extend(vars.clone());
        RenderContext {
            relations: relations.clone(),
            source_schemas: self
                .project
                .sources
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        s.schema.clone().unwrap_or_else(|| s.name.clone()),
                    )
                })
                .collect(),
            vars: all_vars,
            this: None,
            incremental: false,
            discovery: false,
        }
    }

    /// Build: seeds, selected models in order, then their tests.
    pub fn build(
        &self,
        options: &BuildOptions,
        progress: &mut dyn FnMut(&NodeResult),
    ) -> Result<BuildReport, ModelsError> {
        let started = Instant::now();
        let plan = self.plan(&options.vars)?;
        let order = plan.dag.order()?;
        let selected: BTreeSet<String> = match &options.select {
            Some(sel) => plan.dag.select(sel)?,
            None => order.iter().cloned().collect(),
        };
        let run_id: i64 = self
            .conn
            .query_row("SELECT nextval('meta.model_run_seq')", [], |r| r.get(0))?;
        let mut report = BuildReport {
            run_id,
            ..Default::default()
        };
        let mut record =
            |result: NodeResult, report: &mut BuildReport| -> Result<(), ModelsError> {
                self.record(run_id, &result)?;
                progress(&result);
                report.nodes.push(result);
                Ok(())
            };

        for seed in &self.project.seeds {
            let t = Instant::now();
            let status = match crate::seeds::load(self.conn, seed, &options.temp_dir) {
                Ok(rows) => (Status::Success, Some(rows)),
                Err(e) => (Status::Error(e.to_string()), None),
            };
            record(
                NodeResult {
                    kind: NodeKind::Seed,
                    name: seed.name.clone(),
                    status: status.0,
                    rows: status.1,
                    duration: t.elapsed(),
                    materialized: None,
                },
                &mut report,
            )?;
        }
        let seeds_failed = report.nodes.iter().any(|n| n.status != Status::Success);

        let mut broken: BTreeSet<String> = BTreeSet::new();
        let ctx = self.base_context(&options.vars, &plan.relations);
        let is_seed = |name: &str| self.project.seeds.iter().any(|s| s.name == name);
        for name in order
            .iter()
            .filter(|n| selected.contains(*n) && !is_seed(n))
        {
            let t = Instant::now();
            let upstream_broken = plan.dag.parents[name].iter().any(|p| broken.contains(p));
            let cfg = &plan.configs[name];
            let result = if upstream_broken || seeds_failed {
                broken.insert(name.clone());
                Status::Skipped
            } else {
                match self.build_model(name, cfg, &ctx, &plan, options) {
                    Ok(rows) => {
                        record(
                            NodeResult {
                                kind: NodeKind::Model,
                                name: name.clone(),
                                status: Status::Success,
                                rows,
                                duration: t.elapsed(),
                                materialized: Some(cfg.materialized),
                            },
                            &mut report,
                        )?;
                        continue;
                    }
                    Err(e) => {
                        broken.insert(name.clone());
                        Status::Error(e.to_string())
                    }
                }
            };
            record(
                NodeResult {
                    kind: NodeKind::Model,
                    name: name.clone(),
                    status: result,
                    rows: None,
                    duration: t.elapsed(),
                    materialized: Some(cfg.materialized),
                },
                &mut report,
            )?;
        }

        if options.run_tests {
            for test in self.tests(&plan, &ctx)? {
                let (name, depends, sql) = test;
                if !depends.iter().all(|d| selected.contains(d)) {
                    continue;
                }
                let t = Instant::now();
                let status = if depends.iter().any(|d| broken.contains(d)) {
                    Status::Skipped
                } else {
                    match sql.and_then(|sql| {
                        self.conn
                            .query_row(&format!("SELECT count(*) FROM (\n{sql}\n)"), [], |r| {
                                r.get::<_, i64>(0)
                            })
                            .map_err(ModelsError::from)
                    }) {
                        Ok(0) => Status::Success,
                        Ok(n) => Status::Fail(n as u64),
                        Err(e) => Status::Error(e.to_string()),
                    }
                };
                record(
                    NodeResult {
                        kind: NodeKind::Test,
                        name,
                        status,
                        rows: None,
                        duration: t.elapsed(),
                        materialized: None,
                    },
                    &mut report,
                )?;
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn build_model(
        &self,
        name: &str,
        cfg: &ModelConfig,
        base: &RenderContext,
        plan: &Plan,
        options: &BuildOptions,
    ) -> Result<Option<u64>, ModelsError> {
        let model = self.project.model(name).expect("planned models exist");
        let schema = cfg.schema.clone().unwrap_or_else(|| "main".into());
        let relation = plan.relations[name].clone();
        let existing = materialize::existing_kind(self.conn, &schema, name)?;
        let incremental = cfg.materialized == Materialized::Incremental
            && existing.as_deref() == Some("BASE TABLE")
            && !options.full_refresh;
        let mut ctx = base.clone();
        ctx.this = Some(relation.clone());
        ctx.incremental = incremental;
        let rendered = render::render(name, &model.sql, &self.project.macros, &ctx)
            .map_err(|e| render_error(&model.path, &e))?;
        let build = || {
            materialize::materialize(
                self.conn,
                &schema,
                &relation,
                existing.as_deref(),
                &rendered.sql,
                cfg,
                incremental,
            )
        };
        let result = match build() {
            // Each DuckDB thread keeps its own buffers while writing a table; near the memory
            // limit (a large history on a small budget) one thread fits where two do not.
            // The failed attempt was rolled back, so the model is built again, single-threaded.
            Err(e) if is_out_of_memory(&e) => {
                tracing::warn!(
                    model = name,
                    "out of memory; building it again with one thread"
                );
                single_threaded(self.conn, build)
            }
            other => other,
        };
        result.map_err(|e| ModelsError::Render {
            file: model.path.display().to_string(),
            message: if is_out_of_memory(&e) {
                out_of_memory_message(self.conn, &e)
            } else {
                e.to_string()
            },
        })
    }

    /// Every test: (name, models it reads, SQL returning failing rows).
    #[allow(clippy::type_complexity)]
    fn tests(
        &self,
        plan: &Plan,
        ctx: &RenderContext,
    ) -> Result<Vec<(String, Vec<String>, Result<String, ModelsError>)>, ModelsError> {
        let relation_of = |m: &str| plan.relations.get(m).cloned();
        let mut out = Vec::new();
        for doc in self.project.model_docs.values() {
            if !plan.relations.contains_key(&doc.name) {
                return Err(ModelsError::Test(format!(
                    "schema.yml describes `{}`, but no model has that name",
                    doc.name
                )));
            }
            for column in &doc.columns {
                for spec in &column.tests {
                    let test: DataTest =
                        datatests::compile_column_test(&doc.name, &column.name, spec)?;
                    let mut depends = vec![test.model.clone()];
                    depends.extend(test.depends_on.clone());
                    out.push((test.name.clone(), depends, test.sql(&relation_of)));
                }
            }
        }
        for file in &self.project.singular_tests {
            let name = file
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rendered = render::render(&name, &file.text, &self.project.macros, ctx);
            let (depends, sql) = match rendered {
                Ok(r) => (dedup(r.refs), Ok(r.sql)),
                Err(e) => (vec![], Err(render_error(&file.path, &e))),
            };
            out.push((name, depends, sql));
        }
        Ok(out)
    }

    fn record(&self, run_id: i64, r: &NodeResult) -> Result<(), ModelsError> {
        let error = match &r.status {
            Status::Error(e) => Some(e.clone()),
            Status::Fail(n) => Some(format!("{n} failing row(s)")),
            _ => None,
        };
        self.conn.execute(
            "INSERT INTO meta.model_runs (run_id, node, kind, status, rows, duration_ms, finished_at, error)
             VALUES (?, ?, ?, ?, ?, ?, current_timestamp, ?)",
            params![
                run_id,
                r.name,
                r.kind.as_str(),
                r.status.as_str(),
                r.rows.map(|n| n as i64),
                r.duration.as_millis() as i64,
                error
            ],
        )?;
        Ok(())
    }
}

/// The planned build: graph, configs and relation names.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dag: Dag,
    pub configs: BTreeMap<String, ModelConfig>,
    pub relations: BTreeMap<String, String>,
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn render_error(path: &std::path::Path, e: &minijinja::Error) -> ModelsError {
    let mut message = e.to_string();
    if let Some(line) = e.line() {
        message = format!("line {line}: {message}");
    }
    ModelsError::Render {
        file: path.display().to_string(),
        message,
    }
}

fn is_out_of_memory(error: &duckdb::Error) -> bool {
    error.to_string().contains("Out of Memory Error")
}

/// DuckDB's first line, without its advice (SET threads, SET memory_limit) that a magpie user
/// cannot follow, and what the user can do instead.
fn out_of_memory_message(conn: &Connection, error: &duckdb::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    let limit: String = conn
        .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
        .unwrap_or_else(|_| "its limit".into());
    format!(
        "{first}\nThis model needs more memory than DuckDB's {limit}, even on one thread: \
         raise `memory_budget` in magpie.toml (DuckDB gets 40% of it)."
    )
}

/// Run `work` with DuckDB's `threads` set to 1, restoring the setting afterwards.
fn single_threaded<T>(
    conn: &Connection,
    work: impl FnOnce() -> duckdb::Result<T>,
) -> duckdb::Result<T> {
    let threads: i64 = conn.query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
        r.get(0)
    })?;
    conn.execute_batch("SET threads = 1")?;
    let result = work();
    conn.execute_batch(&format!("SET threads = {threads}"))?;
    result
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn single_threaded_runs_with_one_thread_and_restores_the_setting() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("SET threads = 2").unwrap();
        let inside: i64 = single_threaded(&conn, || {
            conn.query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
                r.get(0)
            })
        })
        .unwrap();
        assert_eq!(inside, 1);
        let after: i64 = conn
            .query_row("SELECT current_setting('threads')::BIGINT", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(after, 2);
        let oom = conn
            .execute_batch("SET memory_limit = '1MB'; SELECT count(*) FROM (SELECT range::VARCHAR || repeat('x', 100) AS s FROM range(2000000) ORDER BY s)")
            .unwrap_err();
        assert!(is_out_of_memory(&oom), "{oom}");
        let message = out_of_memory_message(&conn, &oom);
        assert!(message.starts_with("Out of Memory Error"), "{message}");
        assert!(message.contains("raise `memory_budget`"), "{message}");
        assert!(!message.contains("SET threads"), "{message}");
    }
}
