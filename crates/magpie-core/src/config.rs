//! Configuration as data: one [`Config`] struct, read once at start-up from defaults, an
//! optional TOML file, `MAGPIE_*` environment variables and the names the old Python stack used
//! (`DUCKDB_PATH`, `LOG_LEVEL`, `ENVIRONMENT`, `SPOTIFY_CLIENT_ID`, `SPOTIFY_CLIENT_SECRET`),
//! then validated, so a bad value stops magpie with one line naming the key.
//!
//! Precedence, lowest first: built-in defaults, the `ENVIRONMENT` profile's defaults, the TOML
//! file, `MAGPIE_*` variables (nested keys joined by `__`, e.g. `MAGPIE_IMPORT__DEDUPE_WINDOW_SECS`),
//! the legacy names, and finally command-line flags.
//!
//! ```
//! use magpie_core::config::{Config, ConfigSources};
//! let cfg = Config::load(&ConfigSources::default().with_env([("LOG_LEVEL", "debug")])).unwrap();
//! assert_eq!(cfg.log.level, "debug");
//! assert!(cfg.warehouse_path().ends_with("magpie.duckdb"));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

mod market;
pub use market::{MarketChannel, MarketConfig, MarketKind};

/// Everything magpie can be told. Every field has a default that works.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder for the warehouse, secrets, logs and backups.
    pub data_dir: PathBuf,
    /// The warehouse file; defaults to `DATA_DIR/magpie.duckdb`.
    pub duckdb_path: Option<PathBuf>,
    /// Profile: development (verbose, no limits), testing (small limits), production.
    pub environment: Profile,
    /// IANA time zone in which the listener's days and hours are counted.
    pub timezone: String,
    /// The listener whose plays `import` adds when none is named.
    pub default_listener: String,
    /// One figure for how much memory magpie may use; drives DuckDB's limit
    /// ([`crate::warehouse::DUCKDB_SHARE_PERCENT`] of it) and threads.
    pub memory_budget: ByteSize,
    pub log: LogConfig,
    pub import: ImportConfig,
    pub spotify: SpotifyConfig,
    pub server: ServerConfig,
    pub models: ModelsConfig,
    pub enrichment: EnrichmentConfig,
    pub flows: FlowsConfig,
    pub alerts: AlertsConfig,
    pub backup: BackupConfig,
    pub market: MarketConfig,
    pub explore: ExploreConfig,
}

/// The SQL explorer, saved questions, dashboards and share links: how user SQL runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExploreConfig {
    /// A query running longer is interrupted.
    #[serde(with = "humantime_serde")]
    pub timeout: std::time::Duration,
    /// Rows shown (and sent as JSON) of a result; downloads have all of them.
    pub max_rows: usize,
    /// Requests per minute one client address may make to public share links.
    pub public_requests_per_minute: u32,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(30),
            max_rows: 1000,
            public_requests_per_minute: 120,
        }
    }
}

/// Backups (`magpie backup` and daily-etl): where, and how many to keep.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Folder for `magpie-YYYY-MM-DD.duckdb` files (default `DATA_DIR/backups`).
    pub dir: Option<PathBuf>,
    /// The newest this many daily backups are kept...
    pub keep_daily: usize,
    /// ... and beyond them the newest of each of this many weeks.
    pub keep_weekly: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

/// The built-in flows' schedules, retries and timeouts: what is not set takes the flow's own
/// default (see [`FlowsConfig::resolved`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Poll Spotify's recently-played for every connected listener, rebuild if there is news
    /// (default every 30m, 2 retries, 5m timeout).
    pub spotify_ingest: FlowConfig,
    /// Work the enrichment queue for a while, rebuild if anything was found (every 10m,
    /// 15m timeout).
    pub enrich: FlowConfig,
    /// Enrich, build the models and run their tests, refresh the read-only snapshot, back up
    /// (cron `0 3 * * *` in `timezone`, 1 retry, 60m timeout).
    pub daily_etl: FlowConfig,
    /// Run the saved questions whose alert is due and deliver those that fire to
    /// `[[alerts.webhooks]]` (every 15m, no retries, 5m timeout; each question's own `every`
    /// or `cron` says when it is due).
    pub question_alerts: FlowConfig,
}

