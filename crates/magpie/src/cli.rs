//! The command-line grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// magpie: your listening history and market data in one small process.
#[derive(Debug, Parser)]
#[command(name = "magpie", version, about, long_about = None)]
pub struct Cli {
    /// Folder for the warehouse, secrets, logs and backups [default: ./data]
    #[arg(long, global = true, env = "MAGPIE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// TOML configuration file
    #[arg(long, global = true, env = "MAGPIE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import listening history: Spotify exports (zip, folder or JSON files), Last.fm CSV/JSON,
    /// ListenBrainz and Maloja exports, Apple Music Play Activity CSV
    Import(ImportArgs),
    /// Build the star schema: seeds, models in dependency order, then data tests
    Build(BuildArgs),
    /// Run a read-only SQL query against the warehouse and print the result
    Sql(SqlArgs),
    /// Try magpie on a generated listening history (no account needed), then serve its dashboards
    Demo(DemoArgs),
    /// Serve the dashboards (HTML, JSON and CSV) and /health
    Serve(ServeArgs),
    /// Run a flow once in the foreground (spotify-ingest, enrich, daily-etl, question-alerts);
    /// the exit code is its result, for cron or another orchestrator
    Run(RunArgs),
    /// List recent flow runs
    Runs(RunsArgs),
    /// Write a consistent, dated copy of the warehouse (keeping backup.keep_daily daily and
    /// backup.keep_weekly weekly ones)
    Backup {
        /// Folder for the backup [default: backup.dir, DATA_DIR/backups]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Restore a backup into an empty data folder
    Restore {
        /// The backup file (magpie-YYYY-MM-DD.duckdb)
        #[arg(value_name = "BACKUP")]
        path: PathBuf,
    },
    /// Enrich artists, tracks and albums (Spotify metadata, MusicBrainz genres and origins,
    /// countries) in the foreground; resumable after Ctrl-C
    Enrich(EnrichArgs),
    /// Connect Spotify accounts and poll their recently played tracks
    #[command(subcommand)]
    Spotify(SpotifyCommand),
    /// The Deribit market-data collector
    #[command(subcommand)]
    Market(MarketCommand),
    /// Public share links of a dashboard or a saved question (read-only, on /public/TOKEN)
    #[command(subcommand)]
    Share(ShareCommand),
    /// Listeners' tokens for players and scrobblers (the ListenBrainz and Last.fm APIs) and
    /// their own filters (artists, albums, genres hidden from their stats)
    #[command(subcommand)]
    Listener(ListenerCommand),
    /// Administration: the web admin password
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Show the effective configuration (secrets hidden) after validating it
    Config,
    /// Exit 0 if a running `magpie serve` answers /health (the container's health check)
    Health {
        /// The address to ask [default: http://127.0.0.1:<server.port>/health]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Check the configuration, data folder, secrets, warehouse, Spotify, MusicBrainz, memory
    /// and disk, and say what to fix
    Doctor {
        /// Skip the checks that reach Spotify and MusicBrainz over the network
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files, folders or zip archives
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Whose listening this is [default: the configured default listener]
    #[arg(long)]
    pub listener: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Only these models: NAME, NAME+ (and what depends on it), +NAME (and what it depends on)
    #[arg(long, value_name = "SELECTOR")]
    pub select: Option<String>,
    /// Rebuild incremental models from scratch
    #[arg(long)]
    pub full_refresh: bool,
    /// Skip the data tests
    #[arg(long)]
    pub no_tests: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow
    pub flow: String,
    /// A parameter for the run, recorded with it (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this flow's runs
    #[arg(long)]
    pub flow: Option<String>,
    /// How many
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct EnrichArgs {
    /// Only this source [default: all]
    #[arg(long, value_name = "SOURCE", value_parser = ["spotify", "musicbrainz", "geo"])]
    pub source: Vec<String>,
    /// Stop after this many items
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Rebuild the marts afterwards so the dashboards show what was found
    #[arg(long)]
    pub build: bool,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (DuckDB SQL)
    pub query: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// At most this many rows (table format only)
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub action: Option<DemoAction>,
    #[command(flatten)]
    pub shape: DemoShape,
    /// Stop after building the marts instead of serving the dashboards
    #[arg(long)]
    pub no_serve: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: server.bind, 0.0.0.0]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Port to listen on [default: server.port, 8080]
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum DemoAction {
    /// Only write the Spotify export files (for benchmarks and tests)
    Generate {
        #[command(flatten)]
        shape: DemoShape,
        /// Folder for the export files
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args, Clone)]
pub struct DemoShape {
    /// Number of plays
    #[arg(long, default_value_t = 60_000)]
    pub plays: u64,
    /// Years of history
    #[arg(long, default_value_t = 4)]
    pub years: u32,
    /// Random seed: the same seed and end date give the same history
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Last day of the history, YYYY-MM-DD [default: today]
    #[arg(long, value_name = "DATE")]
    pub end: Option<chrono::NaiveDate>,
}

#[derive(Debug, Subcommand)]
pub enum SpotifyCommand {
    /// Connect a listener's Spotify account (paste-back flow: works on a NAS without a browser)
    Connect {
        /// Whose account [default: the configured default listener]
        #[arg(long)]
        listener: Option<String>,
    },
    /// Poll recently-played once for every connected listener, then exit (for cron or Prefect)
    Poll {
        /// Poll even if the next poll is not due yet (a 429's wait is still honoured)
        #[arg(long)]
        force: bool,
    },
    /// Show connected listeners, token expiry, poll state and possible gaps
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Create a link and print its URL (shown this once: only a hash of its token is kept)
    Create(ShareCreateArgs),
    /// List the links: id, what they show, locked variables, when made (never the token)
    List,
    /// Revoke a link by its id (from `magpie share list`): it stops working at once
    Revoke {
        /// The link's id
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["dashboard", "question"])))]
pub struct ShareCreateArgs {
    /// Share this dashboard (its slug, as in /d/SLUG)
    #[arg(long, value_name = "SLUG")]
    pub dashboard: Option<String>,
    /// Share this saved question (its slug: the file name in DATA_DIR/questions/)
    #[arg(long, value_name = "SLUG")]
    pub question: Option<String>,
    /// Fix a variable to a value that viewers cannot change (repeatable)
    #[arg(long = "lock", value_name = "VAR=VALUE", value_parser = parse_param)]
    pub locks: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Every listener: plays, first and last listen, Spotify connected, scrobble tokens, imports
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Add a listener (letters a-z and A-Z, digits, '.', '_', '-'; up to 64 characters)
    Add {
        /// The new listener's name
        name: String,
    },
    /// Rename a listener: its plays, imports and tokens (which keep working) follow
    Rename {
        /// The listener's name now
        old: String,
        /// Its new name
        new: String,
    },
    /// Merge two names of the same person: FROM's plays become INTO's (the same listen
    /// recorded under both is kept once), its tokens follow, FROM is removed. A backup of the
    /// warehouse is made first
    Merge {
        /// The listener that goes away
        from: String,
        /// The listener that stays
        into: String,
        /// Do not ask for confirmation (needed when standard input is not a terminal)
        #[arg(long)]
        yes: bool,
        /// Merge away even the configured default_listener
        #[arg(long)]
        allow_default: bool,
    },
    /// Remove a listener with its plays, imports and tokens. A backup of the warehouse is made
    /// first
    Remove {
        /// The listener to remove
        name: String,
        /// Do not ask for confirmation (needed when standard input is not a terminal)
        #[arg(long)]
        yes: bool,
        /// Remove even the configured default_listener
        #[arg(long)]
        allow_default: bool,
    },
    /// Tokens that players and scrobblers submit a listener's listens with
    #[command(subcommand)]
    Token(TokenCommand),
    /// A listener's own filters: artists, albums or genres hidden from their stats (no event
    /// is deleted; the models leave the plays out from the next build on)
    #[command(subcommand)]
    Filter(FilterCommand),
}

#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Hide an artist, an album or a genre from a listener's stats
    Add(FilterArgs),
    /// List the filters: listener, kind, name, when added
    List {
        /// Only this listener's
        #[arg(long, value_name = "NAME")]
        listener: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Count a hidden artist, album or genre again
    Remove(FilterArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["artist", "album", "genre"])))]
