//! Property tests of the question and dashboard files (issue 27, the CI share of fuzzing),
//! seeded from the dashboards shipped in the binary and question files in the documented
//! format: the text is damaged (cut short, bytes flipped, YAML and `{{ }}`/`[[ ]]` fragments
//! and odd values inserted, lines deleted, repeated, swapped or re-indented) and read by
//! [`Question::parse`], [`Dashboard::parse`] and, as files in a data folder, [`Library::load`].
//!
//! Invariants: nothing panics; an error names the file and a line inside it (0: the whole
//! file) with a message, and one about a key names that key; what is read is written back
//! ([`Question::to_file`], [`Dashboard::to_yaml`]) to a file that reads the same; the library
//! lists every file it does not read as broken, by path.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`] per property).

#[path = "../../magpie-core/tests/mutate/mod.rs"]
mod mutate;

use magpie_questions::library::BUILTIN_DASHBOARDS;
use magpie_questions::{Dashboard, FileError, Library, Question};
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 3000;

/// Question files in the documented format (the header's every key; list, date range and
/// optional clauses in the SQL).
const QUESTIONS: &[&str] = &[
    "-- title: Top tracks of a year
-- description: >
--   Plays per track in the chosen year,
--   for one artist or all.
-- variables:
--   year: {type: number, default: 2025, label: Year}
--   artist: {type: list, options: SELECT artist_name FROM dim_artist ORDER BY 1}
--   since: {type: date, default: 2024-01-01}
-- chart: {kind: bar, x: track_name, y: plays}

SELECT t.track_name, count(*) AS plays
FROM fact_plays f JOIN dim_track t USING (track_id) JOIN dim_date d USING (date_id)
WHERE d.year = {{year}} AND d.date_day >= {{since}}
  [[AND f.artist_id IN (SELECT artist_id FROM dim_artist WHERE artist_name = {{artist}})]]
  AND t.track_name <> '{{not a variable}}'
GROUP BY 1 ORDER BY 2 DESC LIMIT 20
",
    "-- title: Plays in a range
-- variables:
--   range: {type: date_range, default: 365d, label: Dates}
--   who: {type: text}
-- chart: {kind: column, x: day, y: plays}
-- alert: {every: 1d, when: {above: {column: plays, value: 100}}, message: \"Busy\"}

-- the SQL's own comment, after a blank line
SELECT d.date_day AS day, count(*) AS plays /* {{not_a_variable}} */
FROM fact_plays f JOIN dim_date d USING (date_id)
WHERE d.date_day BETWEEN {{range.from}} AND {{range.to}} -- {{nor_this}}
  [[AND f.listener_id IN (SELECT listener_id FROM dim_listener WHERE name = {{who}})]]
GROUP BY 1 ORDER BY 1
",
    "-- title: New this week
-- alert: {cron: \"0 9 * * MON\", when: rows, message: New in your top 10}
SELECT artist_name FROM agg_discoveries WHERE first_played >= current_date - 7
",
];

/// The languages of these files: YAML, the header's `--`, `{{ }}` and `[[ ]]`, their keys.
const FRAGMENTS: &[&str] = &[
    "-- ",
    "--",
    "\n-- ",
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "#",
    "&a ",
    "*a",
    "!!binary ",
    "|",
    ">",
    "\"",
    "'",
    "{{",
    "}}",
    "[[",
    "]]",
    "{{x}}",
    "{{ x }}",
    "{{x.from}}",
    "{{x.y.z}}",
    "{{}}",
    "[[AND {{x}}]]",
    "[[ ]]",
    "[[{{x}}",
    "/*",
    "*/",
    "title: ",
    "description: ",
    "variables: ",
    "chart: ",
    "alert: ",
    "filters: ",
    "cards: ",
    "colour: red",
    "{type: list}",
    "{type: number, default: x}",
    "{type: date, default: 2024-02-30}",
    "{type: date_range, default: 99999d}",
    "{type: nope}",
    "{kind: pie}",
    "{kind: bar, x: 1}",
    "{every: 0s, when: rows}",
    "{every: 1s, when: rows}",
    "{cron: \"* * *\", when: rows}",
    "{cron: \"0 9 * * MON\", every: 1d, when: rows}",
    "{when: {above: {column: '', value: x}}}",
    "width: 0",
    "width: 13",
    "width: 256",
    "width: -1",
    "question: Not-A-Slug",
    "- text: x\n    chart: {kind: bar}",
    "- sql: ''",
    "- question: a\n    sql: b",
    "- {name: range, type: date_range}\n  - {name: range, type: text}",
    "name: 'my var'",
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: mutate::cases(DEFAULT_CASES),
        ..ProptestConfig::default()
    }
}

/// A file error names `path`, a line of the file (or 0) and says something.
fn check_error(e: &FileError, path: &str, text: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&e.path, path);
    // YAML counts a lone `\r` as a line break too, and the end of a text that ends with one
    // as the next line.
    let lines = text.matches(['\n', '\r']).count() + 1;
    prop_assert!(e.line <= lines, "line {} of {lines}: {e}\n{text:?}", e.line);
    prop_assert!(!e.message.trim().is_empty(), "{e:?}");
    // An unknown or missing key is named.
    for what in ["unknown field", "missing field", "duplicate field"] {
        if e.message.contains(what) {
            prop_assert!(e.message.contains(&format!("{what} `")), "{e}");
        }
    }
    Ok(())
}

