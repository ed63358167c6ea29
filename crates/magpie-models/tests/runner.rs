//! The runner on small projects written by the tests: each materialisation, incremental
//! strategies, a failing model keeping the previous relation, and each generic test failing on
//! crafted bad data.

use std::path::Path;

use magpie_core::{OpenOptions, Warehouse};
use magpie_models::project::Project;
use magpie_models::runner::{BuildOptions, BuildReport, NodeKind, Runner, Status};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const PROJECT: &str = "name: t\nmodel-paths: [models]\nvars:\n  threshold: 2\n";
const SOURCES: &str =
    "version: 2\nsources:\n  - name: src\n    schema: src\n    tables:\n      - name: things\n";

const APPEND_ONLY_SOURCES: &str = "version: 2\nsources:\n  - name: src\n    schema: src\n    tables:\n      - name: things\n        meta:\n          append_only: true\n";

fn setup() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("w.duckdb"), &OpenOptions::default()).unwrap();
    wh.conn()
        .execute_batch(
            "CREATE SCHEMA src; CREATE TABLE src.things (id INTEGER, kind VARCHAR, parent INTEGER);
             INSERT INTO src.things VALUES (1, 'a', NULL), (2, 'b', 1), (3, 'a', 1);",
        )
        .unwrap();
    (dir, wh)
}

fn build(wh: &Warehouse, root: &Path, options: BuildOptions) -> BuildReport {
    let project = Project::from_dir(root).unwrap();
    // Two nodes at once unless a test says otherwise: the pool is the path real builds take.
    let options = BuildOptions {
        run_tests: true,
        temp_dir: root.join("tmp"),
        threads: if options.threads == 0 {
            2
        } else {
            options.threads
        },
        ..options
    };
    Runner::new(wh.conn(), &project)
        .build(&options, &mut |_| {})
        .unwrap()
}

/// A build that must not start (the project itself is wrong): its error.
fn build_error(wh: &Warehouse, root: &Path) -> String {
    let project = Project::from_dir(root).unwrap();
    Runner::new(wh.conn(), &project)
        .build(&BuildOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string()
}

fn count(wh: &Warehouse, sql: &str) -> i64 {
    wh.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn status(report: &BuildReport, name: &str) -> Status {
    report
        .nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("{name} ran"))
        .status
        .clone()
}

#[test]
fn view_table_and_incremental() {
    let (dir, wh) = setup();
    let root = dir.path().join("p");
    write(
        &root,
        &[
            ("dbt_project.yml", PROJECT),
            // Declared append-only, so the runner leaves the incremental models to their
            // is_incremental() branch when the table changes (otherwise any change to it
            // rebuilds them in full: see the time zone test in tests/incremental.rs).
            ("models/sources.yml", APPEND_ONLY_SOURCES),
            ("models/v.sql", "{{ config(materialized='view') }} select * from {{ source('src', 'things') }}"),
            ("models/t.sql", "{{ config(materialized='table', schema='marts') }} select id, kind from {{ ref('v') }} where id >= {{ var('threshold') }}"),
            (
                "models/inc.sql",
                "{{ config(materialized='incremental') }} select id, kind from {{ ref('v') }}
                 {% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}",
            ),
            (
                "models/upsert.sql",
                "{{ config(materialized='incremental', unique_key='id') }} select id, kind from {{ ref('v') }}
                 {% if is_incremental() %} where kind = 'a' {% endif %}",
            ),
        ],
    );
    let report = build(&wh, &root, BuildOptions::default());
    assert!(report.ok(), "{report:?}");
    assert_eq!(count(&wh, "SELECT count(*) FROM main.v"), 3);
    assert_eq!(count(&wh, "SELECT count(*) FROM marts.t"), 2);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'v' AND table_type = 'VIEW'"
        ),
        1
    );

    wh.conn()
        .execute_batch("INSERT INTO src.things VALUES (4, 'a', 2); UPDATE src.things SET kind = 'a' WHERE id = 2;")
        .unwrap();
    let report = build(&wh, &root, BuildOptions::default());
    assert!(report.ok());
    // append: only the new row was added.
    assert_eq!(count(&wh, "SELECT count(*) FROM main.inc"), 4);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM main.inc WHERE id = 2 AND kind = 'b'"
        ),
        1,
        "old rows untouched"
    );
    // delete+insert: rows of kind 'a' replaced by key, no duplicates.
    assert_eq!(count(&wh, "SELECT count(*) FROM main.upsert"), 4);
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM main.upsert WHERE id = 2 AND kind = 'a'"
        ),
        1
    );
    // full refresh rebuilds from scratch.
    let report = build(
        &wh,
        &root,
        BuildOptions {
            full_refresh: true,
            ..Default::default()
        },
    );
    assert!(report.ok());
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM main.inc WHERE id = 2 AND kind = 'a'"
        ),
        1
    );
    // Every node is recorded.
    assert!(
        count(
            &wh,
            "SELECT count(*) FROM meta.model_runs WHERE kind = 'model' AND status = 'success'"
        ) >= 12
    );
}

