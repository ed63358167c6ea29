//! The configuration: any TOML file and any `MAGPIE_*` environment value either loads and
//! validates or gives one error naming the file or the key; nothing panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use magpie_core::config::{Config, ConfigError, ConfigSources};

/// One scratch file for the whole run (libFuzzer runs one input at a time).
fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("magpie-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir.join("magpie.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    // The input is the file, then optionally a NUL and one environment value.
    let (file, env) = match data.iter().position(|&b| b == 0) {
        Some(at) => (
            &data[..at],
            Some(String::from_utf8_lossy(&data[at + 1..]).into_owned()),
        ),
        None => (data, None),
    };
    std::fs::write(scratch(), file).expect("writing the scratch config");
    let mut vars = vec![(
        "MAGPIE_DATA_DIR".to_string(),
        "/tmp/magpie-fuzz-data".to_string(),
    )];
    if let Some(value) = env {
        vars.push(("MAGPIE_SERVER__PORT".into(), value.clone()));
        vars.push(("MAGPIE_MEMORY_BUDGET".into(), value));
    }
    let sources = ConfigSources {
        file: Some(scratch().to_path_buf()),
        ..ConfigSources::default()
    }
    .with_env(vars);
    match Config::load(&sources) {
        Ok(config) => assert!(config.validate().is_ok(), "a loaded config is valid"),
        Err(ConfigError::File { path, message }) => {
            // Shown relative to the working folder, as people type it.
            assert!(path.ends_with("magpie.toml"), "{}", path.display());
            assert!(!message.is_empty());
        }
        Err(ConfigError::Invalid { key, message }) => {
            assert!(!key.is_empty() && !message.is_empty());
        }
        Err(ConfigError::Other(message)) => assert!(!message.is_empty()),
    }
});
