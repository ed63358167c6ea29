//! magpie's HTTP server (issue 5): dashboards rendered as HTML with server-side SVG charts, a
//! JSON API, `/health` and `/metrics`, all served from the binary.
//!
//! Not built yet. The crate exists so the workspace's dependency graph (and with it DuckDB's
//! 30-minute C++ build) is fixed from the first commit: its dependencies are declared already.
