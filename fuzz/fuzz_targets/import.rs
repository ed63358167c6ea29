//! Every importer through `magpie_music::import::parse_bytes`, as `magpie import` reads a
//! file: no panic, and either a consistent result (every record read is staged or skipped,
//! the batches hold what was staged) or an error that names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_music::import::parse_bytes;

/// Names that select nothing but the video flag (the content decides the format).
const NAMES: [&str; 2] = ["history.json", "Streaming_History_Video_2024.json"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let batch_rows = 1 + usize::from(pick >> 1) % 64;
    match parse_bytes(name, content, batch_rows) {
        Ok((parsed, batches)) => {
            let skipped: u64 = parsed.skipped.values().sum();
            assert_eq!(
                parsed.events_read,
                parsed.staged + skipped,
                "every record is staged or skipped"
            );
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(
                rows as u64, parsed.staged,
                "the batches hold what was staged"
            );
            assert!(batches.iter().all(|b| b.num_rows() <= batch_rows));
            assert_eq!(
                parsed.bytes,
                content.len() as u64,
                "the whole file is hashed"
            );
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.starts_with(name),
                "the error names the file: {message}"
            );
            assert!(!message.contains('\n'), "one paragraph: {message}");
        }
    }
});
