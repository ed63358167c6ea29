//! Deribit's JSON-RPC 2.0 wire format: what the server sends (responses, subscription
//! notifications, heartbeats) parsed into [`Incoming`] and rows, and the requests magpie sends.
//!
//! Notifications are the hot path (100,000+ a second): the channel name is found by a byte
//! search and the message is then parsed once, straight into the row type that channel
//! carries, borrowing strings where it can.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::rows::{QuoteRow, Tick, TickerRow, TradeRow};

/// A message from the server, classified.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// Market data: its rows were pushed to the caller's buffer.
    Data { rows: usize },
    /// `instrument.state.{kind}.{currency}`.
    InstrumentState {
        currency: &'a str,
        state: InstrumentState,
    },
    /// `instrument.creation.{kind}.{currency}`: the full instrument record.
    InstrumentCreated {
        currency: &'a str,
        instrument: Box<Instrument>,
    },
    /// A subscription notification on a channel magpie does not store (e.g. `platform_state`).
    OtherChannel(&'a str),
    /// The answer to request `id`.
    Response {
        id: u64,
        result: Result<&'a RawValue, RpcError>,
    },
    /// `heartbeat` with `type: test_request`: answer with `public/test` or be disconnected.
    TestRequest,
    /// `heartbeat` with `type: heartbeat`.
    Heartbeat,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Deserialize, thiserror::Error)]
#[error("Deribit error {code}: {message}")]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Deribit's "request entity too large" (a subscribe with too many channels).
pub const TOO_LARGE: i64 = -32600;

/// Deribit's "too_many_requests": the connection's request credits are used up.
pub const TOO_MANY_REQUESTS: i64 = 10028;

/// Why a message could not be used (counted and skipped by the connection).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a JSON-RPC message Deribit sends: {0}")]
    Unexpected(String),
}

/// An instrument's state change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InstrumentState {
    pub instrument_name: String,
    pub state: String,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

impl InstrumentState {
    /// States after which an instrument no longer trades (current and older names).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "settlement"
                | "delivered"
                | "inactive"
                | "archivized"
                | "settled"
                | "closed"
                | "deactivated"
                | "terminated"
        )
    }

    /// States in which an instrument trades (or is about to).
    pub fn is_open(&self) -> bool {
        matches!(self.state.as_str(), "open" | "created" | "started")
    }
}

/// An instrument as `public/get_instruments` and `instrument.creation` describe it; `record`
/// keeps every field as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    pub instrument_name: String,
    pub instrument_id: Option<i64>,
    pub kind: String,
    pub is_active: bool,
    pub settlement_period: Option<String>,
    pub creation_timestamp: Option<i64>,
    pub expiration_timestamp: Option<i64>,
    pub strike: Option<f64>,
    pub option_type: Option<String>,
    pub tick_size: Option<f64>,
    pub contract_size: Option<f64>,
    pub min_trade_amount: Option<f64>,
    pub base_currency: Option<String>,
    pub quote_currency: Option<String>,
    pub settlement_currency: Option<String>,
    pub record: serde_json::Value,
}

#[derive(Deserialize)]
struct InstrumentFields {
    instrument_name: String,
    #[serde(default)]
    instrument_id: Option<i64>,
    kind: String,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    settlement_period: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<i64>,
    #[serde(default)]
    expiration_timestamp: Option<i64>,
    #[serde(default)]
    strike: Option<f64>,
    #[serde(default)]
    option_type: Option<String>,
    #[serde(default)]
    tick_size: Option<f64>,
    #[serde(default)]
    contract_size: Option<f64>,
    #[serde(default)]
    min_trade_amount: Option<f64>,
    #[serde(default)]
    base_currency: Option<String>,
    #[serde(default)]
    quote_currency: Option<String>,
    #[serde(default)]
    settlement_currency: Option<String>,
}

impl Instrument {
    /// One record of `get_instruments`' result (or `instrument.creation`'s data).
    pub fn from_value(record: serde_json::Value) -> Result<Self, serde_json::Error> {
        let f = InstrumentFields::deserialize(&record)?;
        Ok(Self {
            instrument_name: f.instrument_name,
            instrument_id: f.instrument_id,
            kind: f.kind,
            is_active: f.is_active.unwrap_or(true),
            settlement_period: f.settlement_period,
            creation_timestamp: f.creation_timestamp,
            expiration_timestamp: f.expiration_timestamp,
            strike: f.strike,
            option_type: f.option_type,
            tick_size: f.tick_size,
            contract_size: f.contract_size,
            min_trade_amount: f.min_trade_amount,
            base_currency: f.base_currency,
            quote_currency: f.quote_currency,
            settlement_currency: f.settlement_currency,
            record,
        })
    }