#[test]
fn a_failing_model_keeps_its_previous_table_and_skips_descendants() {
    let (dir, wh) = setup();
    let root = dir.path().join("p");
    let files = |t_sql: &'static str| {
        vec![
            ("dbt_project.yml", PROJECT),
            ("models/sources.yml", SOURCES),
            ("models/t.sql", t_sql),
            (
                "models/child.sql",
                "{{ config(materialized='table') }} select count(*) as n from {{ ref('t') }}",
            ),
            (
                "models/other.sql",
                "{{ config(materialized='table') }} select 1 as one",
            ),
        ]
    };
    write(
        &root,
        &files("{{ config(materialized='table') }} select * from {{ source('src', 'things') }}"),
    );
    assert!(build(&wh, &root, BuildOptions::default()).ok());
    write(
        &root,
        &files(
            "{{ config(materialized='table') }} select no_such_column from {{ source('src', 'things') }}",
        ),
    );
    let report = build(&wh, &root, BuildOptions::default());
    assert!(!report.ok());
    match status(&report, "t") {
        Status::Error(e) => assert!(
            e.contains("models/t.sql") && e.contains("no_such_column"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&report, "child"), Status::Skipped);
    assert_eq!(status(&report, "other"), Status::Success);
    assert_eq!(
        count(&wh, "SELECT count(*) FROM main.t"),
        3,
        "previous table intact"
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM meta.model_runs WHERE node = 't' AND status = 'error'"
        ),
        1
    );
}

#[test]
fn seeds_load_as_nodes_and_a_bad_one_skips_only_what_reads_it() {
    let (dir, wh) = setup();
    let root = dir.path().join("p");
    let files = |colours_csv: &'static str| {
        vec![
            ("dbt_project.yml", PROJECT),
            ("models/sources.yml", SOURCES),
            ("seeds/colours.csv", colours_csv),
            ("seeds/sizes.csv", "size,rank\nS,1\nM,2\nL,3\n"),
            (
                "seeds/schema.yml",
                "version: 2\nseeds:\n  - name: colours\n    config:\n      column_types:\n        rank: INTEGER\n",
            ),
            (
                "models/ranked.sql",
                "{{ config(materialized='table') }} select * from {{ ref('colours') }} where rank > 1",
            ),
            (
                "models/sized.sql",
                "{{ config(materialized='table') }} select count(*) as n from {{ ref('sizes') }}",
            ),
        ]
    };
    write(&root, &files("colour,rank\nred,1\ngreen,2\nblue,3\n"));
    let report = build(&wh, &root, BuildOptions::default());
    assert!(report.ok(), "{:?}", report.nodes);
    let seed = |report: &BuildReport| {
        report
            .nodes
            .iter()
            .find(|n| n.name == "colours")
            .map(|n| (n.kind, n.rows))
    };
    assert_eq!(seed(&report), Some((NodeKind::Seed, Some(3))));
    assert_eq!(count(&wh, "SELECT count(*) FROM main.ranked"), 2);

    // `rank` is declared INTEGER: a word there fails the seed, with the file named. The
    // model reading it is skipped (its table from before stays); the other seed and its
    // model build as usual.
    write(&root, &files("colour,rank\nred,1\ngreen,two\n"));
    let report = build(&wh, &root, BuildOptions::default());
    assert!(!report.ok());
    match status(&report, "colours") {
        Status::Error(e) => assert!(e.contains("colours.csv"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&report, "ranked"), Status::Skipped);
    assert_eq!(status(&report, "sizes"), Status::Success);
    assert_eq!(status(&report, "sized"), Status::Success);
    assert_eq!(count(&wh, "SELECT count(*) FROM main.ranked"), 2);
    assert_eq!(count(&wh, "SELECT count(*) FROM seeds.colours"), 3);
}

#[test]
fn each_generic_test_fails_on_bad_data() {
    let (dir, wh) = setup();
    wh.conn()
        .execute_batch("INSERT INTO src.things VALUES (3, 'z', 99), (NULL, 'a', 1)")
        .unwrap();
    let root = dir.path().join("p");
    write(
        &root,
        &[
            ("dbt_project.yml", PROJECT),
            ("models/sources.yml", SOURCES),
            (
                "models/things.sql",
                "{{ config(materialized='table') }} select * from {{ source('src', 'things') }}",
            ),
            (
                "models/schema.yml",
                "version: 2\nmodels:\n  - name: things\n    columns:\n      - name: id\n        tests: [unique, not_null]\n      - name: kind\n        tests:\n          - accepted_values:\n              values: ['a', 'b']\n      - name: parent\n        tests:\n          - relationships:\n              to: ref('things')\n              field: id\n",
            ),
            (
                "tests/no_big_parents.sql",
                "select * from {{ ref('things') }} where parent > 50",
            ),
        ],
    );
    let report = build(&wh, &root, BuildOptions::default());
    let tests: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Test)
        .collect();
    assert_eq!(tests.len(), 5);
    assert_eq!(status(&report, "unique_things_id"), Status::Fail(1));
    assert_eq!(status(&report, "not_null_things_id"), Status::Fail(1));
    assert_eq!(
        status(&report, "accepted_values_things_kind"),
        Status::Fail(1)
    );
    assert_eq!(
        status(&report, "relationships_things_parent__id__things"),
        Status::Fail(1)
    );
    assert_eq!(status(&report, "no_big_parents"), Status::Fail(1));

    // Clean data: all pass.
    wh.conn()
        .execute_batch("DELETE FROM src.things WHERE kind = 'z' OR id IS NULL")
        .unwrap();
    let report = build(&wh, &root, BuildOptions::default());
    assert!(report.ok(), "{report:?}");
}

