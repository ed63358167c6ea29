//! `magpie spotify connect | poll | status`.

use std::io::BufRead;
use std::process::ExitCode;

use magpie_core::Config;
use magpie_music::spotify::{self, MAX_LISTENERS, PollOutcome, Poller, TokenStore};

use crate::cli::SpotifyCommand;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn run(config: &Config, command: SpotifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        SpotifyCommand::Connect { listener } => connect(
            config,
            listener.unwrap_or_else(|| config.default_listener.clone()),
        ),
        SpotifyCommand::Poll { force } => poll(config, force),
        SpotifyCommand::Status => status(config),
    }
}

fn connect(config: &Config, listener: String) -> anyhow::Result<ExitCode> {
    let store = TokenStore::new(&config.data_dir);
    let connected = store.all()?;
    if !connected.contains_key(&listener) && connected.len() >= MAX_LISTENERS {
        anyhow::bail!(
            "{MAX_LISTENERS} listeners are connected already, the most a Spotify development-mode app serves"
        );
    }
    let pending = spotify::start_connect(&config.spotify, &listener)?;
    println!(
        "Connecting Spotify for listener `{listener}`.\n\n\
         1. In the Spotify developer dashboard, your app's Redirect URIs must include exactly\n      {redirect}\n\
         2. Open this link in a browser (on any device) and allow access:\n\n      {url}\n\n\
         3. The browser is then sent to {redirect}?code=… . That page will not load unless magpie runs\n    \
         on the same machine as the browser: that is expected. Copy the whole address from the\n    \
         address bar and paste it here, then press Enter:\n",
        redirect = config.spotify.redirect_uri,
        url = pending.url
    );
    let mut pasted = String::new();
    std::io::stdin().lock().read_line(&mut pasted)?;
    let tokens = runtime()?.block_on(async {
        let http = spotify::http_client()?;
        spotify::finish_connect(&config.spotify, &http, pending, &pasted).await
    })?;
    let renew = tokens.refresh_expires_at().date_naive();
    store.put(&listener, tokens)?;
    // The poller sees tokens authorised after a "reconnect needed" and resumes by itself, also
    // in a `magpie serve` that holds the warehouse right now.
    println!(
        "Connected `{listener}`. Tokens are in {} (mode 0600). Spotify ends this authorisation on {renew}; \
         magpie warns 14 days before. Poll now with `magpie spotify poll`.",
        store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn poll(config: &Config, force: bool) -> anyhow::Result<ExitCode> {
    let warehouse = super::open_warehouse(config)?;
    let poller = Poller::new(&warehouse, config)?;
    let results = runtime()?.block_on(poller.poll_all(force))?;
    if results.is_empty() {
        println!("no Spotify account is connected: run `magpie spotify connect`");
        return Ok(ExitCode::FAILURE);
    }
    let mut ok = true;
    for (listener, result) in results {
        match result {
            Ok(PollOutcome::Polled {
                items,
                imported,
                full_page,
            }) => println!(
                "{listener}: {items} plays on the page, {imported} new{}",
                if full_page {
                    " (a full page: plays may have been missed; the next poll comes sooner)"
                } else {
                    ""
                }
            ),
            Ok(PollOutcome::NotDue(at)) => {
                println!("{listener}: next poll due at {at} (--force to poll now)")
            }
            Ok(PollOutcome::RateLimited(until)) => {
                println!("{listener}: Spotify asked to wait until {until} (HTTP 429)");
            }
            Ok(PollOutcome::ReconnectNeeded) => {
                ok = false;
                println!(
                    "{listener}: reconnect needed: run `magpie spotify connect --listener {listener}`"
                );
            }
            Err(e) => {
                ok = false;
                println!("{listener}: failed: {e}");
            }
        }
    }
    warehouse.checkpoint()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A listener's poll status, last and next poll, and possible gaps.
type PollState = (Option<String>, Option<String>, Option<String>, i64);

fn status(config: &Config) -> anyhow::Result<ExitCode> {
    let store = TokenStore::new(&config.data_dir);
    let now = chrono::Utc::now();
    let conn = super::open_reader(config)?;
    for (listener, tokens) in store.all()? {
        let found: Option<PollState> = conn
            .query_row(
                "SELECT s.status, strftime(s.last_poll_at, '%Y-%m-%d %H:%M'), strftime(s.next_poll_at, '%Y-%m-%d %H:%M'),
                        (SELECT count(*) FROM raw.spotify_gaps g WHERE g.listener_id = l.listener_id)
                 FROM listeners l LEFT JOIN raw.spotify_poll_state s USING (listener_id) WHERE l.name = ?",
                [&listener],
                |r| Ok(Some((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))),
            )
            .or_else(|e| match e {
                duckdb::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let (status, last, next, gaps) = found.unwrap_or((None, None, None, 0));
        println!(
            "{listener}: {}; authorisation ends {}{}; last poll {}, next {}; {gaps} possible gap(s)",
            status.unwrap_or_else(|| "never polled".into()),
            tokens.refresh_expires_at().date_naive(),
            if tokens.reconnect_soon(now) {
                " (reconnect soon!)"
            } else {
                ""
            },
            last.unwrap_or_else(|| "–".into()),
            next.unwrap_or_else(|| "–".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}
