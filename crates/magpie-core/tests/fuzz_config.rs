//! Property tests of the configuration (issue 27, the CI share of fuzzing): a TOML file with
//! every key magpie knows (the defaults, and the optional keys set) is damaged (cut short,
//! bytes flipped, TOML fragments and odd values inserted, lines deleted, repeated, swapped or
//! re-indented), and `MAGPIE_*` variables named after real keys (and the old stack's names)
//! are given odd values, then read by [`Config::load`].
//!
//! Invariants: nothing panics; an error names the file (a TOML syntax error) or a key magpie
//! has (a value it refuses), never a bare message.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`] per property).

mod mutate;

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use magpie_core::config::{FlowConfig, WebhookConfig, WebhookFormat};
use magpie_core::{Config, ConfigError, ConfigSources, Secret};
use proptest::prelude::*;

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 3000;

/// TOML's syntax and values of every type, right and wrong for the keys.
const TOML: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    " = ",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ".",
    ",",
    "#",
    "{",
    "}",
    "[server]",
    "[market]",
    "[[alerts.webhooks]]",
    "[flows.enrich]",
    "[log]\n",
    "x = 1\n",
    "colour = \"blue\"\n",
    "port = 70000",
    "port = -1",
    "port = \"8080\"",
    "threads = 17",
    "memory_budget = \"1 PB\"",
    "memory_budget = \"-5MB\"",
    "memory_budget = 12",
    "timezone = \"Mars/Olympus\"",
    "level = \"loud\"",
    "every = \"0s\"",
    "every = \"1s\"",
    "every = \"99999999999y\"",
    "cron = \"* * *\"",
    "cron = \"61 * * * *\"",
    "timeout = \"forever\"",
    "url = \"ftp://x\"",
    "min_coverage = 2.0",
    "min_coverage = nan",
    "spotify_requests_per_second = inf",
    "kinds = [\"swap\"]",
    "channels = [1]",
    "trusted_proxies = [\"300.1.1.1/8\"]",
    "trusted_proxies = \"10.0.0.0/8\"",
    "bind = \"::1\"",
    "1979-05-27T07:32:00Z",
    "0x7fffffffffffffff",
    "1_000",
    "+1",
    "-0.0",
    "[]",
    "{}",
    "{ a = 1 }",
    "true",
    "\"\\u0000\"",
    "\"\\uD800\"",
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: mutate::cases(DEFAULT_CASES),
        ..ProptestConfig::default()
    }
}

/// Every key magpie knows, set: the defaults and the optional keys.
fn full_config() -> Config {
    let mut c = Config {
        duckdb_path: Some("/tmp/magpie-fuzz/w.duckdb".into()),
        ..Config::default()
    };
    c.server.public_url = Some("https://music.example".into());
    c.server.trusted_proxies = vec!["10.0.0.0/8".into()];
    c.server.metrics_token = Some(Secret::new("a metrics token"));
    c.spotify.client_id = Some("client".into());
    c.spotify.client_secret = Some(Secret::new("secret"));
    c.models.project_dir = Some("/tmp/magpie-fuzz/models".into());
    c.backup.dir = Some("/tmp/magpie-fuzz/backups".into());
    c.flows.enrich = FlowConfig {
        every: Some(Duration::from_secs(600)),
        paused: Some(false),
        retries: Some(2),
        retry_delay: Some(Duration::from_secs(30)),
        task_timeout: Some(Duration::from_secs(900)),
        ..FlowConfig::default()
    };
    c.flows.daily_etl.cron = Some("0 3 * * *".into());
    c.alerts.webhooks = vec![WebhookConfig {
        url: Secret::new("https://hooks.example/x"),
        format: WebhookFormat::default(),
    }];
    c.market.dir = Some("/tmp/magpie-fuzz/market".into());
    c.market.postgres_url = Some(Secret::new("postgres://u:p@db/market"));
    c
}

/// The full configuration as a TOML file, and every dotted key in it (tables too).
fn seed() -> &'static (String, BTreeSet<String>) {
    static SEED: OnceLock<(String, BTreeSet<String>)> = OnceLock::new();
    SEED.get_or_init(|| {
        let text = toml::to_string(&full_config()).expect("the configuration serialises");
        let value: toml::Table = toml::from_str(&text).expect("and reads back");
        let mut keys = BTreeSet::new();
        walk(&value, "", &mut keys);
        // Every flow has the keys one of them is given here (`every` or `cron`, not both).
        let flows = ["spotify_ingest", "enrich", "daily_etl", "question_alerts"];
        let fields: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix("flows.")?
                    .split_once('.')
                    .map(|(_, f)| f.to_string())
            })
            .collect();
        for flow in flows {
            keys.insert(format!("flows.{flow}"));
            keys.extend(fields.iter().map(|f| format!("flows.{flow}.{f}")));
        }
        (text, keys)
    })
}

