//! The Last.fm scrobble API's form parameters (`track.scrobble`, `track.updateNowPlaying`,
//! the request signature): no panic on any form body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_music::submit::lastfm::{self, Params};

const NOW: i64 = 1_765_000_000;

fuzz_target!(|data: &[u8]| {
    let params = Params::from_pairs(url::form_urlencoded::parse(data).into_owned());
    let signature = lastfm::signature(&params, "secret");
    let mut signed = params.to_pairs();
    signed.retain(|(name, _)| name != "api_sig");
    signed.push(("api_sig".into(), signature));
    assert!(lastfm::signed_with(&Params::from_pairs(signed), "secret"));
    match lastfm::scrobbles(&params, NOW) {
        Ok(scrobbles) => assert!(scrobbles.len() <= lastfm::MAX_SCROBBLES),
        Err(error) => assert!(!error.message.is_empty()),
    }
    let _ = lastfm::now_playing(&params);
});