/// One flow's settings as written; unset fields take the flow's defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    #[serde(with = "humantime_serde")]
    pub every: Option<std::time::Duration>,
    /// Interval runs fall on anchor + k × every (default: the Unix epoch, so 30m runs at :00
    /// and :30 UTC).
    pub anchor: Option<chrono::DateTime<chrono::Utc>>,
    pub cron: Option<String>,
    /// Scheduled runs are off (a run can still be started by hand).
    pub paused: Option<bool>,
    /// Further tries of a failed task, after retry_delay, doubling, with jitter.
    pub retries: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub retry_delay: Option<std::time::Duration>,
    /// Longest a task may run before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub task_timeout: Option<std::time::Duration>,
}

/// A flow's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    pub every: Option<std::time::Duration>,
    pub anchor: chrono::DateTime<chrono::Utc>,
    pub cron: Option<String>,
    pub paused: bool,
    pub retries: u32,
    pub retry_delay: std::time::Duration,
    pub task_timeout: std::time::Duration,
}

impl FlowsConfig {
    /// The built-in flow names.
    pub const NAMES: [&'static str; 4] =
        ["spotify-ingest", "enrich", "daily-etl", "question-alerts"];

    /// A built-in flow's effective settings: what the configuration says, over its defaults.
    pub fn resolved(&self, name: &str) -> Option<FlowSettings> {
        let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
        let seconds = std::time::Duration::from_secs;
        let (given, every, cron, retries, retry_delay, timeout) = match name {
            "spotify-ingest" => (
                &self.spotify_ingest,
                Some(minutes(30)),
                None,
                2,
                seconds(30),
                minutes(5),
            ),
            "enrich" => (
                &self.enrich,
                Some(minutes(10)),
                None,
                0,
                seconds(30),
                minutes(15),
            ),
            "daily-etl" => (
                &self.daily_etl,
                None,
                Some("0 3 * * *".to_string()),
                1,
                minutes(1),
                minutes(60),
            ),
            "question-alerts" => (
                &self.question_alerts,
                Some(minutes(15)),
                None,
                0,
                seconds(30),
                minutes(5),
            ),
            _ => return None,
        };
        // A schedule given replaces the default one whole (an `every` drops the default cron).
        let (every, cron) = if given.every.is_some() || given.cron.is_some() {
            (given.every, given.cron.clone())
        } else {
            (every, cron)
        };
        Some(FlowSettings {
            every,
            anchor: given.anchor.unwrap_or(chrono::DateTime::UNIX_EPOCH),
            cron,
            paused: given.paused.unwrap_or(false),
            retries: given.retries.unwrap_or(retries),
            retry_delay: given.retry_delay.unwrap_or(retry_delay),
            task_timeout: given.task_timeout.unwrap_or(timeout),
        })
    }
}

/// Where failed and recovered runs are announced.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook: its URL (a secret: Discord's and Slack's carry a token) and the body's format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Secret,
    #[serde(default)]
    pub format: WebhookFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"flow", "run_id", "state", "error", "started_at", "ended_at", "message"}`, and for a
    /// question alert (`state` "Alert") also `"title"` and `"question"` (its slug).
    #[default]
    Generic,
    /// ntfy.sh: the message as text, with Title, Priority and Tags headers.
    Ntfy,
    /// `{"content": message}`.
    Discord,
    /// `{"text": message}`.
    Slack,
}

/// Enrichment: Spotify metadata, MusicBrainz genres and origins, countries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentConfig {
    /// Spotify metadata requests per second (the API allows bursts but answers 429 to
    /// sustained load; 0 turns the limiter off, for local fake servers only).
    pub spotify_requests_per_second: f64,
    /// Look up tracks that came without a Spotify URI (basic export, Last.fm) by search.
    pub spotify_search: bool,
    /// MusicBrainz's web service root.
    pub musicbrainz_url: String,
    /// MusicBrainz requests per second for the whole process: at most 1 against
    /// musicbrainz.org (its rule); 0 turns the limiter off, for local servers only.
    pub musicbrainz_requests_per_second: f64,
    /// Contact for the MusicBrainz User-Agent (`magpie/<version> ( contact )`): an e-mail
    /// address or URL where the operators can reach you.
    pub contact: String,
    /// Lowest MusicBrainz search score (0-100) accepted for a name match.
    pub search_min_score: u8,
    /// Tries per item before it stays failed.
    pub max_attempts: u32,
    /// Longest wait for one response.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
}

impl Default for EnrichmentConfig {
    fn default() -> Self {
        Self {
            spotify_requests_per_second: 2.0,
            spotify_search: false,
            musicbrainz_url: "https://musicbrainz.org".into(),
            musicbrainz_requests_per_second: 1.0,
            contact: "https://github.com/magpie-music/magpie".into(),
            search_min_score: 90,
            max_attempts: 5,
            request_timeout: std::time::Duration::from_secs(20),
        }
    }
}

/// The dbt-style models.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// A project folder (with dbt_project.yml) to build instead of the shipped models.
    pub project_dir: Option<PathBuf>,
    /// Models and tests built at once, like dbt's `threads`; 0 (the default) means one below
    /// a 512 MB memory budget and as many as DuckDB has threads from there.
    pub threads: usize,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter such as `magpie=debug`).
    pub level: String,
    /// JSON lines to `DATA_DIR/logs/magpie.log`, rotated by size.
    pub file: bool,
    /// Size at which the log file is rotated.
    pub max_size: ByteSize,
    /// Rotated files kept besides the current one.
    pub files: usize,
}

/// History import settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Two events of the same track from different sources within this many seconds are one
    /// listen (PRODUCT §2.2).
    pub dedupe_window_secs: u32,
    /// Rows parsed before they are handed to the warehouse in one append.
    pub batch_rows: usize,
}

/// Spotify application credentials (from the Spotify developer dashboard).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpotifyConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The redirect URI registered in the Spotify dashboard: a loopback literal (paste-back
    /// flow) or https.
    pub redirect_uri: String,
    /// How often each listener's recently-played is polled.
    #[serde(with = "humantime_serde")]
    pub poll_interval: std::time::Duration,
    /// The next poll after a full page (plays may have been missed).
    #[serde(with = "humantime_serde")]
    pub catch_up_interval: std::time::Duration,
    /// Spotify's accounts service (tests point it at a local fake).
    pub accounts_url: String,
    /// Spotify's Web API (tests point it at a local fake).
    pub api_url: String,
}

impl Default for SpotifyConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            redirect_uri: "http://127.0.0.1:8888/callback".into(),
            poll_interval: std::time::Duration::from_secs(30 * 60),
            catch_up_interval: std::time::Duration::from_secs(5 * 60),
            accounts_url: "https://accounts.spotify.com".into(),
            api_url: "https://api.spotify.com".into(),
        }
    }
}

/// The web server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    /// Dashboards need the admin login too (by default they are readable on the LAN; admin
    /// pages and actions always need it).
    pub require_login: bool,
    /// The address people reach magpie at, e.g. `https://music.example.org` behind Synology's
    /// reverse proxy or Caddy. With https, cookies are marked `Secure`; links shown to copy
    /// (scrobbling clients, shares) start with it.
    pub public_url: Option<String>,
    /// Reverse proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For` names the real
    /// client, for login throttling and logs; any other peer's header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Who may read `/metrics`: `open`, `login` (the admin session) or `token` (a bearer
    /// token, `metrics_token`, for Prometheus or Alloy). Default: `login` when
    /// `require_login` is on, else `open`.
    pub metrics: Option<MetricsAccess>,
    /// The bearer token scrapers send when `metrics = "token"` (at least 16 characters).
    pub metrics_token: Option<Secret>,
    /// Largest request body accepted.
    pub max_body: ByteSize,
    /// Longest a request may take from its first byte to the response.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
    /// Longest a client may take to send a request's headers (and an idle keep-alive
    /// connection may wait for its next request).
    #[serde(with = "humantime_serde")]
    pub header_timeout: std::time::Duration,
    /// Requests handled at once; more wait briefly, then get 503.
    pub max_concurrent_requests: usize,
    /// Open connections; more are closed at once.
    pub max_connections: usize,
    /// Longest one page query may run before it is interrupted.
    #[serde(with = "humantime_serde")]
    pub query_timeout: std::time::Duration,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    Open,
    Login,
    Token,
}