fn walk(table: &toml::Table, prefix: &str, keys: &mut BTreeSet<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        keys.insert(key.clone());
        match v {
            toml::Value::Table(t) => walk(t, &key, keys),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(t) = item {
                        walk(t, &key, keys);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A key as an error names it, without array indices (`alerts.webhooks[0].url`).
fn known(key: &str) -> bool {
    let mut plain = String::new();
    let mut skipping = false;
    for c in key.chars() {
        match c {
            '[' => skipping = true,
            ']' => skipping = false,
            c if !skipping => plain.push(c),
            _ => {}
        }
    }
    seed().1.contains(&plain)
}

/// An error names the file or a key magpie has, and says what is wrong.
fn check(e: &ConfigError, file: Option<&std::path::Path>) -> Result<(), TestCaseError> {
    match e {
        ConfigError::File { path, message } => {
            prop_assert_eq!(Some(path.as_path()), file, "{}", e);
            prop_assert!(!message.trim().is_empty(), "{e}");
        }
        ConfigError::Invalid { key, message } => {
            prop_assert!(known(key), "`{key}` is not a key magpie has: {e}");
            prop_assert!(!message.trim().is_empty(), "{e}");
        }
        // A key magpie does not have, at the top level: serde names it.
        ConfigError::Other(message) if message.starts_with("unknown field `") => {}
        ConfigError::Other(message) => {
            prop_assert!(false, "an error that names no key: {message}");
        }
    }
    Ok(())
}

#[test]
fn the_seed_holds_every_key_and_loads() {
    let (text, keys) = seed();
    for key in [
        "duckdb_path",
        "server.metrics_token",
        "flows.enrich.every",
        "alerts.webhooks.url",
        "market.postgres_url",
    ] {
        assert!(keys.contains(key), "{key} in {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("magpie.toml");
    std::fs::write(&path, text).unwrap();
    let sources = ConfigSources {
        file: Some(path),
        env: Some(HashMap::new()),
        overrides: vec![],
    };
    let loaded = Config::load(&sources).unwrap();
    assert_eq!(
        loaded.server.public_url.as_deref(),
        Some("https://music.example")
    );
}

/// A value for an environment variable.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(mutate::ODD).prop_map(str::to_string),
        prop::sample::select(TOML).prop_map(str::to_string),
        prop::sample::select(vec![
            "1",
            "64",
            "3600",
            "16",
            "1m",
            "1h",
            "10s",
            "0s",
            "1MB",
            "64MB",
            "1GB",
            "UTC",
            "Europe/Berlin",
            "debug",
            "development",
            "testing",
            "production",
            "Production",
            "http://127.0.0.1:8888/callback",
            "https://x",
            "a,b",
            "10.0.0.0/8,::1/128",
            "option,future",
            "quote,ticker",
            "0 3 * * *",
            "0.5",
            "1.5",
            "admin",
            "open",
        ])
        .prop_map(str::to_string),
        ".{0,10}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_damaged_file_is_refused_naming_it_or_the_key(edits in mutate::edits(TOML, 3)) {
        let text = mutate::apply(&seed().0, &edits);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magpie.toml");
        std::fs::write(&path, &text).unwrap();
        let sources = ConfigSources {
            file: Some(path.clone()),
            env: Some(HashMap::new()),
            overrides: vec![],
        };
        if let Err(e) = Config::load(&sources) {
            check(&e, Some(&path))?;
        }
    }

    #[test]
    fn odd_environment_values_are_refused_naming_the_key(
        vars in prop::collection::vec(
            (any::<prop::sample::Index>(), odd_value()),
            1..4,
        ),
        legacy in prop::option::of((
            prop::sample::select(vec![
                "DUCKDB_PATH", "LOG_LEVEL", "ENVIRONMENT", "SPOTIFY_CLIENT_ID",
                "SPOTIFY_CLIENT_SECRET",
            ]),
            odd_value(),
        )),
    ) {
        let keys: Vec<&String> = seed().1.iter().collect();
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(i, v)| {
                let key = keys[i.index(keys.len())];
                (format!("MAGPIE_{}", key.to_uppercase().replace('.', "__")), v.clone())
            })
            .collect();
        if let Some((name, value)) = legacy {
            env.insert(name.to_string(), value);
        }
        let sources = ConfigSources::default().with_env(env.clone());
        if let Err(e) = Config::load(&sources) {
            check(&e, None).map_err(|f| TestCaseError::fail(format!("{f}\n{env:?}")))?;
        }
    }
}
