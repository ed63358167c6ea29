//! Every saved question and dashboard: the files in `DATA_DIR/questions/` (`*.sql`) and
//! `DATA_DIR/dashboards/` (`*.yml`, `*.yaml`), and the example dashboards compiled into magpie.
//! Read afresh on each call (a handful of small files), so an edit by hand shows at the next
//! page load; a broken file is listed with its name, line and reason, and the others keep
//! working. A file in the data folder replaces the built-in dashboard of its slug (even when
//! the file is broken: an edit in progress never silently falls back to the example).
//!
//! Saving writes a whole file atomically (a temporary file in the same folder, fsync, rename),
//! so a reader never sees half a file and a crash leaves the old one or the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::dashboard::{Card, Dashboard};
use crate::question::Question;
use crate::{FileError, QuestionsError};

/// A file that could not be read as a question or dashboard.
pub type Broken = FileError;

/// The largest question or dashboard file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// The example dashboards compiled into magpie: (slug, YAML).
pub const BUILTIN_DASHBOARDS: [(&str, &str); 3] = [
    (
        "listening-overview",
        include_str!("../dashboards/listening-overview.yml"),
    ),
    ("artists", include_str!("../dashboards/artists.yml")),
    (
        "listening-habits",
        include_str!("../dashboards/listening-habits.yml"),
    ),
];

/// The questions and dashboards on disk, by slug, and the files that are broken.
#[derive(Debug, Clone, Default)]
pub struct Library {
    pub questions: BTreeMap<String, Question>,
    pub dashboards: BTreeMap<String, Dashboard>,
    /// Sorted by path.
    pub broken: Vec<Broken>,
}

impl Library {
    /// The questions folder of a data folder.
    pub fn questions_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("questions")
    }

    /// The dashboards folder of a data folder.
    pub fn dashboards_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("dashboards")
    }

    /// Read every question and dashboard of `data_dir`, and the built-in dashboards that no
    /// file replaces. Never fails: what cannot be read is in `broken`.
    pub fn load(data_dir: &Path) -> Library {
        let mut lib = Library::default();
        let questions = list_files(&Self::questions_dir(data_dir), &["sql"], &mut lib.broken);
        for file in questions {
            match file
                .read()
                .and_then(|text| Question::parse(&file.slug, &file.shown, &text))
            {
                Ok(q) => {
                    lib.questions.insert(q.slug.clone(), q);
                }
                Err(e) => lib.broken.push(e),
            }
        }
        let dashboards = list_files(
            &Self::dashboards_dir(data_dir),
            &["yml", "yaml"],
            &mut lib.broken,
        );
        let replaced: BTreeSet<String> = dashboards.iter().map(|f| f.slug.clone()).collect();
        lib.load_builtins(&replaced);
        for file in dashboards {
            lib.load_dashboard(&file);
        }
        lib.broken
            .sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        lib
    }

    fn load_builtins(&mut self, replaced: &BTreeSet<String>) {
        for (slug, _) in BUILTIN_DASHBOARDS {
            if replaced.contains(slug) {
                continue;
            }
            match builtin_dashboard(slug).expect("a built-in slug") {
                Ok(d) => {
                    self.dashboards.insert(d.slug.clone(), d);
                }
                Err(e) => self.broken.push(e),
            }
        }
    }

    fn load_dashboard(&mut self, file: &DataFile) {
        if self.dashboards.get(&file.slug).is_some_and(|d| !d.builtin) {
            let message = format!(
                "another file is dashboard `{}` already (`.yml` and `.yaml` of one name); this one is ignored",
                file.slug
            );
            self.broken
                .push(crate::question::file_error(&file.shown, 0, message));
            return;
        }
        match file
            .read()
            .and_then(|text| Dashboard::parse(&file.slug, &file.shown, &text))
        {
            Ok(d) => {
                self.dashboards.insert(d.slug.clone(), d);
            }
            Err(e) => self.broken.push(e),
        }
    }

    /// The question named `slug`.
    pub fn question(&self, slug: &str) -> Result<&Question, QuestionsError> {
        self.questions
            .get(slug)
            .ok_or_else(|| QuestionsError::NotFound {
                kind: "question",
                slug: slug.to_string(),
            })
    }

    /// The dashboard named `slug`.
    pub fn dashboard(&self, slug: &str) -> Result<&Dashboard, QuestionsError> {
        self.dashboards
            .get(slug)
            .ok_or_else(|| QuestionsError::NotFound {
                kind: "dashboard",
                slug: slug.to_string(),
            })
    }
}