impl ServerConfig {
    /// `metrics`, resolved against `require_login`.
    pub fn metrics_access(&self) -> MetricsAccess {
        self.metrics.unwrap_or(if self.require_login {
            MetricsAccess::Login
        } else {
            MetricsAccess::Open
        })
    }

    /// Whether people reach magpie over https (cookies are then `Secure`).
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// `trusted_proxies`, parsed (validated at load).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_net(p).ok())
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(invalid("server.port", "must be between 1 and 65535"));
        }
        if let Some(public) = &self.public_url {
            let ok = url::Url::parse(public).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
            });
            if !ok {
                return Err(invalid(
                    "server.public_url",
                    format!(
                        "`{public}` is not an http(s) address without a path, e.g. https://music.example.org"
                    ),
                ));
            }
        }
        for (i, proxy) in self.trusted_proxies.iter().enumerate() {
            parse_net(proxy).map_err(|_| {
                invalid(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("`{proxy}` is not an IP address or CIDR range (e.g. 172.17.0.1 or 10.0.0.0/8)"),
                )
            })?;
        }
        if self.metrics_access() == MetricsAccess::Token
            && self
                .metrics_token
                .as_ref()
                .is_none_or(|t| t.expose().chars().count() < 16)
        {
            return Err(invalid(
                "server.metrics_token",
                "`metrics = \"token\"` needs a metrics_token of at least 16 characters",
            ));
        }
        if self.max_body < ByteSize::kb(4) {
            return Err(invalid("server.max_body", "must be at least 4 KB"));
        }
        for (key, value) in [
            ("server.request_timeout", self.request_timeout),
            ("server.header_timeout", self.header_timeout),
            ("server.query_timeout", self.query_timeout),
        ] {
            if value < std::time::Duration::from_secs(1) {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if self.max_concurrent_requests == 0 || self.max_connections == 0 {
            return Err(invalid(
                "server.max_concurrent_requests",
                "request and connection limits must be at least 1",
            ));
        }
        Ok(())
    }
}

