//! `magpie build`: load seeds, render and order the models, materialise the selected ones,
//! run their data tests, and record every node's result in `meta.model_runs`.
//!
//! Seeds, models and tests run as soon as what they read is built, several at once
//! ([`BuildOptions::threads`], each on a DuckDB connection of its own), longest chain first
//! ([`crate::schedule`]). A seed or model that fails stops its descendants (they are reported
//! as skipped) and leaves its previous relation in place, since each load or materialisation
//! is one statement or transaction.

mod node;
mod pool;
mod record;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use duckdb::Connection;

use crate::ModelsError;
use crate::dag::Dag;
use crate::datatests::{self, DataTest};
use crate::project::Project;
use crate::render::{self, Materialized, ModelConfig, RenderContext};
use crate::schedule::Schedule;
use node::{ModelAttempt, TestAttempt};
use pool::{Attempt, Event};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// dbt-style selector (`name`, `name+`, `+name`); all models when `None`.
    pub select: Option<String>,
    /// Rebuild incremental models from scratch.
    pub full_refresh: bool,
    /// Extra or overriding `var()` values.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// `var()` values for this run only (a watermark): rendered like `vars`, but no part of
    /// what an incremental model is built from, so a new value does not rebuild it in full.
    pub run_vars: BTreeMap<String, serde_json::Value>,
    /// Run data tests after the models (on by default in `magpie build`).
    pub run_tests: bool,
    /// Where seed CSVs are written for DuckDB to read.
    pub temp_dir: PathBuf,
    /// Nodes built at once, each on a connection of its own (0 counts as 1).
    pub threads: usize,
    /// With several threads: models still one at a time, only tests beside them (DuckDB's
    /// memory is shared by every connection, and two large models may not fit in it).
    pub one_model_at_a_time: bool,
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
    /// An incremental model that ran its `is_incremental()` branch (false when it was built
    /// from scratch).
    pub incremental: bool,
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