    /// `get_instruments`' result array.
    pub fn list_from(result: &RawValue) -> Result<Vec<Self>, serde_json::Error> {
        let records: Vec<serde_json::Value> = serde_json::from_str(result.get())?;
        records.into_iter().map(Self::from_value).collect()
    }

    pub fn is_perpetual(&self) -> bool {
        self.settlement_period.as_deref() == Some("perpetual")
    }
}

#[derive(Deserialize)]
struct Notification<'a, T> {
    #[serde(borrow)]
    params: NotificationParams<'a, T>,
}

#[derive(Deserialize)]
struct NotificationParams<'a, T> {
    /// Checked against the channel the byte search found.
    #[serde(borrow)]
    channel: Cow<'a, str>,
    data: T,
}

#[derive(Deserialize)]
struct Greeks {
    delta: Option<f64>,
    gamma: Option<f64>,
    vega: Option<f64>,
    theta: Option<f64>,
    rho: Option<f64>,
}

#[derive(Deserialize)]
struct Stats {
    volume: Option<f64>,
}

#[derive(Deserialize)]
struct TickerData<'a> {
    #[serde(borrow)]
    instrument_name: Cow<'a, str>,
    timestamp: i64,
    #[serde(borrow, default)]
    state: Option<Cow<'a, str>>,
    #[serde(default)]
    best_bid_price: Option<f64>,
    #[serde(default)]
    best_bid_amount: Option<f64>,
    #[serde(default)]
    best_ask_price: Option<f64>,
    #[serde(default)]
    best_ask_amount: Option<f64>,
    #[serde(default)]
    bid_iv: Option<f64>,
    #[serde(default)]
    ask_iv: Option<f64>,
    #[serde(default)]
    mark_price: Option<f64>,
    #[serde(default)]
    mark_iv: Option<f64>,
    #[serde(default)]
    last_price: Option<f64>,
    #[serde(default)]
    index_price: Option<f64>,
    #[serde(default)]
    underlying_price: Option<f64>,
    #[serde(borrow, default)]
    underlying_index: Option<Cow<'a, str>>,
    #[serde(default)]
    open_interest: Option<f64>,
    #[serde(default)]
    interest_rate: Option<f64>,
    #[serde(default)]
    current_funding: Option<f64>,
    #[serde(default)]
    funding_8h: Option<f64>,
    #[serde(default)]
    greeks: Option<Greeks>,
    #[serde(default)]
    stats: Option<Stats>,
}

#[derive(Deserialize)]
struct QuoteData<'a> {
    #[serde(borrow)]
    instrument_name: Cow<'a, str>,
    timestamp: i64,
    #[serde(default)]
    best_bid_price: Option<f64>,
    #[serde(default)]
    best_bid_amount: Option<f64>,
    #[serde(default)]
    best_ask_price: Option<f64>,
    #[serde(default)]
    best_ask_amount: Option<f64>,
}

#[derive(Deserialize)]
struct TradeData<'a> {
    #[serde(borrow)]
    instrument_name: Cow<'a, str>,
    timestamp: i64,
    #[serde(borrow)]
    trade_id: Cow<'a, str>,
    #[serde(default)]
    trade_seq: Option<i64>,
    price: f64,
    amount: f64,
    #[serde(borrow)]
    direction: Cow<'a, str>,
    #[serde(default)]
    iv: Option<f64>,
    #[serde(default)]
    index_price: Option<f64>,
    #[serde(default)]
    mark_price: Option<f64>,
    #[serde(default)]
    tick_direction: Option<i32>,
    #[serde(borrow, default)]
    liquidation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    block_trade_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct SubscriptionParams<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
}

#[derive(Deserialize)]
struct HeartbeatParams<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