/// An IP address (a /32 or /128) or a CIDR range.
fn parse_net(text: &str) -> Result<ipnet::IpNet, ()> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ())
}

/// The `ENVIRONMENT` profiles of the old stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Development,
    Testing,
    #[default]
    Production,
}

/// A string that never shows itself in `Debug` or logs.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is sent to the service that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            duckdb_path: None,
            environment: Profile::Production,
            timezone: "UTC".into(),
            default_listener: "default".into(),
            memory_budget: ByteSize::mb(160),
            log: LogConfig::default(),
            import: ImportConfig::default(),
            spotify: SpotifyConfig::default(),
            server: ServerConfig::default(),
            models: ModelsConfig::default(),
            enrichment: EnrichmentConfig::default(),
            flows: FlowsConfig::default(),
            alerts: AlertsConfig::default(),
            backup: BackupConfig::default(),
            market: MarketConfig::default(),
            explore: ExploreConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            file: true,
            max_size: ByteSize::mb(10),
            files: 3,
        }
    }
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            dedupe_window_secs: 60,
            batch_rows: 8192,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".into(),
            port: 8080,
            require_login: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            metrics: None,
            metrics_token: None,
            max_body: ByteSize::mb(1),
            request_timeout: std::time::Duration::from_secs(60),
            header_timeout: std::time::Duration::from_secs(10),
            max_concurrent_requests: 64,
            max_connections: 512,
            query_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// A configuration problem, reported as one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("config: {0}")]
    Other(String),
}

/// Where configuration comes from: a file, the environment and command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The TOML file (`--config` / `MAGPIE_CONFIG`); it must exist when given.
    pub file: Option<PathBuf>,
    /// The environment; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
    /// Overrides from command-line flags, as (dotted key, value).
    pub overrides: Vec<(String, String)>,
}

impl ConfigSources {
    /// Replace the process environment with the given variables (for tests and embedding).
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Add a command-line override of a dotted key.
    pub fn with_override(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((key.to_string(), value.into()));
        self
    }
}