#[test]
fn selection_and_graph_errors() {
    let (dir, wh) = setup();
    let root = dir.path().join("p");
    write(
        &root,
        &[
            ("dbt_project.yml", PROJECT),
            ("models/a.sql", "select 1 as x"),
            ("models/b.sql", "select * from {{ ref('a') }}"),
            ("models/c.sql", "select 2 as y"),
        ],
    );
    let report = build(
        &wh,
        &root,
        BuildOptions {
            select: Some("a+".into()),
            ..Default::default()
        },
    );
    let built: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Model)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(built, vec!["a", "b"]);

    write(&root, &[("models/a.sql", "select * from {{ ref('b') }}")]);
    let err = build_error(&wh, &root);
    assert!(
        err.contains("cycle") && err.contains("models/a.sql") && err.contains("models/b.sql"),
        "{err}"
    );

    write(
        &root,
        &[("models/a.sql", "select * from {{ ref('ghost') }}")],
    );
    let err = build_error(&wh, &root);
    assert!(
        err.contains("models/a.sql") && err.contains("ghost"),
        "{err}"
    );

    // Model-level tests are refused rather than silently skipped.
    write(
        &root,
        &[
            ("models/a.sql", "select 1 as x"),
            (
                "models/schema.yml",
                "version: 2\nmodels:\n  - name: a\n    tests:\n      - dbt_utils.unique_combination_of_columns:\n          combination_of_columns: [x]\n",
            ),
        ],
    );
    let err = Project::from_dir(&root).unwrap_err().to_string();
    assert!(
        err.contains("models/schema.yml")
            && err.contains("model-level tests")
            && err.contains("`a`"),
        "{err}"
    );
}

#[test]
fn concurrent_builds_run_every_node_once_in_dependency_order() {
    let (dir, wh) = setup();
    let root = dir.path().join("p");
    // A chain a1 -> a2 -> a3 that fails at a2, and eight independent tables beside it, each
    // with a test; every child checks its parent is complete when it runs.
    let mut files: Vec<(String, String)> = vec![
        ("dbt_project.yml".into(), PROJECT.into()),
        ("models/sources.yml".into(), SOURCES.into()),
        (
            "models/a1.sql".into(),
            "{{ config(materialized='table') }} select range as x from range(200000)".into(),
        ),
        (
            "models/a2.sql".into(),
            "{{ config(materialized='table') }} select x / 0 :: INTEGER as boom, no_such_column from {{ ref('a1') }}".into(),
        ),
        (
            "models/a3.sql".into(),
            "{{ config(materialized='table') }} select * from {{ ref('a2') }}".into(),
        ),
    ];
    let mut schema = String::from("version: 2\nmodels:\n");
    for i in 0..8 {
        files.push((
            format!("models/b{i}.sql"),
            format!("{{{{ config(materialized='table', schema='s{}') }}}} select count(*) as n from {{{{ ref('a1') }}}}", i % 2),
        ));
        schema.push_str(&format!(
            "  - name: b{i}\n    columns:\n      - name: n\n        tests:\n          - accepted_values: {{values: [200000]}}\n"
        ));
    }
    files.push(("models/schema.yml".into(), schema));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write(&root, &borrowed);
    for (threads, one_model_at_a_time) in [(1, false), (2, false), (4, false), (2, true)] {
        let report = build(
            &wh,
            &root,
            BuildOptions {
                threads,
                one_model_at_a_time,
                ..Default::default()
            },
        );
        let mut names: Vec<&str> = report.nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(
            names.len(),
            before,
            "each node reported once ({threads} threads)"
        );
        assert_eq!(report.count(NodeKind::Model, "success"), 9, "a1 and b0..b7");
        assert_eq!(report.count(NodeKind::Model, "error"), 1);
        assert_eq!(report.count(NodeKind::Model, "skipped"), 1);
        assert_eq!(report.count(NodeKind::Test, "success"), 8, "{report:#?}");
        assert_eq!(status(&report, "a3"), Status::Skipped);
        assert_eq!(
            count(
                &wh,
                &format!(
                    "SELECT count(*) FROM meta.model_runs WHERE run_id = {}",
                    report.run_id
                )
            ),
            report.nodes.len() as i64,
            "every node recorded once"
        );
        for i in 0..8 {
            assert_eq!(
                count(&wh, &format!("SELECT n FROM s{}.b{i}", i % 2)),
                200000
            );
        }
    }
}