/// Parse one text frame received at `local_us`; market-data rows are appended to `rows`.
pub fn parse<'a>(
    text: &'a str,
    local_us: i64,
    rows: &mut Vec<Tick>,
) -> Result<Incoming<'a>, WireError> {
    let bytes = text.as_bytes();
    // Finders built once: `memmem::find` builds one per call (2 % of the collector's CPU).
    static SUBSCRIPTION: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(br#""method":"subscription""#));
    if SUBSCRIPTION.find(bytes).is_some()
        && let Some(channel) = channel_of(text)
        && let Some(incoming) = notification(text, channel, local_us, rows)?
    {
        return Ok(incoming);
    }
    let envelope: Envelope<'a> = serde_json::from_str(text)?;
    if let Some(id) = envelope.id {
        return match (envelope.result, envelope.error) {
            (_, Some(error)) => Ok(Incoming::Response {
                id,
                result: Err(error),
            }),
            (Some(result), None) => Ok(Incoming::Response {
                id,
                result: Ok(result),
            }),
            (None, None) => Err(WireError::Unexpected(format!(
                "response {id} has neither result nor error"
            ))),
        };
    }
    let params = envelope.params.map(RawValue::get).unwrap_or("null");
    match envelope.method.as_deref() {
        Some("heartbeat") => {
            let p: HeartbeatParams = serde_json::from_str(params)?;
            Ok(if p.kind == "test_request" {
                Incoming::TestRequest
            } else {
                Incoming::Heartbeat
            })
        }
        Some("subscription") => {
            // The byte search missed the channel (e.g. escaped or reordered keys).
            let p: SubscriptionParams = serde_json::from_str(params)?;
            let channel = match p.channel {
                Cow::Borrowed(c) => c,
                Cow::Owned(_) => {
                    return Err(WireError::Unexpected("escaped channel name".into()));
                }
            };
            notification(text, channel, local_us, rows)?
                .ok_or_else(|| WireError::Unexpected(format!("channel {channel:?} read two ways")))
        }
        other => Err(WireError::Unexpected(format!(
            "method {other:?} without an id"
        ))),
    }
}

/// The channel of a subscription notification, found without parsing the message: Deribit
/// sends `params` with `channel` first. Any other layout is read in full instead, so that a
/// `channel` member elsewhere (before `params`, say) is never taken for the channel.
fn channel_of(text: &str) -> Option<&str> {
    const KEY: &[u8] = br#""params":{"channel":""#;
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(KEY));
    let start = FINDER.find(text.as_bytes())? + KEY.len();
    let len = memchr::memchr(b'"', &text.as_bytes()[start..])?;
    let channel = &text[start..start + len];
    (!channel.contains('\\')).then_some(channel)
}

/// A subscription notification on `channel`, or `Ok(None)` when the message's
/// `params.channel` is another one (the byte search was misled: the caller reads the message
/// in full).
fn notification<'a>(
    text: &'a str,
    channel: &'a str,
    local_us: i64,
    rows: &mut Vec<Tick>,
) -> Result<Option<Incoming<'a>>, WireError> {
    let prefix = channel.split('.').next().unwrap_or(channel);
    let incoming = match prefix {
        "ticker" => {
            let Some(data) = data_of::<TickerData>(text, channel)? else {
                return Ok(None);
            };
            rows.push(Tick::Ticker(Box::new(ticker_row(data, local_us))));
            Incoming::Data { rows: 1 }
        }
        "quote" => {
            let Some(data) = data_of::<QuoteData>(text, channel)? else {
                return Ok(None);
            };
            let d = data;
            rows.push(Tick::Quote(QuoteRow {
                instrument: d.instrument_name.into_owned(),
                exchange_ms: d.timestamp,
                local_us,
                best_bid_price: d.best_bid_price,
                best_bid_amount: d.best_bid_amount,
                best_ask_price: d.best_ask_price,
                best_ask_amount: d.best_ask_amount,
            }));
            Incoming::Data { rows: 1 }
        }
        "trades" => {
            let Some(data) = data_of::<Vec<TradeData>>(text, channel)? else {
                return Ok(None);
            };
            let count = data.len();
            rows.extend(data.into_iter().map(|t| {
                Tick::Trade(TradeRow {
                    instrument: t.instrument_name.into_owned(),
                    exchange_ms: t.timestamp,
                    local_us,
                    trade_id: t.trade_id.into_owned(),
                    trade_seq: t.trade_seq,
                    price: t.price,
                    amount: t.amount,
                    direction: t.direction.into_owned(),
                    iv: t.iv,
                    index_price: t.index_price,
                    mark_price: t.mark_price,
                    tick_direction: t.tick_direction,
                    liquidation: t.liquidation.map(Cow::into_owned),
                    block_trade_id: t.block_trade_id.map(Cow::into_owned),
                })
            }));
            Incoming::Data { rows: count }
        }
        "instrument" if channel.starts_with("instrument.state.") => {
            let Some(data) = data_of::<InstrumentState>(text, channel)? else {
                return Ok(None);
            };
            Incoming::InstrumentState {
                currency: last_part(channel),
                state: data,
            }
        }
        "instrument" if channel.starts_with("instrument.creation.") => {
            let Some(data) = data_of::<serde_json::Value>(text, channel)? else {
                return Ok(None);
            };
            Incoming::InstrumentCreated {
                currency: last_part(channel),
                instrument: Box::new(Instrument::from_value(data)?),
            }
        }
        _ => Incoming::OtherChannel(channel),
    };
    Ok(Some(incoming))
}