/// The old stack's variable names and the keys they set.
const LEGACY_ENV: &[(&str, &str)] = &[
    ("DUCKDB_PATH", "duckdb_path"),
    ("LOG_LEVEL", "log.level"),
    ("ENVIRONMENT", "environment"),
    ("SPOTIFY_CLIENT_ID", "spotify.client_id"),
    ("SPOTIFY_CLIENT_SECRET", "spotify.client_secret"),
];

impl Config {
    /// Read, merge and validate configuration.
    pub fn load(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = match &sources.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        let profile_name = env
            .get("MAGPIE_ENVIRONMENT")
            .or_else(|| env.get("ENVIRONMENT"))
            .map(|s| s.to_ascii_lowercase());
        let profile = match profile_name.as_deref() {
            None | Some("") => None,
            Some(name) => Some(parse_profile(name)?),
        };

        let mut builder = config::Config::builder();
        for (key, value) in profile_defaults(profile.unwrap_or_default()) {
            builder = builder.set_default(key, value).map_err(other)?;
        }
        if let Some(path) = &sources.file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.clone(),
                    message: "no such file".into(),
                });
            }
            builder = builder.add_source(config::File::from(path.as_path()).required(true));
        }
        let magpie_env: HashMap<String, String> = env
            .iter()
            .filter(|(k, v)| {
                k.starts_with("MAGPIE_") && k.as_str() != "MAGPIE_CONFIG" && !v.is_empty()
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("MAGPIE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.trusted_proxies")
                .source(Some(magpie_env.into_iter().collect())),
        );
        for (var, key) in LEGACY_ENV {
            if let Some(value) = env.get(*var).filter(|v| !v.is_empty()) {
                let value = if *key == "environment" {
                    value.to_ascii_lowercase()
                } else {
                    value.clone()
                };
                builder = builder.set_override(*key, value).map_err(other)?;
            }
        }
        for (key, value) in &sources.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(other)?;
        }
        let merged = builder
            .build()
            .map_err(|e| describe(e, sources.file.as_deref()))?;
        let config: Config = merged
            .try_deserialize()
            .map_err(|e| describe(e, sources.file.as_deref()))?;
        config.validate()?;
        Ok(config)
    }

    /// Check the values serde cannot: ranges, time zones, sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                "timezone",
                format!(
                    "`{}` is not an IANA time zone (e.g. `Europe/Berlin`, `UTC`)",
                    self.timezone
                ),
            ));
        }
        if self.memory_budget < ByteSize::mb(64) {
            return Err(invalid(
                "memory_budget",
                format!("{} is below the minimum of 64 MB", self.memory_budget),
            ));
        }
        if self.import.dedupe_window_secs > 3600 {
            return Err(invalid(
                "import.dedupe_window_secs",
                "must be between 0 and 3600 seconds",
            ));
        }
        if self.models.threads > 16 {
            return Err(invalid(
                "models.threads",
                "must be between 0 (automatic) and 16",
            ));
        }
        if self.import.batch_rows == 0 {
            return Err(invalid("import.batch_rows", "must be at least 1"));
        }
        if self.default_listener.trim().is_empty() {
            return Err(invalid("default_listener", "must not be empty"));
        }
        let level = self.log.level.to_ascii_lowercase();
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "`{}` is not a level (error, warn, info, debug, trace)",
                    self.log.level
                ),
            ));
        }
        let redirect = url::Url::parse(&self.spotify.redirect_uri).ok();
        let redirect_ok = redirect.as_ref().is_some_and(|u| {
            u.scheme() == "https"
                || (u.scheme() == "http"
                    && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]")))
        });
        if !redirect_ok {
            return Err(invalid(
                "spotify.redirect_uri",
                "Spotify accepts https or a loopback literal such as http://127.0.0.1:8888/callback \
                 (not `localhost`)",
            ));
        }
        if self.spotify.poll_interval < std::time::Duration::from_secs(60)
            || self.spotify.catch_up_interval < std::time::Duration::from_secs(60)
        {
            return Err(invalid(
                "spotify.poll_interval",
                "poll intervals must be at least 1 minute",
            ));
        }
        self.validate_enrichment()?;
        self.validate_flows()?;
        self.market.validate()?;
        if self.log.max_size < ByteSize::kb(64) {
            return Err(invalid("log.max_size", "must be at least 64 KB"));
        }
        if self.explore.timeout < std::time::Duration::from_secs(1) {
            return Err(invalid("explore.timeout", "must be at least 1 second"));
        }
        if !(1..=100_000).contains(&self.explore.max_rows) {
            return Err(invalid("explore.max_rows", "must be between 1 and 100000"));
        }
        if self.explore.public_requests_per_minute == 0 {
            return Err(invalid(
                "explore.public_requests_per_minute",
                "must be at least 1",
            ));
        }
        self.server.validate()
    }

    fn validate_flows(&self) -> Result<(), ConfigError> {
        for name in FlowsConfig::NAMES {
            let flow = self.flows.resolved(name).expect("built-in flow");
            let key = |field: &str| format!("flows.{}.{field}", name.replace('-', "_"));
            match (&flow.every, &flow.cron) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &key("every"),
                        "give either `every` or `cron`, not both",
                    ));
                }
                (Some(every), None) if *every < std::time::Duration::from_secs(10) => {
                    return Err(invalid(&key("every"), "must be at least 10 seconds"));
                }
                (None, Some(cron)) => {
                    crate::scheduler::Schedule::cron(cron, self.tz())
                        .map_err(|e| invalid(&key("cron"), e))?;
                }
                _ => {}
            }
            if flow.task_timeout < std::time::Duration::from_secs(1) {
                return Err(invalid(&key("task_timeout"), "must be at least 1 second"));
            }
        }
        for (i, hook) in self.alerts.webhooks.iter().enumerate() {
            let ok = url::Url::parse(hook.url.expose())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(invalid(
                    &format!("alerts.webhooks[{i}].url"),
                    "must be an http(s) URL",
                ));
            }
        }
        Ok(())
    }

    fn validate_enrichment(&self) -> Result<(), ConfigError> {
        let e = &self.enrichment;
        let mb = url::Url::parse(&e.musicbrainz_url)
            .map_err(|err| invalid("enrichment.musicbrainz_url", format!("not a URL: {err}")))?;
        let official = mb
            .host_str()
            .is_some_and(|h| h == "musicbrainz.org" || h.ends_with(".musicbrainz.org"));
        let rate = e.musicbrainz_requests_per_second;
        if !rate.is_finite() || rate < 0.0 || (official && (rate == 0.0 || rate > 1.0)) {
            return Err(invalid(
                "enrichment.musicbrainz_requests_per_second",
                "MusicBrainz allows at most 1 request per second (0 < rate <= 1); a rate of 0 \
                 (no limit) is only for a local mirror",
            ));
        }
        let rate = e.spotify_requests_per_second;
        if !rate.is_finite() || !(0.0..=20.0).contains(&rate) {
            return Err(invalid(
                "enrichment.spotify_requests_per_second",
                "must be between 0 (no limit) and 20",
            ));
        }
        if e.contact.trim().is_empty() {
            return Err(invalid(
                "enrichment.contact",
                "MusicBrainz asks for a contact (e-mail or URL) in the User-Agent",
            ));
        }
        if e.search_min_score > 100 {
            return Err(invalid("enrichment.search_min_score", "must be 0-100"));
        }
        if e.max_attempts == 0 {
            return Err(invalid("enrichment.max_attempts", "must be at least 1"));
        }
        Ok(())
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// How many backups to keep.
    pub fn retention(&self) -> crate::warehouse::backup::Retention {
        crate::warehouse::backup::Retention {
            daily: self.backup.keep_daily,
            weekly: self.backup.keep_weekly,
        }
    }

    /// The read-only snapshot published after every build: what the web pages, outside tools
    /// (DuckDB CLI, DBeaver, Metabase) and read-only commands beside `magpie serve` read.
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir
            .join("snapshot")
            .join("magpie-readonly.duckdb")
    }

    /// The warehouse file.
    pub fn warehouse_path(&self) -> PathBuf {
        self.duckdb_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("magpie.duckdb"))
    }

    /// How many models and tests `magpie build` runs at once (`models.threads`, resolved),
    /// and whether models still go one at a time with only tests beside them. DuckDB's memory
    /// is shared by every connection: below 512 MB, two large models at once ran out of it and
    /// were built again alone (measured at 350,000 plays and 160 MB: two models retried in most
    /// runs, peak RSS +10 MB), so there the automatic setting runs tests beside one model.
    pub fn build_threads(&self) -> (usize, bool) {
        let duckdb_threads =
            crate::warehouse::OpenOptions::from_budget(self.memory_budget, &self.data_dir).threads;
        match self.models.threads {
            0 if self.memory_budget < ByteSize::mb(512) => (duckdb_threads.min(2), true),
            0 => (duckdb_threads, false),
            n => (n, false),
        }
    }

    /// The listener's time zone (validated at load).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

