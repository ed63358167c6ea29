//! The Deribit JSON-RPC frame parser: no panic on any text, and every market-data row it
//! yields comes from a frame serde_json reads as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_market::deribit::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rows = Vec::new();
    if wire::parse(text, 1_626_993_723_000_000, &mut rows).is_ok() && !rows.is_empty() {
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "rows from a frame that is not JSON"
        );
    }
});
