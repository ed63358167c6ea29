//! Deribit: the JSON-RPC wire format ([`wire`]), one websocket connection ([`connection`]),
//! cryptofeed's capture files ([`capture`]) and a fake server that speaks the same protocol
//! for tests and benchmarks ([`fake`]).

pub mod capture;
pub mod connection;
pub mod fake;
pub mod wire;