/// The built-in dashboard `slug`, parsed (`None` when there is none of that name).
pub fn builtin_dashboard(slug: &str) -> Option<Result<Dashboard, FileError>> {
    let (_, text) = BUILTIN_DASHBOARDS.iter().find(|(s, _)| *s == slug)?;
    let path = format!("(built in) dashboards/{slug}.yml");
    Some(Dashboard::parse(slug, &path, text).map(|d| Dashboard { builtin: true, ..d }))
}

/// A question or dashboard file found in a folder.
struct DataFile {
    path: PathBuf,
    /// The path as errors show it.
    shown: String,
    slug: String,
}

impl DataFile {
    /// The file's text: at most [`MAX_FILE_BYTES`], UTF-8.
    fn read(&self) -> Result<String, FileError> {
        let broken = |message: String| crate::question::file_error(&self.shown, 0, message);
        let mut bytes = Vec::new();
        fs::File::open(&self.path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| broken(format!("cannot be read: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(broken(format!(
                "too large: over {} KiB",
                MAX_FILE_BYTES / 1024
            )));
        }
        String::from_utf8(bytes).map_err(|e| {
            broken(format!(
                "is not UTF-8 text (a bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })
    }
}

/// The files of `dir` (not recursive) ending in one of `extensions`, sorted by name. Hidden
/// files (`.name`, such as saving's temporary files) are skipped; a file whose stem is not a
/// slug goes to `broken`. A missing folder is empty.
fn list_files(dir: &Path, extensions: &[&str], broken: &mut Vec<Broken>) -> Vec<DataFile> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            let message = format!("the folder cannot be read: {e}");
            broken.push(crate::question::file_error(
                &dir.display().to_string(),
                0,
                message,
            ));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| wanted(p, extensions))
        .collect();
    // By name, and for one stem in the order of `extensions` (`.yml` before `.yaml`).
    let rank = |p: &PathBuf| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        extensions.iter().position(|e| *e == ext)
    };
    paths.sort_by(|a, b| (a.file_stem(), rank(a)).cmp(&(b.file_stem(), rank(b))));
    let mut files = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if crate::valid_slug(stem) {
            let slug = stem.to_string();
            files.push(DataFile { path, shown, slug });
        } else {
            let message = format!(
                "`{}` is not a valid name: use 1-64 lowercase letters, digits, `-` or `_`",
                path.file_stem().unwrap_or_default().to_string_lossy()
            );
            broken.push(crate::question::file_error(&shown, 0, message));
        }
    }
    files
}