fn parse_profile(name: &str) -> Result<Profile, ConfigError> {
    match name {
        "development" | "dev" => Ok(Profile::Development),
        "testing" | "test" => Ok(Profile::Testing),
        "production" | "prod" => Ok(Profile::Production),
        other => Err(invalid(
            "environment",
            format!("`{other}` is not one of development, testing, production"),
        )),
    }
}

/// Defaults that differ by profile (applied below the file and the environment).
fn profile_defaults(profile: Profile) -> Vec<(&'static str, &'static str)> {
    match profile {
        Profile::Development => vec![("environment", "development"), ("log.level", "debug")],
        Profile::Testing => vec![
            ("environment", "testing"),
            ("log.level", "warn"),
            ("import.batch_rows", "1024"),
            ("memory_budget", "256MB"),
            ("flows.spotify_ingest.every", "1m"),
            ("flows.enrich.every", "1m"),
            ("flows.daily_etl.every", "5m"),
        ],
        Profile::Production => vec![("environment", "production"), ("log.level", "info")],
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

fn other(e: config::ConfigError) -> ConfigError {
    ConfigError::Other(e.to_string())
}

/// A key as config-rs names it, with the dot it leaves out after an array index
/// (`alerts.webhooks[0]url` is `alerts.webhooks[0].url`).
fn key_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|n| !matches!(n, '.' | '[')) {
            out.push('.');
        }
    }
    out
}

