//! `magpie listener token create | list | revoke`: the tokens players and scrobblers submit a
//! listener's listens with, through the ListenBrainz (`/1/`) and Last.fm (`/2.0/`) APIs. They
//! live in `DATA_DIR/secrets/` (hashed), not in the warehouse, so this works while `magpie
//! serve` runs, and the server sees a change on its next request.
//!
//! `magpie listener filter add | list | remove`: a listener's own filters, artists, albums or
//! genres hidden from their stats (`raw.listener_filters`, applied by the models). Adding and
//! removing write the warehouse, so, like `magpie import`, they need it to themselves (a
//! running `magpie serve` holds it: they say so and change nothing); listing reads the
//! snapshot `magpie serve` publishes when it holds the warehouse.
//!
//! `magpie listener list | add | rename | merge | remove`: the listeners themselves, through
//! [`magpie_music::listeners`]. `list` reads (the snapshot too); the others write the
//! warehouse and the token stores, so they too need the warehouse to themselves. `merge` and
//! `remove` make a backup first and ask for confirmation on a terminal (`--yes` otherwise).

use std::process::ExitCode;

use magpie_core::Config;
use magpie_music::filters::{self, FilterError, FilterKind};
use magpie_music::submit::tokens::TokenStore;

use crate::cli::{FilterArgs, FilterCommand, ListenerCommand, TokenCommand};

pub fn run(config: &Config, command: ListenerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ListenerCommand::Token(command) => tokens(config, command),
        ListenerCommand::Filter(command) => filter(config, command),
        command @ (ListenerCommand::List { .. }
        | ListenerCommand::Add { .. }
        | ListenerCommand::Rename { .. }
        | ListenerCommand::Merge { .. }
        | ListenerCommand::Remove { .. }) => manage(config, command),
    }
}

/// The filter's kind and name from whichever of --artist, --album, --genre was given (clap
/// requires exactly one).
fn kind_and_value(args: &FilterArgs) -> (FilterKind, &str) {
    match (&args.artist, &args.album, &args.genre) {
        (Some(v), _, _) => (FilterKind::Artist, v),
        (_, Some(v), _) => (FilterKind::Album, v),
        (_, _, Some(v)) => (FilterKind::Genre, v),
        (None, None, None) => unreachable!("clap requires one of --artist, --album, --genre"),
    }
}

/// A filter error naming the command-line option that is wrong (`--listener: ...`).
fn explain(e: FilterError) -> anyhow::Error {
    match e.field() {
        Some(field) => {
            let text = e.to_string();
            let rest = text
                .strip_prefix(&format!("{field}: "))
                .unwrap_or(&text)
                .to_string();
            anyhow::anyhow!("--{field}: {rest}")
        }
        None => e.into(),
    }
}