#[test]
fn the_seeds_read_and_write_back() {
    for text in QUESTIONS {
        let q = Question::parse("q", "questions/q.sql", text).unwrap();
        assert_eq!(
            Question::parse("q", "questions/q.sql", &q.to_file()).unwrap(),
            q
        );
    }
    assert_eq!(BUILTIN_DASHBOARDS.len(), 3);
    for (slug, text) in BUILTIN_DASHBOARDS {
        let d = Dashboard::parse(slug, "dashboards/d.yml", text).unwrap();
        assert!(!d.cards.is_empty());
        assert_eq!(
            Dashboard::parse(slug, "dashboards/d.yml", &d.to_yaml()).unwrap(),
            d
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn damaged_questions_are_refused_naming_file_and_line_or_read_back_the_same(
        which in any::<Index>(),
        edits in mutate::edits(FRAGMENTS, 4),
    ) {
        let path = "questions/top-artists.sql";
        let text = mutate::apply(QUESTIONS[which.index(QUESTIONS.len())], &edits);
        match Question::parse("top-artists", path, &text) {
            Err(e) => check_error(&e, path, &text)?,
            Ok(q) => {
                let written = q.to_file();
                let again = Question::parse("top-artists", path, &written);
                prop_assert_eq!(again.as_ref(), Ok(&q), "{}\nwritten as\n{}", text, written);
            }
        }
    }

    #[test]
    fn damaged_dashboards_are_refused_naming_file_and_line_or_read_back_the_same(
        which in any::<Index>(),
        edits in mutate::edits(FRAGMENTS, 4),
    ) {
        let path = "dashboards/mine.yml";
        let (_, seed) = BUILTIN_DASHBOARDS[which.index(BUILTIN_DASHBOARDS.len())];
        let text = mutate::apply(seed, &edits);
        match Dashboard::parse("mine", path, &text) {
            Err(e) => check_error(&e, path, &text)?,
            Ok(d) => {
                let written = d.to_yaml();
                let again = Dashboard::parse("mine", path, &written);
                prop_assert_eq!(again.as_ref(), Ok(&d), "{}\nwritten as\n{}", text, written);
            }
        }
    }

}

proptest! {
    // Files on disk (slow on a busy disk): a hundredth of the cases.
    #![proptest_config(ProptestConfig { cases: config().cases / 100 + 1, ..config() })]

    #[test]
    fn a_library_of_damaged_files_lists_each_broken_one(
        files in prop::collection::vec(
            (any::<Index>(), any::<bool>(), mutate::edits(FRAGMENTS, 3), any::<Index>()),
            1..5,
        ),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a", "b-2", "listening-overview", "artists", "Bad Name", ".hidden", "x_y"];
        std::fs::create_dir_all(Library::questions_dir(dir.path())).unwrap();
        std::fs::create_dir_all(Library::dashboards_dir(dir.path())).unwrap();
        let mut written = Vec::new();
        for (which, dashboard, edits, name) in &files {
            let name = names[name.index(names.len())];
            let (folder, ext, seed) = if *dashboard {
                let (_, seed) = BUILTIN_DASHBOARDS[which.index(BUILTIN_DASHBOARDS.len())];
                (Library::dashboards_dir(dir.path()), "yml", seed)
            } else {
                (Library::questions_dir(dir.path()), "sql", QUESTIONS[which.index(QUESTIONS.len())])
            };
            let path = folder.join(format!("{name}.{ext}"));
            std::fs::write(&path, mutate::apply(seed, edits)).unwrap();
            written.push(path);
        }
        // Bytes that need not be UTF-8.
        let raw_path = Library::questions_dir(dir.path()).join("raw.sql");
        std::fs::write(&raw_path, &raw).unwrap();
        written.push(raw_path);

        let lib = Library::load(dir.path());
        for path in &written {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let shown = path.display().to_string();
            let is_dashboard = path.extension().is_some_and(|e| e == "yml");
            let read = if is_dashboard {
                lib.dashboards.get(stem).is_some_and(|d| !d.builtin)
            } else {
                lib.questions.contains_key(stem)
            };
            let broken: Vec<&FileError> = lib.broken.iter().filter(|b| b.path == shown).collect();
            if stem.starts_with('.') {
                prop_assert!(!read && broken.is_empty(), "a hidden file is skipped");
                continue;
            }
            prop_assert!(
                read == broken.is_empty(),
                "{shown} is read ({read}) or listed broken ({broken:?}), one of the two"
            );
            for b in broken {
                let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
                check_error(b, &shown, &text)?;
            }
        }
    }
}
