//! `magpie listener token create | list | revoke`: the tokens players and scrobblers submit a
//! listener's listens with, through the ListenBrainz (`/1/`) and Last.fm (`/2.0/`) APIs. They
//! live in `DATA_DIR/secrets/` (hashed), not in the warehouse, so this works while `magpie
//! serve` runs, and the server sees a change on its next request.

use std::process::ExitCode;

use magpie_core::Config;
use magpie_music::submit::tokens::TokenStore;

use crate::cli::{ListenerCommand, TokenCommand};

pub fn run(config: &Config, command: ListenerCommand) -> anyhow::Result<ExitCode> {
    let ListenerCommand::Token(command) = command;
    let store = TokenStore::new(&config.data_dir);
    let base = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", config.server.port));
    let base = base.trim_end_matches('/');
    match command {
        TokenCommand::Create {
            listener,
            label,
            json,
        } => {
            let made = store.create(listener.trim(), label.as_deref())?;
            let api = store.api_key()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": made.info.id,
                        "listener": made.info.listener,
                        "label": made.info.label,
                        "token": made.token,
                        "listenbrainz_url": base,
                        "lastfm_url": format!("{base}/2.0/"),
                        "lastfm_api_key": api.key,
                        "lastfm_api_secret": api.secret,
                    })
                );
            } else {
                println!(
                    "Token {} for listener {} (shown this once):\n\n    {}\n\n\
                     ListenBrainz clients: API URL {base}, the token above.\n\
                     Last.fm / Libre.fm clients: API URL {base}/2.0/, user name {}, password the token,\n    \
                     API key {}, API secret {}.",
                    made.info.id,
                    made.info.listener,
                    made.token,
                    made.info.listener,
                    api.key,
                    api.secret
                );
            }
        }
        TokenCommand::List { listener, json } => {
            let tokens = store.list(listener.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                println!(
                    "No tokens yet: `magpie listener token create --listener NAME` makes one."
                );
            } else {
                println!("{:<12} {:<16} {:<20} made", "id", "listener", "label");
                for t in tokens {
                    println!(
                        "{:<12} {:<16} {:<20} {}",
                        t.id,
                        t.listener,
                        t.label.unwrap_or_default(),
                        t.created_at.format("%Y-%m-%d %H:%M UTC")
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let gone = store.revoke(id.trim())?;
            println!(
                "Revoked token {} of listener {}: it stops working at once.",
                gone.id, gone.listener
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
