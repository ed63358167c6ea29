//! `magpie doctor`: checks what usually goes wrong on a small box and says what to do, one line
//! per check (ok / warn / FAIL): the configuration, the data folder and the secrets' modes, the
//! warehouse (opens, schema, imports, marts, the last build and flow runs), Spotify
//! authorisations, MusicBrainz's contact, the market collector's folder against its retention,
//! memory, swap and disk; and (unless `--offline`)
//! whether Spotify and MusicBrainz answer from here. The exit code is non-zero when a check
//! fails.

use std::path::Path;
use std::process::ExitCode;

use magpie_core::{Config, Warehouse, WarehouseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    lines: Vec<(Level, String, String)>,
}

impl Report {
    fn add(&mut self, level: Level, what: &str, message: impl Into<String>) {
        self.lines.push((level, what.to_string(), message.into()));
    }
}

pub fn run(config: &Config, offline: bool) -> anyhow::Result<ExitCode> {
    let mut r = Report { lines: Vec::new() };
    r.add(
        Level::Ok,
        "configuration",
        format!(
            "valid (profile {:?}, time zone {}, memory budget {})",
            config.environment, config.timezone, config.memory_budget
        ),
    );
    data_folder(config, &mut r);
    secrets(config, &mut r);
    warehouse(config, &mut r);
    spotify(config, &mut r);
    if config.enrichment.contact == magpie_core::config::EnrichmentConfig::default().contact {
        r.add(
            Level::Warn,
            "musicbrainz",
            "enrichment.contact is magpie's project URL: set your e-mail or URL so MusicBrainz can reach you",
        );
    } else {
        r.add(
            Level::Ok,
            "musicbrainz",
            format!("contact {}", config.enrichment.contact),
        );
    }
    market(config, &mut r);
    host(config, &mut r);
    if !offline {
        reachability(config, &mut r)?;
    }

    let worst = r.lines.iter().map(|l| l.0).max().unwrap_or(Level::Ok);
    for (level, what, message) in &r.lines {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {what:<14} {message}");
    }
    Ok(if worst == Level::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn data_folder(config: &Config, r: &mut Report) {
    let dir = &config.data_dir;
    if !dir.is_dir() {
        r.add(
            Level::Fail,
            "data folder",
            format!(
                "{} does not exist: run `magpie demo` or `magpie import` to create it",
                dir.display()
            ),
        );
        return;
    }
    // A full or read-only disk is said as such, not as a permission to give.
    if let Some(problem) = magpie_core::host::DiskState::read(dir).problem() {
        r.add(Level::Fail, "data folder", problem);
        return;
    }
    let probe = dir.join(".magpie-doctor-probe");
    let written = std::fs::write(&probe, b"ok");
    // Also when the write failed: the file may have been created, empty.
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => {
            r.add(Level::Ok, "data folder", format!("{} is writable", dir.display()));
        }
        Err(e) => r.add(
            Level::Fail,
            "data folder",
            format!(
                "{} is not writable ({e}): give the user magpie runs as write access (Docker: `user:` in the compose file)",
                dir.display()
            ),
        ),
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode(_: &Path) -> Option<u32> {
    None
}

fn secrets(config: &Config, r: &mut Report) {
    let dir = magpie_core::secrets::dir(&config.data_dir);
    if !dir.is_dir() {
        r.add(
            Level::Ok,
            "secrets",
            "none yet (no admin password, no Spotify account)",
        );
        return;
    }
    let mut loose = Vec::new();
    if mode(&dir).is_some_and(|m| m & 0o077 != 0) {
        loose.push(format!("{} (should be 0700)", dir.display()));
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if mode(&entry.path()).is_some_and(|m| m & 0o077 != 0) {
            loose.push(format!("{} (should be 0600)", entry.path().display()));
        }
    }
    if loose.is_empty() {
        r.add(Level::Ok, "secrets", "readable by their owner only");
    } else {
        r.add(
            Level::Fail,
            "secrets",
            format!("readable by others: {}; chmod them", loose.join(", ")),
        );
    }
    if !magpie_core::secrets::admin_password_set(&config.data_dir) {
        r.add(
            Level::Warn,
            "admin",
            "no admin password: run `magpie admin password` to use Connect Spotify, Run now and Pause",
        );
    }
}

fn warehouse(config: &Config, r: &mut Report) {
    let path = config.warehouse_path();
    let conn = match Warehouse::open_read_only(&path) {
        Ok(conn) => conn,
        Err(WarehouseError::Missing { .. }) => {
            r.add(
                Level::Warn,
                "warehouse",
                format!(
                    "no warehouse at {} yet: `magpie import` or `magpie demo`",
                    path.display()
                ),
            );
            return;
        }
        Err(WarehouseError::Locked { .. }) => {
            r.add(
                Level::Ok,
                "warehouse",
                "in use by a running magpie (its contents are not checked while it runs; see /status and /flows)",
            );
            return;
        }
        Err(e) => {
            r.add(Level::Fail, "warehouse", e.to_string());
            return;
        }
    };
    let one = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |row| row.get(0)).ok() };
    let events = one("SELECT count(*) FROM raw.listen_events").unwrap_or(0);
    let version = one("SELECT max(version) FROM schema_migrations").unwrap_or(0);
    r.add(
        Level::Ok,
        "warehouse",
        format!(
            "{} opens (schema {version}), {events} listening events",
            path.display()
        ),
    );
    let marts = one(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name = 'fact_plays'",
    )
    .unwrap_or(0);
    if marts == 0 {
        r.add(Level::Warn, "marts", "not built: run `magpie build`");
    } else {
        let failed = one(
            "SELECT count(*) FROM meta.model_runs WHERE run_id = (SELECT max(run_id) FROM meta.model_runs) AND status IN ('error', 'fail')",
        )
        .unwrap_or(0);
        let out_of_memory: Option<String> = conn
            .query_row(
                "SELECT string_agg(node, ', ' ORDER BY node) FROM meta.model_runs
                 WHERE run_id = (SELECT max(run_id) FROM meta.model_runs)
                   AND error LIKE '%Out of Memory Error%'",
                [],
                |row| row.get(0),
            )
            .ok()
            .flatten();
        if let Some(models) = out_of_memory {
            r.add(
                Level::Warn,
                "marts",
                format!(
                    "the last build ran out of memory in {models}: raise `memory_budget` (now {}; DuckDB gets {}% of it)",
                    config.memory_budget,
                    magpie_core::warehouse::DUCKDB_SHARE_PERCENT
                ),
            );
        } else if failed > 0 {
            r.add(
                Level::Warn,
                "marts",
                format!(
                    "the last build had {failed} failing model(s) or test(s): see `magpie build`"
                ),
            );
        } else {
            r.add(Level::Ok, "marts", "built, the last build passed");
        }
    }
    let mut stmt = match conn.prepare(
        "SELECT flow, state, coalesce(error, '') FROM meta.flow_runs f
         WHERE run_id = (SELECT max(run_id) FROM meta.flow_runs g WHERE g.flow = f.flow
                         AND g.state IN ('Completed', 'Failed', 'Crashed'))
         ORDER BY flow",
    ) {
        Ok(stmt) => stmt,
        Err(_) => return,
    };
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    for (flow, state, error) in rows {
        if state == "Completed" {
            r.add(Level::Ok, "flow", format!("{flow}: the last run completed"));
        } else {
            r.add(
                Level::Warn,
                "flow",
                format!("{flow}: the last run {state}: {error}"),
            );
        }
    }
}

fn spotify(config: &Config, r: &mut Report) {
    if config.spotify.client_id.is_none() {
        r.add(
            Level::Ok,
            "spotify",
            "no app configured (exports and Last.fm only; set SPOTIFY_CLIENT_ID for live listening)",
        );
        return;
    }
    let store = magpie_music::spotify::TokenStore::new(&config.data_dir);
    match store.all() {
        Ok(listeners) if listeners.is_empty() => r.add(
            Level::Warn,
            "spotify",
            "an app is configured but no account is connected: Admin → Connect Spotify",
        ),
        Ok(listeners) => {
            let now = chrono::Utc::now();
            for (name, tokens) in listeners {
                if tokens.reconnect_soon(now) {
                    r.add(
                        Level::Warn,
                        "spotify",
                        format!(
                            "{name}: Spotify ends the authorisation on {}: reconnect before then",
                            tokens.refresh_expires_at().date_naive()
                        ),
                    );
                } else {
                    r.add(
                        Level::Ok,
                        "spotify",
                        format!(
                            "{name}: connected until {}",
                            tokens.refresh_expires_at().date_naive()
                        ),
                    );
                }
            }
        }
        Err(e) => r.add(Level::Fail, "spotify", e.to_string()),
    }
}

/// The market collector: off, or its Parquet folder's size per day against the free disk for
/// `retention_days` of it.
fn market(config: &Config, r: &mut Report) {
    let market = &config.market;
    if !market.enabled {
        r.add(
            Level::Ok,
            "market",
            "the Deribit collector is off (`[market] enabled = true` to collect)",
        );
        return;
    }
    let dir = market.dir(&config.data_dir);
    let files = magpie_market::sink::files::under(&dir, "parquet");
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut days: Vec<String> = files
        .iter()
        .filter_map(|f| {
            f.components().find_map(|c| {
                c.as_os_str()
                    .to_str()
                    .and_then(|s| s.strip_prefix("date="))
                    .map(str::to_string)
            })
        })
        .collect();
    days.sort();
    days.dedup();
    let unfinished = magpie_market::sink::files::under(&dir, "tmp").len();
    if days.is_empty() {
        r.add(
            Level::Ok,
            "market",
            format!(
                "collecting {} from {} into {} (no files yet)",
                market.currencies.join(", "),
                market.url,
                dir.display()
            ),
        );
        return;
    }
    let per_day = bytes / days.len() as u64;
    let free = magpie_core::host::DiskState::read(&config.data_dir).available_bytes;
    let needed = per_day.saturating_mul(u64::from(market.retention_days));
    let summary = format!(
        "{} files, {} MB over {} days (~{} MB a day) in {}{}",
        files.len(),
        bytes / 1_000_000,
        days.len(),
        per_day / 1_000_000,
        dir.display(),
        if unfinished > 0 {
            format!("; {unfinished} unfinished files the next start removes")
        } else {
            String::new()
        }
    );
    if market.retention_days > 0 && free > 0 && needed.saturating_sub(bytes) > free {
        r.add(
            Level::Warn,
            "market",
            format!(
                "{summary}: {} days of retention need ~{} MB more than the {} MB free; lower market.retention_days",
                market.retention_days,
                (needed - bytes) / 1_000_000,
                free / 1_000_000
            ),
        );
    } else {
        r.add(Level::Ok, "market", summary);
    }
}

fn host(config: &Config, r: &mut Report) {
    let status =
        magpie_core::host::HostStatus::read(&config.data_dir, config.memory_budget.as_u64());
    let mb = |b: u64| b / 1_000_000;
    r.add(
        Level::Ok,
        "host",
        format!(
            "{} MB of {} MB memory available, {} MB swap used, {} MB free on the data folder's disk",
            mb(status.host_available_bytes),
            mb(status.host_memory_bytes),
            mb(status.swap_used_bytes),
            mb(status.disk.available_bytes)
        ),
    );
    if config.memory_budget.as_u64() > status.host_memory_bytes / 2 {
        r.add(
            Level::Warn,
            "memory",
            format!(
                "memory_budget ({}) is more than half the machine's memory",
                config.memory_budget
            ),
        );
    }
    let disk_problem = status.disk.problem();
    for warning in status.warnings {
        // This process is not the server: its own RSS says nothing; a disk problem is the
        // data folder's failed check already.
        if !warning.contains("memory_budget") && Some(&warning) != disk_problem.as_ref() {
            r.add(Level::Warn, "host", warning);
        }
    }
}

/// One request to each service (5 s at most): any HTTP answer means it is reachable.
fn reachability(config: &Config, r: &mut Report) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .user_agent(magpie_music::enrich::musicbrainz::user_agent(
            &config.enrichment.contact,
        ))
        .build()?;
    let checks = [
        (
            "spotify",
            format!("{}/v1/", config.spotify.api_url.trim_end_matches('/')),
            "Spotify's Web API",
        ),
        (
            "musicbrainz",
            format!(
                "{}/ws/2/artist/5b11f4ce-a62d-471e-81fc-a69a8278c7da?fmt=json",
                config.enrichment.musicbrainz_url.trim_end_matches('/')
            ),
            "MusicBrainz",
        ),
    ];
    for (what, url, name) in checks {
        let answer = runtime.block_on(async { http.get(&url).send().await });
        match answer {
            Ok(response) if response.status().as_u16() == 503 => r.add(
                Level::Warn,
                what,
                format!("{name} answers but is busy (HTTP 503): enrichment will wait and retry"),
            ),
            Ok(response) => r.add(
                Level::Ok,
                what,
                format!("{name} answers from here (HTTP {})", response.status().as_u16()),
            ),
            Err(e) => r.add(
                Level::Warn,
                what,
                format!(
                    "{name} cannot be reached from here ({}): check the network or a proxy; polling and enrichment wait until it can",
                    e.without_url()
                ),
            ),
        }
    }
    Ok(())
}