/// Builds a project in the warehouse of `conn` (on connections cloned from it when several
/// nodes run at once).
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
        let mut sources = BTreeMap::new();
        let mut edges = Vec::new();
        for model in &self.project.models {
            let rendered = render::render(&model.name, &model.sql, &self.project.macros, &ctx)
                .map_err(|e| render_error(&model.path, &e))?;
            edges.push((model.name.clone(), model.path.clone(), dedup(rendered.refs)));
            configs.insert(model.name.clone(), rendered.config);
            sources.insert(model.name.clone(), rendered.sources);
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
            sources,
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
            invocation_id: String::new(),
        }
    }

    /// Build the seeds, the selected models and their tests, each as soon as what it reads is
    /// built.
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
        let mut recorder = record::Recorder::new(self.conn, run_id);
        let mut record =
            |result: NodeResult, report: &mut BuildReport| -> Result<(), ModelsError> {
                recorder.push(&result)?;
                progress(&result);
                report.nodes.push(result);
                Ok(())
            };

        let mut all_vars = options.vars.clone();
        all_vars.extend(options.run_vars.clone());
        let mut ctx = self.base_context(&all_vars, &plan.relations);
        ctx.invocation_id = run_id.to_string();
        let seeds = &self.project.seeds;
        let is_seed = |name: &str| seeds.iter().any(|s| s.name == name);
        let models: Vec<&String> = order
            .iter()
            .filter(|n| selected.contains(*n) && !is_seed(n))
            .collect();
        let tests = if options.run_tests {
            self.tests(&plan, &ctx)?
                .into_iter()
                .filter(|(_, depends, _)| depends.iter().all(|d| selected.contains(d)))
                .collect()
        } else {
            Vec::new()
        };

        // Every node: the seeds (every build loads them all, as `dbt build` does), the models
        // (in build order), then the tests. A seed is a node like the others: it loads beside
        // the first models, and one that fails to load skips only what reads it.
        let index: HashMap<&str, usize> = seeds
            .iter()
            .map(|s| s.name.as_str())
            .chain(models.iter().map(|m| m.as_str()))
            .enumerate()
            .map(|(i, name)| (name, i))
            .collect();
        let mut depends_on: Vec<Vec<usize>> = vec![Vec::new(); seeds.len()];
        depends_on.extend(models.iter().map(|m| {
            plan.dag.parents[m.as_str()]
                .iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect()
        }));
        depends_on.extend(tests.iter().map(|(_, depends, _)| {
            depends
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        }));
        let names: Vec<(NodeKind, &str)> = seeds
            .iter()
            .map(|s| (NodeKind::Seed, s.name.as_str()))
            .chain(models.iter().map(|m| (NodeKind::Model, m.as_str())))
            .chain(
                tests
                    .iter()
                    .map(|(name, _, _)| (NodeKind::Test, name.as_str())),
            )
            .collect();
        let last = self.last_durations();
        let cost = names
            .iter()
            .map(|(kind, name)| {
                let default = if *kind == NodeKind::Model { 10 } else { 1 };
                last.get(&(kind.as_str(), name.to_string()))
                    .copied()
                    .unwrap_or(default)
                    + 1
            })
            .collect();
        let schedule = Schedule::new(depends_on, cost).one_at_a_time(
            names
                .iter()
                .map(|(kind, _)| options.one_model_at_a_time && *kind == NodeKind::Model)
                .collect(),
        );

        // Schemas first, once each: two connections creating one schema at once would conflict.
        let schemas: BTreeSet<&str> = models
            .iter()
            .map(|m| plan.configs[m.as_str()].schema.as_deref())
            .chain(
                seeds
                    .iter()
                    .map(|s| Some(s.schema.as_deref().unwrap_or("seeds"))),
            )
            .flatten()
            .collect();
        for schema in schemas {
            self.conn
                .execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        }
        let connections = (0..options.threads.max(1).min(names.len().max(1)))
            .map(|_| self.conn.try_clone())
            .collect::<Result<Vec<_>, _>>()?;
        let existing = crate::materialize::existing_relations(self.conn)?;
        let mut fingerprint_vars = self.project.vars.clone();
        fingerprint_vars.extend(options.vars.clone());
        let fingerprints =
            crate::state::fingerprints(self.conn, self.project, &plan, &fingerprint_vars)?;
        let rebuild = crate::state::to_rebuild(
            &plan,
            &order,
            &fingerprints,
            &crate::state::recorded(self.conn),
            options.full_refresh,
        );
        // Every incremental model this build runs, and every one below them, is rebuilt in full
        // next time unless it succeeds now (see `state::forget`).
        let mut unsure: BTreeSet<String> = BTreeSet::new();
        for model in models
            .iter()
            .filter(|m| fingerprints.contains_key(m.as_str()))
        {
            unsure.insert(model.to_string());
            unsure.extend(
                plan.dag
                    .descendants(model)
                    .into_iter()
                    .filter(|d| fingerprints.contains_key(d)),
            );
        }
        crate::state::forget(self.conn, &unsure)?;
        let inputs = node::ModelInputs {
            project: self.project,
            plan: &plan,
            context: &ctx,
            existing: &existing,
            rebuild: &rebuild,
        };
        let work = |conn: &Connection, node: usize, alone: bool| {
            if let Some(seed) = seeds.get(node) {
                match crate::seeds::load(conn, seed, &options.temp_dir) {
                    Ok(rows) => Attempt::Finished {
                        result: (Status::Success, Some(rows), false),
                        succeeded: true,
                    },
                    Err(e) => Attempt::Finished {
                        result: (Status::Error(e.to_string()), None, false),
                        succeeded: false,
                    },
                }
            } else if let Some(name) = models.get(node - seeds.len()) {
                match node::build_model(conn, &inputs, name, alone) {
                    ModelAttempt::Built { rows, incremental } => Attempt::Finished {
                        result: (Status::Success, rows, incremental),
                        succeeded: true,
                    },
                    ModelAttempt::Failed(message) => Attempt::Finished {
                        result: (Status::Error(message), None, false),
                        succeeded: false,
                    },
                    ModelAttempt::OutOfMemory => Attempt::AgainAlone,
                }
            } else {
                let (name, _, sql) = &tests[node - seeds.len() - models.len()];
                match node::run_test(conn, name, sql, alone) {
                    TestAttempt::Ran(status) => Attempt::Finished {
                        result: (status, None, false),
                        succeeded: true,
                    },
                    TestAttempt::OutOfMemory => Attempt::AgainAlone,
                }
            }
        };
        pool::run(connections, schedule, work, |event| {
            let result = match event {
                Event::Finished {
                    node,
                    result: (status, rows, incremental),
                    took,
                } => {
                    let (kind, name) = names[node];
                    if let (NodeKind::Model, Status::Success, Some(fingerprint)) =
                        (kind, &status, fingerprints.get(name))
                    {
                        crate::state::record(self.conn, name, fingerprint)?;
                    }
                    NodeResult {
                        kind,
                        name: name.to_string(),
                        status,
                        rows,
                        duration: took,
                        materialized: materialized(kind, name, &plan),
                        incremental,
                    }
                }
                Event::Skipped { node } => {
                    let (kind, name) = names[node];
                    skipped(kind, name, &plan)
                }
            };
            record(result, &mut report)
        })?;
        recorder.flush()?;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// How long each node took in the builds before (the last success of each), in ms.
    fn last_durations(&self) -> HashMap<(&'static str, String), u64> {
        let query = || -> duckdb::Result<HashMap<(&'static str, String), u64>> {
            let mut stmt = self.conn.prepare(
                "SELECT kind, node, arg_max(duration_ms, run_id) FROM meta.model_runs
                 WHERE status = 'success' GROUP BY ALL",
            )?;
            let rows = stmt.query_map([], |r| {
                let kind = match r.get::<_, String>(0)?.as_str() {
                    "seed" => NodeKind::Seed,
                    "model" => NodeKind::Model,
                    _ => NodeKind::Test,
                }
                .as_str();
                Ok((
                    (kind, r.get::<_, String>(1)?),
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            })?;
            rows.collect()
        };
        // Only an estimate: without a history every node weighs the same.
        query().unwrap_or_default()
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
}

/// The planned build: graph, configs and relation names.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dag: Dag,
    pub configs: BTreeMap<String, ModelConfig>,
    pub relations: BTreeMap<String, String>,
    /// The sources each model reads, as (source, table).
    pub sources: BTreeMap<String, Vec<(String, String)>>,
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn render_error(path: &std::path::Path, e: &render::RenderError) -> ModelsError {
    let message = match e.line {
        Some(line) => format!("line {line}: {}", e.message),
        None => e.message.clone(),
    };
    ModelsError::Render {
        file: path.display().to_string(),
        message,
    }
}

fn materialized(kind: NodeKind, name: &str, plan: &Plan) -> Option<Materialized> {
    (kind == NodeKind::Model).then(|| plan.configs[name].materialized)
}

fn skipped(kind: NodeKind, name: &str, plan: &Plan) -> NodeResult {
    NodeResult {
        kind,
        name: name.to_string(),
        status: Status::Skipped,
        rows: None,
        duration: Duration::ZERO,
        materialized: materialized(kind, name, plan),
        incremental: false,
    }
}
