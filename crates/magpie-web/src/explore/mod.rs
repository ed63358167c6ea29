//! The SQL explorer (`/explore`, admin only) and the HTTP API it and scripts use:
//! `POST /api/sql` (run), `POST /api/sql/cancel`, `POST /api/sql/download` (the whole result
//! as CSV or JSON, streamed), `GET /api/schema` (schemas, tables, columns, types and the
//! models' descriptions), `POST /api/chart` (an SVG of a result), `POST /api/questions`
//! (save) and `POST /api/dashboards/{slug}/cards` (add to a dashboard). Every query goes
//! through [`engine`].

pub mod api;
pub mod engine;
pub mod page;

use std::collections::BTreeMap;

use serde::Serialize;

pub use engine::Running;

/// What the models' `schema.yml` says of a table and its columns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableDoc {
    pub description: Option<String>,
    pub columns: BTreeMap<String, String>,
}

/// The models' descriptions by table name, for the schema browser.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    pub tables: BTreeMap<String, TableDoc>,
}