/// The `data` of a notification on `channel`, or `None` when its `params.channel` is another.
fn data_of<'a, T: Deserialize<'a>>(text: &'a str, channel: &str) -> Result<Option<T>, WireError> {
    let n: Notification<'a, T> = serde_json::from_str(text)?;
    Ok((n.params.channel == channel).then_some(n.params.data))
}

/// `instrument.state.option.BTC` → `BTC`.
fn last_part(channel: &str) -> &str {
    channel.rsplit('.').next().unwrap_or(channel)
}

fn ticker_row(d: TickerData, local_us: i64) -> TickerRow {
    let greeks = d.greeks.as_ref();
    TickerRow {
        instrument: d.instrument_name.into_owned(),
        exchange_ms: d.timestamp,
        local_us,
        state: d.state.map(Cow::into_owned),
        best_bid_price: d.best_bid_price,
        best_bid_amount: d.best_bid_amount,
        best_ask_price: d.best_ask_price,
        best_ask_amount: d.best_ask_amount,
        bid_iv: d.bid_iv,
        ask_iv: d.ask_iv,
        mark_price: d.mark_price,
        mark_iv: d.mark_iv,
        last_price: d.last_price,
        index_price: d.index_price,
        underlying_price: d.underlying_price,
        underlying_index: d.underlying_index.map(Cow::into_owned),
        open_interest: d.open_interest,
        interest_rate: d.interest_rate,
        delta: greeks.and_then(|g| g.delta),
        gamma: greeks.and_then(|g| g.gamma),
        vega: greeks.and_then(|g| g.vega),
        theta: greeks.and_then(|g| g.theta),
        rho: greeks.and_then(|g| g.rho),
        current_funding: d.current_funding,
        funding_8h: d.funding_8h,
        volume_24h: d.stats.and_then(|s| s.volume),
    }
}

