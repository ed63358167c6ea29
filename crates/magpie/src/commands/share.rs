//! `magpie share create | list | revoke`: public links to one dashboard or saved question,
//! served read-only on `/public/TOKEN`. The token is printed once, in the URL; magpie keeps
//! only its SHA-256 (`DATA_DIR/secrets/shares.json`), so a lost link cannot be shown again:
//! revoke it and create another.

use std::collections::BTreeMap;
use std::process::ExitCode;

use magpie_core::Config;
use magpie_questions::variables::{self, VarType};
use magpie_questions::{CardBody, Library, ShareStore, ShareTarget, Template};

use crate::cli::{ShareCommand, ShareCreateArgs};

pub fn run(config: &Config, command: ShareCommand) -> anyhow::Result<ExitCode> {
    let store = ShareStore::new(&config.data_dir);
    match command {
        ShareCommand::Create(args) => create(config, &store, args),
        ShareCommand::List => list(&store),
        ShareCommand::Revoke { id } => {
            if store.revoke(id.trim())? {
                println!(
                    "Revoked share link {}: it stops working at once.",
                    id.trim()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!(
                    "no share link has the id `{}` (see `magpie share list`)",
                    id.trim()
                )
            }
        }
    }
}

fn create(config: &Config, store: &ShareStore, args: ShareCreateArgs) -> anyhow::Result<ExitCode> {
    let target = match (args.dashboard, args.question) {
        (Some(slug), None) => ShareTarget::Dashboard(slug),
        (None, Some(slug)) => ShareTarget::Question(slug),
        _ => anyhow::bail!("give one of --dashboard SLUG and --question SLUG"),
    };
    let library = Library::load(&config.data_dir);
    let variables = variables_of(&library, &target)?;
    let mut locked = BTreeMap::new();
    for (name, value) in args.locks {
        let Some(kind) = variables.get(&name) else {
            anyhow::bail!(
                "{target} has no variable `{name}` to lock{}",
                if variables.is_empty() {
                    " (it has none)".to_string()
                } else {
                    format!(
                        " (its variables: {})",
                        variables.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            );
        };
        check_value(*kind, &value).map_err(|e| anyhow::anyhow!("--lock {name}={value}: {e}"))?;
        if locked.insert(name.clone(), value).is_some() {
            anyhow::bail!("`{name}` is locked twice");
        }
    }
    let (share, token) = store.create(target, locked)?;
    let base = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", config.server.port));
    println!(
        "Share link {} for {}{}:\n\n    {}/public/{token}\n",
        share.id,
        share.target,
        locked_text(&share.locked)
            .map(|l| format!(", with {l} locked"))
            .unwrap_or_default(),
        base.trim_end_matches('/'),
    );
    println!(
        "This URL is shown only once: magpie keeps just a hash of it. Anyone with it can see \
         this {} (and nothing else) until you run `magpie share revoke {}`.",
        share.target.kind(),
        share.id
    );
    if config.server.public_url.is_none() {
        println!(
            "(Set server.public_url, e.g. https://music.example.org, to print the address \
             people reach magpie at.)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The variables a shared object has, with their types: a question's declared ones and those
/// its SQL uses; a dashboard's filters and every variable its cards use.
fn variables_of(
    library: &Library,
    target: &ShareTarget,
) -> anyhow::Result<BTreeMap<String, VarType>> {
    let mut out = BTreeMap::new();
    let add_sql = |out: &mut BTreeMap<String, VarType>, template: &Template| {
        for name in template.variables() {
            out.entry(name).or_insert(VarType::Text);
        }
    };
    match target {
        ShareTarget::Question(slug) => {
            let question = library
                .question(slug)
                .map_err(|_| not_found(library, target))?;
            for (name, decl) in &question.variables {
                out.insert(name.clone(), decl.kind);
            }
            add_sql(&mut out, &question.template);
        }
        ShareTarget::Dashboard(slug) => {
            let dashboard = library
                .dashboard(slug)
                .map_err(|_| not_found(library, target))?;
            for filter in &dashboard.filters {
                out.insert(filter.name.clone(), filter.kind);
            }
            for card in &dashboard.cards {
                match &card.body {
                    CardBody::Question(q) => {
                        if let Ok(question) = library.question(q) {
                            for (name, decl) in &question.variables {
                                out.entry(name.clone()).or_insert(decl.kind);
                            }
                            add_sql(&mut out, &question.template);
                        }
                    }
                    CardBody::Sql(sql) => {
                        for (name, decl) in &card.variables {
                            out.entry(name.clone()).or_insert(decl.kind);
                        }
                        if let Ok(template) = Template::parse(sql) {
                            add_sql(&mut out, &template);
                        }
                    }
                    CardBody::Text(_) => {}
                }
            }
        }
    }
    Ok(out)
}

/// "no question `x`", with what there is (or the broken file of that name).
fn not_found(library: &Library, target: &ShareTarget) -> anyhow::Error {
    let slug = target.slug();
    let broken = library.broken.iter().find(|b| {
        std::path::Path::new(&b.path)
            .file_stem()
            .is_some_and(|s| s == slug)
    });
    if let Some(broken) = broken {
        return anyhow::anyhow!("{target} cannot be read: {broken}");
    }
    let names: Vec<&str> = match target {
        ShareTarget::Question(_) => library.questions.keys().map(String::as_str).collect(),
        ShareTarget::Dashboard(_) => library.dashboards.keys().map(String::as_str).collect(),
    };
    anyhow::anyhow!(
        "there is no {} `{slug}`{}",
        target.kind(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" (there are: {})", names.join(", "))
        }
    )
}

/// A locked value must fit its variable's type (a date range may also be a preset such as
/// `365d`, resolved when the link is opened).
fn check_value(kind: VarType, value: &str) -> Result<(), String> {
    match kind {
        VarType::DateRange if value.contains("..") => variables::parse_range(value).map(|_| ()),
        VarType::DateRange => Ok(()),
        other => variables::parse_value(other, value).map(|_| ()),
    }
}

fn locked_text(locked: &BTreeMap<String, String>) -> Option<String> {
    (!locked.is_empty()).then(|| {
        locked
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn list(store: &ShareStore) -> anyhow::Result<ExitCode> {
    let shares = store.list()?;
    if shares.is_empty() {
        println!("No share links (create one with `magpie share create`).");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<30}  {:<16}  locked",
        "id", "shows", "created (UTC)"
    );
    for share in shares {
        println!(
            "{:<8}  {:<30}  {:<16}  {}",
            share.id,
            share.target.to_string(),
            share.created_at.format("%Y-%m-%d %H:%M"),
            locked_text(&share.locked).unwrap_or_else(|| "-".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}