fn filter(config: &Config, command: FilterCommand) -> anyhow::Result<ExitCode> {
    match command {
        FilterCommand::Add(args) => {
            let (kind, value) = kind_and_value(&args);
            let warehouse = super::open_warehouse(config)?;
            let added =
                filters::add(warehouse.conn(), &args.listener, kind, value).map_err(explain)?;
            warehouse.checkpoint()?;
            println!(
                "{} now hides the {kind} {:?} from their stats (no event is deleted). \
                 The marts leave those plays out from the next build: `magpie build`, or the \
                 next scheduled one of `magpie serve`.",
                added.listener, added.value
            );
        }
        FilterCommand::Remove(args) => {
            let (kind, value) = kind_and_value(&args);
            let warehouse = super::open_warehouse(config)?;
            let gone =
                filters::remove(warehouse.conn(), &args.listener, kind, value).map_err(explain)?;
            warehouse.checkpoint()?;
            println!(
                "{} counts the {kind} {:?} again from the next build (`magpie build`, or the \
                 next scheduled one of `magpie serve`).",
                gone.listener, gone.value
            );
        }
        FilterCommand::List { listener, json } => {
            let conn = super::open_reader(config)?;
            let all = filters::list(&conn, listener.as_deref()).map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "No filters: `magpie listener filter add --listener NAME --artist|--album|--genre VALUE` hides one."
                );
            } else {
                println!("{:<16} {:<7} {:<40} added", "listener", "kind", "name");
                for f in all {
                    println!(
                        "{:<16} {:<7} {:<40} {}",
                        f.listener,
                        f.kind.as_str(),
                        f.value,
                        f.created_at.format("%Y-%m-%d %H:%M UTC")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tokens(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
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

/// `list`, `add`, `rename`, `merge` and `remove`.
fn manage(config: &Config, command: ListenerCommand) -> anyhow::Result<ExitCode> {
    use magpie_music::listeners::ListenerAdmin;
    let admin = ListenerAdmin::from_config(config);
    match command {
        ListenerCommand::List { json } => {
            let conn = super::open_reader(config)?;
            let listeners = admin.list(&conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listeners)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<4} {:<20} {:>9} {:>9} {:<10} {:<10} {:<8} {:>6}  imports",
                "id", "name", "events", "listens", "first", "last", "spotify", "tokens"
            );
            let day = |t: Option<chrono::NaiveDateTime>| {
                t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d").to_string())
            };
            for l in listeners {
                let imports: Vec<String> = l
                    .imports
                    .iter()
                    .map(|i| {
                        let failed = if i.failed > 0 {
                            format!(", {} failed", i.failed)
                        } else {
                            String::new()
                        };
                        format!(
                            "{} ({} files{failed}, last {})",
                            i.format,
                            i.files,
                            day(i.last_import)
                        )
                    })
                    .collect();
                println!(
                    "{:<4} {:<20} {:>9} {:>9} {:<10} {:<10} {:<8} {:>6}  {}",
                    l.id.map_or_else(|| "-".into(), |id| id.to_string()),
                    if l.is_default {
                        format!("{} (default)", l.name)
                    } else {
                        l.name
                    },
                    l.events,
                    l.listens,
                    day(l.first_listen),
                    day(l.last_listen),
                    if l.spotify_connected { "yes" } else { "no" },
                    l.scrobble_tokens,
                    if imports.is_empty() {
                        "-".into()
                    } else {
                        imports.join("; ")
                    }
                );
            }
        }
        ListenerCommand::Add { name } => {
            let warehouse = super::open_warehouse(config)?;
            let id = admin.add(warehouse.conn(), &name)?;
            warehouse.checkpoint()?;
            println!(
                "Added listener {name} (id {id}). Import with `magpie import --listener {name} ...`, \
                 or give it a scrobble token with `magpie listener token create --listener {name}`."
            );
        }
        ListenerCommand::Rename { old, new } => {
            let warehouse = super::open_warehouse(config)?;
            let done = admin.rename(warehouse.conn(), &old, &new)?;
            warehouse.checkpoint()?;
            println!(
                "Renamed listener {old} to {new}: {} scrobble token(s){} now {new}'s and keep working \
                 (Last.fm clients log in with the user name {new} from now on). The next build \
                 rebuilds the models in full.",
                done.scrobble_tokens,
                if done.spotify_moved {
                    " and the Spotify connection"
                } else {
                    ""
                }
            );
            if done.was_default {
                println!(
                    "{old} was the configured default_listener: set default_listener = \"{new}\" \
                     in the configuration, or imports without --listener make a new {old}."
                );
            }
            notes(&done.notes);
        }
        ListenerCommand::Merge {
            from,
            into,
            yes,
            allow_default,
        } => {
            confirm(
                yes,
                &format!(
                    "Merge listener {from} into {into}? {from}'s plays become {into}'s (the same \
                     listen recorded under both is kept once), its tokens follow and {from} is \
                     removed. A backup is made first."
                ),
            )?;
            let warehouse = super::open_warehouse(config)?;
            let done = admin.merge(warehouse.conn(), &from, &into, allow_default)?;
            warehouse.checkpoint()?;
            println!(
                "Merged listener {from} into {into}: {} events moved ({} of them the same listen \
                 from another source, kept as duplicates), {} exact duplicates dropped, {} \
                 scrobble token(s) moved{}. The next build rebuilds the models in full.\n\
                 Backup of the warehouse before: {} (`magpie restore` brings it back)",
                done.events_moved,
                done.cross_source_duplicates,
                done.exact_duplicates,
                done.scrobble_tokens_moved,
                match done.spotify {
                    magpie_music::listeners::SpotifyMove::None => "",
                    magpie_music::listeners::SpotifyMove::Moved => ", Spotify connection moved",
                    magpie_music::listeners::SpotifyMove::Dropped => {
                        ", Spotify connection dropped (the other stays connected)"
                    }
                },
                done.backup.display()
            );
            notes(&done.notes);
        }
        ListenerCommand::Remove {
            name,
            yes,
            allow_default,
        } => {
            confirm(
                yes,
                &format!(
                    "Remove listener {name} with all its plays, imports and tokens? A backup is \
                     made first."
                ),
            )?;
            let warehouse = super::open_warehouse(config)?;
            let done = admin.remove(warehouse.conn(), &name, allow_default)?;
            warehouse.checkpoint()?;
            println!(
                "Removed listener {name}: {} events deleted, {} scrobble token(s) revoked{}. The \
                 next build rebuilds the models in full.\n\
                 Backup of the warehouse before: {} (`magpie restore` brings it back)",
                done.events_deleted,
                done.scrobble_tokens_removed,
                if done.spotify_disconnected {
                    ", Spotify disconnected"
                } else {
                    ""
                },
                done.backup.display()
            );
            notes(&done.notes);
        }
        ListenerCommand::Token(_) | ListenerCommand::Filter(_) => {
            unreachable!("dispatched by run")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn notes(notes: &[String]) {
    for note in notes {
        println!("Note: {note}.");
    }
}

/// Go on when `yes`, or when the person at the terminal answers yes; an error otherwise
/// (standard input not a terminal: pass --yes).
fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "not confirmed: standard input is not a terminal, so nobody can be asked; pass --yes \
             to go ahead"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed: nothing was changed")
    }
}