fn wanted(path: &Path, extensions: &[&str]) -> bool {
    let hidden = path
        .file_name()
        .is_none_or(|n| n.to_string_lossy().starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && extensions.contains(&ext) && path.is_file()
}

/// Write the question's file (`DATA_DIR/questions/<slug>.sql`), atomically, creating the
/// folder and replacing a question of that slug. Returns the path.
pub fn save_question(data_dir: &Path, question: &Question) -> Result<PathBuf, QuestionsError> {
    check_slug(&question.slug, "question")?;
    let path = Library::questions_dir(data_dir).join(format!("{}.sql", question.slug));
    let text = question.to_file();
    // What is written must read back: never leave a broken file behind.
    Question::parse(&question.slug, &path.display().to_string(), &text)?;
    write_atomic(&path, &text)?;
    Ok(path)
}

/// Serialises appends in this process, so two at once both land.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Append `card` to dashboard `slug` (`DATA_DIR/dashboards/<slug>.yml`, or the `.yaml` of that
/// name if that is the one there), creating it titled `title_if_new` when there is none; a
/// built-in dashboard of that slug is copied to the data folder first. The rest of a
/// hand-written file is kept as written (comments included) when the card can be added at its
/// end; otherwise the file is written afresh from [`Dashboard::to_yaml`]. Atomic. Returns the
/// path.
pub fn append_card(
    data_dir: &Path,
    slug: &str,
    title_if_new: &str,
    card: Card,
) -> Result<PathBuf, QuestionsError> {
    check_slug(slug, "dashboard")?;
    card.check().map_err(QuestionsError::Invalid)?;
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = dashboard_path(data_dir, slug);
    let shown = path.display().to_string();
    let existing = read_existing(&path)?;
    let mut dashboard = match &existing {
        Some(text) => Dashboard::parse(slug, &shown, text)?,
        None => new_dashboard(slug, title_if_new)?,
    };
    dashboard.builtin = false;
    dashboard.cards.push(card);
    let text = existing
        .and_then(|text| append_text(&text, &dashboard, &shown))
        .unwrap_or_else(|| dashboard.to_yaml());
    Dashboard::parse(slug, &shown, &text)?;
    write_atomic(&path, &text)?;
    Ok(path)
}

fn check_slug(slug: &str, kind: &str) -> Result<(), QuestionsError> {
    if crate::valid_slug(slug) {
        return Ok(());
    }
    Err(QuestionsError::Invalid(format!(
        "`{slug}` is not a valid {kind} name: 1-64 lowercase letters, digits, `-` or `_`, \
         starting with a letter or digit"
    )))
}

/// `<slug>.yml`, unless only `<slug>.yaml` exists.
fn dashboard_path(data_dir: &Path, slug: &str) -> PathBuf {
    let dir = Library::dashboards_dir(data_dir);
    let yml = dir.join(format!("{slug}.yml"));
    let yaml = dir.join(format!("{slug}.yaml"));
    if !yml.exists() && yaml.is_file() {
        yaml
    } else {
        yml
    }
}

fn read_existing(path: &Path) -> Result<Option<String>, QuestionsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(QuestionsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The built-in dashboard of that slug, or an empty one.
fn new_dashboard(slug: &str, title: &str) -> Result<Dashboard, QuestionsError> {
    if let Some(builtin) = builtin_dashboard(slug) {
        return Ok(builtin?);
    }
    let title = title.trim();
    Ok(Dashboard {
        slug: slug.to_string(),
        title: if title.is_empty() {
            slug.to_string()
        } else {
            title.to_string()
        },
        description: None,
        filters: Vec::new(),
        cards: Vec::new(),
        builtin: false,
    })
}

/// `text` with the last card of `want` written at its end, if that reads back as `want`
/// (the file's cards are a block list at its end); `None` otherwise.
fn append_text(text: &str, want: &Dashboard, shown: &str) -> Option<String> {
    let card = want.cards.last()?;
    let one = Dashboard {
        cards: vec![card.clone()],
        ..want.clone()
    };
    let yaml = one.to_yaml();
    let block = &yaml[yaml.find("\ncards:\n")? + "\ncards:\n".len()..];
    let mut base = text.trim_end().to_string();
    base.push('\n');
    [2, 0, 4].into_iter().find_map(|indent| {
        let pad = " ".repeat(indent);
        let mut out = base.clone();
        for line in block.lines() {
            if !line.is_empty() {
                out.push_str(&pad);
            }
            out.push_str(line);
            out.push('\n');
        }
        (Dashboard::parse(&want.slug, shown, &out).ok().as_ref() == Some(want)).then_some(out)
    })
}

/// Write `text` to `path` atomically: a temporary file in the same folder (created if need
/// be), fsync, rename over `path`, fsync the folder.
fn write_atomic(path: &Path, text: &str) -> Result<(), QuestionsError> {
    let dir = path.parent().expect("a file in a folder");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QuestionsError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let result = write_then_rename(&tmp, path, text.as_bytes());
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io(path))?;
    // The rename is durable once the folder is: best effort where folders cannot be opened.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)?;
    if let Ok(meta) = fs::metadata(path) {
        f.set_permissions(meta.permissions())?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::CardBody;
    use crate::variables::VarType;

    fn write(dir: &Path, rel: &str, text: &[u8]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_empty_data_folder_has_the_builtin_dashboards() {
        let dir = tempfile::tempdir().unwrap();
        let lib = Library::load(&dir.path().join("missing"));
        assert!(lib.questions.is_empty());
        assert!(lib.broken.is_empty(), "{:?}", lib.broken);
        let slugs: Vec<&str> = lib.dashboards.keys().map(String::as_str).collect();
        assert_eq!(slugs, ["artists", "listening-habits", "listening-overview"]);
        assert!(lib.dashboards.values().all(|d| d.builtin));
        assert!(matches!(
            lib.question("nope"),
            Err(QuestionsError::NotFound {
                kind: "question",
                ..
            })
        ));
        let err = lib.dashboard("nope").unwrap_err();
        assert_eq!(err.to_string(), "no dashboard named `nope`");
        assert!(lib.dashboard("artists").is_ok());
    }

    #[test]
    fn broken_files_are_listed_and_the_others_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "questions/good.sql", b"-- title: Good\nSELECT 1");
        write(
            d,
            "questions/bad-header.sql",
            b"-- title: x\n-- nope: 1\nSELECT 1",
        );
        write(d, "questions/Bad Name.sql", b"SELECT 1");
        write(d, "questions/latin1.sql", b"SELECT '\xe9t\xe9'");
        write(d, "questions/huge.sql", &vec![b' '; 300 * 1024]);
        write(d, "questions/notes.txt", b"not a question");
        write(d, "questions/.hidden.sql", b"-- nope: 1\n");
        write(d, "questions/sub/deeper.sql", b"SELECT 1");
        write(d, "dashboards/ok.yaml", b"title: OK\n");
        write(
            d,
            "dashboards/broken.yml",
            b"title: t\ncards:\n  - text: a\n  - colour: red\n",
        );
        write(d, "dashboards/twice.yml", b"title: one\n");
        write(d, "dashboards/twice.yaml", b"title: two\n");
        let lib = Library::load(d);
        assert_eq!(lib.questions.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(lib.questions["good"].title, "Good");
        assert!(lib.dashboards.contains_key("ok"));
        assert_eq!(
            lib.dashboards["twice"].title, "one",
            ".yml first, as append_card writes"
        );
        let broken: Vec<(String, usize, &str)> = lib
            .broken
            .iter()
            .map(|b| {
                let name = Path::new(&b.path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (name, b.line, b.message.as_str())
            })
            .collect();
        let expect = [
            ("broken.yml", 4, "unknown field `colour`"),
            ("twice.yaml", 0, "already"),
            ("Bad Name.sql", 0, "not a valid name"),
            ("bad-header.sql", 2, "unknown field `nope`"),
            ("huge.sql", 0, "too large"),
            ("latin1.sql", 0, "not UTF-8"),
        ];
        assert_eq!(broken.len(), expect.len(), "{broken:?}");
        for ((name, line, message), (want_name, want_line, needle)) in broken.iter().zip(expect) {
            assert_eq!((name.as_str(), *line), (want_name, want_line), "{message}");
            assert!(message.contains(needle), "{name}: {message}");
        }
        assert!(lib.broken[0].path.starts_with(&d.display().to_string()));
    }

    #[test]
    fn a_file_replaces_the_builtin_of_its_slug() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dashboards/artists.yml", b"title: My artists\n");
        write(
            dir.path(),
            "dashboards/listening-habits.yml",
            b"title: [broken\n",
        );
        let lib = Library::load(dir.path());
        let artists = lib.dashboard("artists").unwrap();
        assert_eq!(artists.title, "My artists");
        assert!(!artists.builtin);
        assert!(lib.dashboard("listening-overview").unwrap().builtin);
        assert!(
            lib.dashboard("listening-habits").is_err(),
            "a broken file still replaces"
        );
        assert_eq!(lib.broken.len(), 1);
    }

    #[test]
    fn every_builtin_dashboard_parses_and_its_sql_is_sound() {
        for (slug, _) in BUILTIN_DASHBOARDS {
            let d = builtin_dashboard(slug)
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(d.builtin && d.slug == slug);
            assert!(d.cards.len() >= 3, "{slug}");
            for card in &d.cards {
                let CardBody::Sql(sql) = &card.body else {
                    continue;
                };
                let template = crate::Template::parse(sql).unwrap();
                for name in template.variables() {
                    let filter = d.filter(&name);
                    assert!(
                        filter.is_some() || card.variables.contains_key(&name),
                        "{slug}: {name}"
                    );
                }
                let decls = d.decls(card, None);
                let values = crate::Values::from_pairs([("range", "2024-01-01..2024-12-31")]);
                let bound = template
                    .bind(&decls, &values)
                    .unwrap_or_else(|e| panic!("{slug}: {e}"));
                assert!(!bound.sql.contains("{{"), "{slug}: {}", bound.sql);
                assert!(!sql.contains("marts."), "{slug}: tables are unqualified");
            }
            for filter in &d.filters {
                assert!(filter.kind != VarType::List || filter.options.is_some());
            }
            let again = Dashboard::parse(slug, "x", &d.to_yaml()).unwrap();
            assert_eq!(
                Dashboard {
                    builtin: true,
                    ..again
                },
                d
            );
        }
    }

    #[test]
    fn save_question_writes_atomically_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("new-data");
        let mut q = Question::new("top", "Top", "SELECT {{n}}").unwrap();
        let path = save_question(&data, &q).unwrap();
        assert_eq!(path, data.join("questions/top.sql"));
        assert_eq!(Library::load(&data).question("top").unwrap(), &q);
        q.title = "Top, again".into();
        save_question(&data, &q).unwrap();
        assert_eq!(
            Library::load(&data).question("top").unwrap().title,
            "Top, again"
        );
        assert_eq!(
            names(&data.join("questions")),
            ["top.sql"],
            "no temporary file is left"
        );
    }

    #[test]
    fn save_question_refuses_what_would_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Question::new("top", "Top", "SELECT {{a}}").unwrap();
        q.variables
            .insert("a".into(), crate::VarDecl::of(VarType::List));
        assert!(matches!(
            save_question(dir.path(), &q),
            Err(QuestionsError::File(_))
        ));
        q.slug = "../escape".into();
        assert!(matches!(
            save_question(dir.path(), &q),
            Err(QuestionsError::Invalid(_))
        ));
        assert!(!dir.path().join("questions").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let q = Question::new("top", "Top", "SELECT 1").unwrap();
        // A folder where the file should go: the rename fails.
        fs::create_dir_all(dir.path().join("questions/top.sql/inside")).unwrap();
        let err = save_question(dir.path(), &q).unwrap_err();
        assert!(matches!(err, QuestionsError::Io { .. }), "{err}");
        assert_eq!(names(&dir.path().join("questions")), ["top.sql"]);
        assert!(dir.path().join("questions/top.sql/inside").is_dir());
    }

    fn sql_card(sql: &str) -> Card {
        Card::new(CardBody::Sql(sql.into()))
    }

    #[test]
    fn append_card_creates_a_dashboard_and_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = append_card(dir.path(), "mine", "Mine", sql_card("SELECT 1")).unwrap();
        assert_eq!(path, dir.path().join("dashboards/mine.yml"));
        append_card(
            dir.path(),
            "mine",
            "ignored",
            Card::new(CardBody::Question("q".into())),
        )
        .unwrap();
        let d = Library::load(dir.path()).dashboard("mine").unwrap().clone();
        assert_eq!(d.title, "Mine");
        assert_eq!(d.cards.len(), 2);
        assert_eq!(d.cards[1].body, CardBody::Question("q".into()));
        assert_eq!(names(&dir.path().join("dashboards")), ["mine.yml"]);
    }

    #[test]
    fn append_card_keeps_a_hand_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# My own dashboard, by hand\ntitle: Mine   # the title\ncards:\n  # first the text\n  - text: hello\n    width: 12\n";
        write(dir.path(), "dashboards/mine.yml", text.as_bytes());
        let mut card = sql_card("SELECT {{n}} AS n\nFROM fact_plays\n");
        card.title = Some("Count".into());
        card.variables
            .insert("n".into(), crate::VarDecl::of(VarType::Number));
        append_card(dir.path(), "mine", "x", card.clone()).unwrap();
        let after = fs::read_to_string(dir.path().join("dashboards/mine.yml")).unwrap();
        assert!(after.starts_with(text), "{after}");
        let d = Library::load(dir.path()).dashboard("mine").unwrap().clone();
        assert_eq!(d.cards.last(), Some(&card));

        // Cards not at the end: written afresh, still correct.
        let text = "title: Other\ncards:\n- text: one\nfilters:\n- {name: x}\n";
        write(dir.path(), "dashboards/other.yaml", text.as_bytes());
        let path = append_card(dir.path(), "other", "x", sql_card("SELECT 2")).unwrap();
        assert_eq!(
            path,
            dir.path().join("dashboards/other.yaml"),
            "the file that is there"
        );
        let d = Library::load(dir.path())
            .dashboard("other")
            .unwrap()
            .clone();
        assert_eq!(d.cards.len(), 2);
        assert_eq!(d.filters.len(), 1);
    }

    #[test]
    fn append_card_to_a_builtin_copies_it() {
        let dir = tempfile::tempdir().unwrap();
        let builtin = builtin_dashboard("artists").unwrap().unwrap();
        append_card(dir.path(), "artists", "x", sql_card("SELECT 3")).unwrap();
        let d = Library::load(dir.path())
            .dashboard("artists")
            .unwrap()
            .clone();
        assert!(!d.builtin);
        assert_eq!(d.title, builtin.title);
        assert_eq!(d.filters, builtin.filters);
        assert_eq!(d.cards[..builtin.cards.len()], builtin.cards[..]);
        assert_eq!(d.cards.len(), builtin.cards.len() + 1);
    }

    #[test]
    fn append_card_refuses_bad_input_and_leaves_broken_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "title: t\ncards: [\n";
        write(dir.path(), "dashboards/broken.yml", bad.as_bytes());
        let err = append_card(dir.path(), "broken", "x", sql_card("SELECT 1")).unwrap_err();
        assert!(matches!(err, QuestionsError::File(_)), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("dashboards/broken.yml")).unwrap(),
            bad
        );
        assert!(append_card(dir.path(), "Bad", "x", sql_card("SELECT 1")).is_err());
        assert!(append_card(dir.path(), "ok", "x", sql_card("SELECT {{")).is_err());
        let mut wide = sql_card("SELECT 1");
        wide.width = 0;
        assert!(append_card(dir.path(), "ok", "x", wide).is_err());
        assert!(!dir.path().join("dashboards/ok.yml").exists());
    }

    #[test]
    fn concurrent_appends_all_land() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let data = dir.path();
                s.spawn(move || {
                    append_card(data, "busy", "Busy", sql_card(&format!("SELECT {i}"))).unwrap()
                });
            }
        });
        let d = Library::load(dir.path()).dashboard("busy").unwrap().clone();
        assert_eq!(d.cards.len(), 8);
    }
}
