//! Deribit: the JSON-RPC wire format ([`wire`]), one websocket connection ([`connection`]),
//! and cryptofeed's capture files ([`capture`]). The fake server that speaks the same protocol
//! for tests and benchmarks lives in the dev-only crate `magpie-fakes`.

pub mod capture;
pub mod connection;
pub mod wire;