/// A JSON-RPC request as magpie sends it.
pub fn request(id: u64, method: &str, params: &serde_json::Value) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKER: &str = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.ETH-30JUL21-2800-C.100ms","data":{"underlying_price":2003.61,"underlying_index":"ETH-30JUL21","timestamp":1626993723632,"stats":{"volume":869.0,"price_change":0.0,"low":0.0015,"high":0.0025},"state":"open","settlement_price":0.0,"open_interest":12685.0,"min_price":0.0001,"max_price":0.025,"mark_price":0.001972,"mark_iv":120.74,"last_price":0.002,"interest_rate":0.0,"instrument_name":"ETH-30JUL21-2800-C","index_price":2006.72,"greeks":{"vega":0.20072,"theta":-1.64029,"rho":0.01188,"gamma":0.0002,"delta":0.03127},"estimated_delivery_price":2006.72,"bid_iv":115.62,"best_bid_price":0.0015,"best_bid_amount":4714.0,"best_ask_price":0.0025,"best_ask_amount":873.0,"ask_iv":124.5}}}"#;

    #[test]
    fn a_ticker_becomes_one_row_with_greeks() {
        let mut rows = Vec::new();
        let got = parse(TICKER, 7, &mut rows).unwrap();
        assert!(matches!(got, Incoming::Data { rows: 1 }));
        let Tick::Ticker(t) = &rows[0] else {
            panic!("{rows:?}")
        };
        assert_eq!(t.instrument, "ETH-30JUL21-2800-C");
        assert_eq!(t.exchange_ms, 1_626_993_723_632);
        assert_eq!(t.local_us, 7);
        assert_eq!(t.best_bid_amount, Some(4714.0));
        assert_eq!(t.delta, Some(0.03127));
        assert_eq!(t.volume_24h, Some(869.0));
        assert_eq!(t.underlying_index.as_deref(), Some("ETH-30JUL21"));
    }

    #[test]
    fn responses_errors_and_heartbeats_are_told_apart() {
        let mut rows = Vec::new();
        let ok = parse(
            r#"{"jsonrpc":"2.0","id":3,"result":["a","b"],"usIn":1}"#,
            0,
            &mut rows,
        )
        .unwrap();
        assert!(
            matches!(ok, Incoming::Response { id: 3, result: Ok(r) } if r.get() == r#"["a","b"]"#)
        );
        let err = parse(
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32600,"message":"request entity too large"}}"#,
            0,
            &mut rows,
        )
        .unwrap();
        assert!(matches!(
            err,
            Incoming::Response {
                id: 4,
                result: Err(RpcError {
                    code: TOO_LARGE,
                    ..
                })
            }
        ));
        let test = parse(
            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
            0,
            &mut rows,
        )
        .unwrap();
        assert!(matches!(test, Incoming::TestRequest));
        assert!(rows.is_empty());
    }

    #[test]
    fn trades_arrive_as_arrays() {
        let text = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.option.BTC.100ms","data":[{"trade_seq":1,"trade_id":"BTC-1","timestamp":1700000000000,"tick_direction":0,"price":0.05,"mark_price":0.049,"iv":55.1,"instrument_name":"BTC-1DEC23-40000-C","index_price":37000.0,"direction":"buy","amount":1.0},{"trade_seq":2,"trade_id":"BTC-2","timestamp":1700000000001,"price":0.051,"instrument_name":"BTC-1DEC23-40000-C","direction":"sell","amount":2.5}]}}"#;
        let mut rows = Vec::new();
        assert!(matches!(
            parse(text, 0, &mut rows).unwrap(),
            Incoming::Data { rows: 2 }
        ));
        let Tick::Trade(second) = &rows[1] else {
            panic!()
        };
        assert_eq!(
            (
                second.trade_id.as_str(),
                second.amount,
                second.direction.as_str()
            ),
            ("BTC-2", 2.5, "sell")
        );
    }

    /// Found by tests/fuzz_wire.rs: a `channel` member before `params` was taken for the
    /// channel, so this quote was stored as a ticker row.
    #[test]
    fn regression_a_channel_member_outside_params_is_not_the_channel() {
        let text = r#"{"channel":"ticker.X.raw","jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-24SEP21-8000-P","data":{"best_ask_amount":94.7,"best_ask_price":0.0015,"best_bid_amount":153.1,"best_bid_price":0.0005,"instrument_name":"BTC-24SEP21-8000-P","timestamp":1626993722929}}}"#;
        let mut rows = Vec::new();
        assert!(matches!(
            parse(text, 0, &mut rows).unwrap(),
            Incoming::Data { rows: 1 }
        ));
        assert!(
            matches!(&rows[0], Tick::Quote(q) if q.best_bid_amount == Some(153.1)),
            "{rows:?}"
        );
        // A ticker whose `params` do not start with `channel` is read in full, as a ticker.
        let reordered = TICKER.replace(
            r#""params":{"channel":"ticker.ETH-30JUL21-2800-C.100ms","data""#,
            r#""params":{"data""#,
        );
        let reordered = format!(
            "{},\"channel\":\"ticker.ETH-30JUL21-2800-C.100ms\"}}}}",
            reordered.strip_suffix("}}").unwrap()
        );
        let mut rows = Vec::new();
        assert!(matches!(
            parse(&reordered, 0, &mut rows).unwrap(),
            Incoming::Data { rows: 1 }
        ));
        assert!(matches!(&rows[0], Tick::Ticker(_)), "{reordered}");
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut rows = Vec::new();
        for bad in [
            "",
            "not json",
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms","data":{"timestamp":"soon"}}}"#,
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.X","data":"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"surprise"}"#,
        ] {
            assert!(parse(bad, 0, &mut rows).is_err(), "{bad}");
        }
        assert!(rows.is_empty());
    }
}
