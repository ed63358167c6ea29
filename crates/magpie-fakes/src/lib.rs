//! Test doubles that speak the real wire formats of services magpie's tests cannot reach, fed
//! with recorded payloads. Only tests, benchmarks and examples depend on this crate, so none
//! of it is in the binary.
//!
//! - [`deribit`]: Deribit's JSON-RPC websocket API (instrument lists, subscriptions,
//!   heartbeats, recorded notifications, faults, a full-speed blast); the `fake_deribit`
//!   example serves it as a process of its own for `scripts/bench-market.sh`.

pub mod deribit;
