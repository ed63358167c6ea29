//! Saved questions (`.sql` with a front matter) and dashboards (`.yml`) as files: any text
//! loads, or gives an error naming the file; a loaded one written back loads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_questions::dashboard::Dashboard;
use magpie_questions::question::Question;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Question::parse("fuzzed", "questions/fuzzed.sql", text) {
        Ok(question) => {
            let again = Question::parse("fuzzed", "questions/fuzzed.sql", &question.to_file())
                .expect("a question written back loads");
            assert_eq!(again.to_file(), question.to_file());
        }
        Err(error) => assert!(
            error.to_string().contains("questions/fuzzed.sql"),
            "{error}"
        ),
    }
    match Dashboard::parse("fuzzed", "dashboards/fuzzed.yml", text) {
        Ok(dashboard) => {
            Dashboard::parse("fuzzed", "dashboards/fuzzed.yml", &dashboard.to_yaml())
                .expect("a dashboard written back loads");
        }
        Err(error) => assert!(
            error.to_string().contains("dashboards/fuzzed.yml"),
            "{error}"
        ),
    }
});