pub struct FilterArgs {
    /// Whose stats (an existing listener)
    #[arg(long, value_name = "NAME")]
    pub listener: String,
    /// An artist's name as shown (any case; accents optional)
    #[arg(long, value_name = "NAME")]
    pub artist: Option<String>,
    /// An album's name as shown: that album of any artist
    #[arg(long, value_name = "NAME")]
    pub album: Option<String>,
    /// A genre (as in the genres page): every artist with it
    #[arg(long, value_name = "NAME")]
    pub genre: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it with the settings to paste into clients (shown this once:
    /// only hashes of it are kept)
    Create {
        /// Whose listens the token submits (made when new)
        #[arg(long, value_name = "NAME")]
        listener: String,
        /// What the token is for ("phone", "navidrome")
        #[arg(long)]
        label: Option<String>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the tokens: id, listener, label, when made (never the token)
    List {
        /// Only this listener's
        #[arg(long, value_name = "NAME")]
        listener: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `magpie listener token list`): it stops working at once,
    /// with every Last.fm session made from it
    Revoke {
        /// The token's id
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the password of the web admin pages (read from standard input; stored as an argon2 hash)
    #[command(alias = "set-password")]
    Password,
}

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// Collect option and perpetual tickers, quotes and trades from Deribit in the foreground
    /// (the `[market]` settings) until Ctrl-C or SIGTERM; the Parquet files are closed first
    Run,
}
