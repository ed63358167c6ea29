//! Seeds: CSV files of reference data loaded as tables (schema `seeds` unless configured),
//! with column types from `schema.yml` where given and DuckDB's detection elsewhere.

use std::path::Path;

use duckdb::Connection;

use crate::project::SeedFile;

/// Load one seed, replacing its table in one statement. Returns the row count.
pub fn load(
    conn: &Connection,
    seed: &SeedFile,
    temp_dir: &Path,
) -> Result<u64, crate::ModelsError> {
    std::fs::create_dir_all(temp_dir)
        .map_err(|e| crate::ModelsError::Project(format!("{}: {e}", temp_dir.display())))?;
    let file = temp_dir.join(format!("seed_{}.csv", seed.name));
    std::fs::write(&file, &seed.csv)
        .map_err(|e| crate::ModelsError::Project(format!("{}: {e}", file.display())))?;
    let schema = seed.schema.clone().unwrap_or_else(|| "seeds".into());
    let types = if seed.column_types.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = seed
            .column_types
            .iter()
            .map(|(c, t)| format!("'{}': '{}'", c.replace('\'', "''"), t.replace('\'', "''")))
            .collect();
        format!(", types = {{{}}}", pairs.join(", "))
    };
    let path = file.to_string_lossy().replace('\'', "''");
    let result = conn
        .execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE OR REPLACE TABLE \"{schema}\".\"{}\" AS
             SELECT * FROM read_csv('{path}', header = true, auto_detect = true{types})",
            seed.name
        ))
        .and_then(|_| {
            conn.query_row(
                &format!("SELECT count(*) FROM \"{schema}\".\"{}\"", seed.name),
                [],
                |r| r.get::<_, i64>(0),
            )
        });
    let _ = std::fs::remove_file(&file);
    result
        .map(|n| n as u64)
        .map_err(|e| crate::ModelsError::Render {
            file: seed.path.display().to_string(),
            message: e.to_string(),
        })
}
