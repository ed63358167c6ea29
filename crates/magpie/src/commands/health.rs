//! `magpie health`: asks a running `magpie serve` for /health and exits 0 only if it answers
//! 200: the container's health check, in an image that has no shell and no curl.

use std::process::ExitCode;
use std::time::Duration;

use magpie_core::Config;

pub fn run(config: &Config, url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/health", config.server.port));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let answer = runtime.block_on(async { http.get(&url).send().await });
    Ok(match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url}: HTTP {}", response.status().as_u16());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    })
}