/// Turn config-rs errors into one line that names the key.
fn describe(e: config::ConfigError, file: Option<&Path>) -> ConfigError {
    match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => invalid(
            &key_name(&key),
            format!("expected {expected}, found {unexpected}"),
        ),
        // A required key left out (a webhook's `url`).
        config::ConfigError::NotFound(key) => invalid(&key_name(&key), "missing: it is required"),
        config::ConfigError::Foreign(inner) if file.is_some() => ConfigError::File {
            path: file.unwrap_or(Path::new("")).to_path_buf(),
            message: inner.to_string(),
        },
        // The file as it was given: config-rs's `uri` is relative to the working directory
        // (`../../tmp/magpie.toml` for `/tmp/magpie.toml`).
        config::ConfigError::FileParse { uri, cause } => ConfigError::File {
            path: file.map_or_else(|| PathBuf::from(uri.unwrap_or_default()), Path::to_path_buf),
            message: cause.to_string(),
        },
        // A value refused while deserialising (a duration that is not one): config-rs knows
        // the key.
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => invalid(&key_name(&key), error.to_string()),
        config::ConfigError::At { error, .. } => describe(*error, file),
        config::ConfigError::Message(message) => match message.split_once(" for key `") {
            Some((what, rest)) => {
                let key = rest.split('`').next().unwrap_or(rest);
                invalid(&key_name(key), what.to_string())
            }
            None => ConfigError::Other(message),
        },
        other => ConfigError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(&ConfigSources::default().with_env(env.iter().copied()))
    }

    #[test]
    fn defaults_work() {
        let cfg = load(&[]).unwrap();
        assert_eq!(cfg.environment, Profile::Production);
        assert_eq!(cfg.warehouse_path(), PathBuf::from("data/magpie.duckdb"));
        assert_eq!(cfg.import.dedupe_window_secs, 60);
    }

    #[test]
    fn legacy_names_are_read() {
        let cfg = load(&[
            ("DUCKDB_PATH", "/tmp/x.duckdb"),
            ("LOG_LEVEL", "warn"),
            ("ENVIRONMENT", "Development"),
            ("SPOTIFY_CLIENT_ID", "abc"),
            ("SPOTIFY_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap();
        assert_eq!(cfg.warehouse_path(), PathBuf::from("/tmp/x.duckdb"));
        assert_eq!(cfg.log.level, "warn");
        assert_eq!(cfg.environment, Profile::Development);
        assert_eq!(cfg.spotify.client_id.as_deref(), Some("abc"));
        assert_eq!(
            cfg.spotify.client_secret.as_ref().unwrap().expose(),
            "s3cret"
        );
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn profile_sets_defaults_but_explicit_values_win() {
        let cfg = load(&[("ENVIRONMENT", "testing")]).unwrap();
        assert_eq!(cfg.import.batch_rows, 1024);
        assert_eq!(cfg.log.level, "warn");
        let cfg = load(&[
            ("ENVIRONMENT", "testing"),
            ("MAGPIE_IMPORT__BATCH_ROWS", "7"),
        ])
        .unwrap();
        assert_eq!(cfg.import.batch_rows, 7);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = load(&[("ENVIRONMENT", "staging")]).unwrap_err().to_string();
        assert!(
            err.contains("`environment`") && err.contains("staging"),
            "{err}"
        );
        let err = load(&[("MAGPIE_TIMEZONE", "Mars/Olympus")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`timezone`"), "{err}");
        let err = load(&[("MAGPIE_IMPORT__DEDUPE_WINDOW_SECS", "soon")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("import.dedupe_window_secs"), "{err}");
        let err = load(&[("MAGPIE_MEMORY_BUDGET", "10MB")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`memory_budget`"), "{err}");
        let err = load(&[("MAGPIE_MODELS__THREADS", "64")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`models.threads`"), "{err}");
    }

    /// Found by tests/fuzz_config.rs: a value refused as it is deserialised came out as a
    /// bare message (`config: invalid value ... for key ...`), and a TOML syntax error named
    /// the file by a path relative to the working directory.
    #[test]
    fn regression_refused_values_name_the_key_and_syntax_errors_the_file() {
        let err = load(&[("MAGPIE_EXPLORE__TIMEOUT", " ")]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "explore.timeout"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magpie.toml");
        let load_file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&ConfigSources {
                file: Some(path.clone()),
                env: Some(HashMap::new()),
                overrides: vec![],
            })
            .unwrap_err()
        };
        let err = load_file("d");
        assert!(
            matches!(&err, ConfigError::File { path: p, .. } if *p == path),
            "{err}"
        );
        // A webhook without its url, and one whose format is not one: named with the dot
        // config-rs leaves out after the index.
        for (hook, key) in [
            ("format = \"generic\"", "alerts.webhooks[0].url"),
            (
                "url = \"https://x\"\nformat = \"nope\"",
                "alerts.webhooks[0].format",
            ),
        ] {
            let err = load_file(&format!("[[alerts.webhooks]]\n{hook}\n"));
            assert!(
                matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
                "{err}"
            );
        }
    }

    #[test]
    fn build_threads_follow_the_budget_unless_set() {
        let duckdb = |c: &Config| {
            crate::warehouse::OpenOptions::from_budget(c.memory_budget, &c.data_dir).threads
        };
        let small = load(&[]).unwrap();
        assert_eq!(
            small.build_threads(),
            (duckdb(&small).min(2), true),
            "160 MB: one model at a time, tests beside it"
        );
        let big = load(&[("MAGPIE_MEMORY_BUDGET", "1GB")]).unwrap();
        assert_eq!(big.build_threads(), (duckdb(&big), false));
        let set = load(&[("MAGPIE_MODELS__THREADS", "3")]).unwrap();
        assert_eq!(set.build_threads(), (3, false));
    }

    #[test]
    fn toml_file_is_read_and_unknown_keys_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magpie.toml");
        std::fs::write(
            &path,
            "timezone = \"Europe/Berlin\"\n[import]\ndedupe_window_secs = 90\n",
        )
        .unwrap();
        let cfg = Config::load(&ConfigSources {
            file: Some(path.clone()),
            env: Some(HashMap::new()),
            overrides: vec![],
        })
        .unwrap();
        assert_eq!(cfg.timezone, "Europe/Berlin");
        assert_eq!(cfg.import.dedupe_window_secs, 90);

        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = Config::load(&ConfigSources {
            file: Some(path),
            env: Some(HashMap::new()),
            overrides: vec![],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
