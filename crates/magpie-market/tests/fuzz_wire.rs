//! Property tests of the Deribit wire parser (issue 27, the CI share of fuzzing): the messages
//! of the recorded real session (`../shared/realdata/deribit`, read in place) and quote and
//! trade notifications derived from its tickers, mutated (truncated, bytes flipped, fields
//! set to odd numbers, strings, nulls and huge values, dropped or renamed), go through
//! [`wire::parse`], and `get_instruments` records through [`Instrument::from_value`] and
//! [`Instrument::list_from`].
//!
//! Invariants: nothing panics; a ticker, quote or trade notification that serde_json reads as
//! well-typed yields exactly the rows its values say (compared field by field with a reading
//! of the same bytes as a `serde_json::Value`), and one that is not is an error; bytes that are
//! not JSON never yield rows; every error is a [`WireError`] (or serde_json's) with a message.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`], a few seconds in
//! a release build). Without the recorded session the tests skip, unless `REQUIRE_REALDATA`
//! is set (CI), when they fail.

use std::sync::OnceLock;

use magpie_fakes::deribit::recorded_capture;
use magpie_market::deribit::capture::{self, Record};
use magpie_market::deribit::wire::{self, Incoming, Instrument, WireError};
use magpie_market::rows::{QuoteRow, Tick, TickerRow, TradeRow};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 20_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// The seeds: every message the server sent in the recorded session, plus quote and trade
/// notifications made from its tickers (the capture holds none), and the recorded
/// `get_instruments` records.
struct Seeds {
    messages: Vec<String>,
    instruments: Vec<Value>,
}

fn seeds() -> Option<&'static Seeds> {
    static SEEDS: OnceLock<Option<Seeds>> = OnceLock::new();
    SEEDS
        .get_or_init(|| {
            let ws = recorded_capture("DERIBIT.ws.1.0")?;
            let rest = recorded_capture("DERIBIT.0")?;
            let records = capture::read(&ws)
                .expect("the recorded session is readable")
                .expect("the recorded session is a cryptofeed capture");
            let mut messages: Vec<String> = records
                .into_iter()
                .filter_map(|r| match r {
                    Record::Received { message, .. } => Some(message),
                    _ => None,
                })
                .collect();
            let derived: Vec<String> = messages
                .iter()
                .filter_map(|m| serde_json::from_str::<Value>(m).ok())
                .filter(|m| {
                    m["params"]["channel"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("ticker."))
                })
                .flat_map(|m| derive_quote_and_trade(&m["params"]["data"]))
                .collect();
            messages.extend(derived);
            let instruments = magpie_fakes::deribit::instruments_from_capture(&rest)
                .expect("the recorded instruments are readable");
            Some(Seeds {
                messages,
                instruments,
            })
        })
        .as_ref()
}

/// A `quote.{instrument}` and a `trades.{instrument}.raw` notification carrying a recorded
/// ticker's values, shaped as Deribit documents them.
fn derive_quote_and_trade(ticker: &Value) -> [String; 2] {
    let name = ticker["instrument_name"].clone();
    let quote = json!({"jsonrpc": "2.0", "method": "subscription", "params": {
    "channel": format!("quote.{}", name.as_str().unwrap_or_default()),
    "data": {
        "timestamp": ticker["timestamp"], "instrument_name": name,
        "best_bid_price": ticker["best_bid_price"], "best_bid_amount": ticker["best_bid_amount"],
        "best_ask_price": ticker["best_ask_price"], "best_ask_amount": ticker["best_ask_amount"],
    }}});
    let trade = json!({"jsonrpc": "2.0", "method": "subscription", "params": {
    "channel": format!("trades.{}.raw", name.as_str().unwrap_or_default()),
    "data": [{
        "trade_seq": 1, "trade_id": "ETH-1", "timestamp": ticker["timestamp"],
        "tick_direction": 0, "price": ticker["mark_price"], "mark_price": ticker["mark_price"],
        "iv": ticker["mark_iv"], "instrument_name": name, "index_price": ticker["index_price"],
        "direction": "buy", "amount": 1.0
    }, {
        "trade_seq": 2, "trade_id": "ETH-2", "timestamp": ticker["timestamp"],
        "price": ticker["last_price"], "instrument_name": name, "direction": "sell",
        "amount": 2.5, "liquidation": "M", "block_trade_id": "B1"
    }]}});
    [quote.to_string(), trade.to_string()]
}

/// Values a field can be set to that Deribit never sends.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!("")),
        Just(json!("x")),
        Just(json!("ticker.BTC-1JAN30-1-C.raw")),
        Just(json!("Björk \u{1F3B5} \u{0} \" \\ \n")),
        Just(json!("9".repeat(400))),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(-0.0)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(i32::MAX as i64 + 1)),
        Just(json!(f64::MAX)),
        Just(json!(-1e308)),
        Just(json!(5e-324)),
        Just(json!({})),
        Just(json!([])),
        Just(json!([1])),
        Just(json!({"delta": "x"})),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s| json!(s)),
    ]
}

/// Text spliced into a message as it is.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("1e400".to_string()),
        Just("-".to_string()),
        Just("\"".to_string()),
        Just("\\u12".to_string()),
        Just("\\ud800".to_string()),
        Just(r#""channel":"ticker.X.raw","#.to_string()),
        Just(r#""method":"subscription","#.to_string()),
        Just("[".repeat(200)),
        Just("{\"a\":".repeat(200)),
        Just("18446744073709551616".to_string()),
        ".{0,8}".prop_map(String::from),
    ]
}

/// A way of damaging a message.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate(Index),
    FlipByte(Index, u8),
    Splice(Index, String),
    SetField(Index, Value),
    DropField(Index),
    RenameKey(Index, &'static str),
    /// Several field changes at once.
    SetFields(Vec<(Index, Value)>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let keys = prop::sample::select(vec![
        "channel",
        "method",
        "params",
        "data",
        "id",
        "result",
        "error",
        "timestamp",
        "instrument_name",
        "greeks",
        "x",
    ]);
    prop_oneof![
        1 => Just(Mutation::None),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        2 => (any::<Index>(), odd_text()).prop_map(|(i, t)| Mutation::Splice(i, t)),
        4 => (any::<Index>(), odd_value()).prop_map(|(i, v)| Mutation::SetField(i, v)),
        2 => any::<Index>().prop_map(Mutation::DropField),
        1 => (any::<Index>(), keys).prop_map(|(i, k)| Mutation::RenameKey(i, k)),
        2 => prop::collection::vec((any::<Index>(), odd_value()), 2..5).prop_map(Mutation::SetFields),
    ]
}

/// A step into a JSON document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

/// The path of every value in `v` below the root.
fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    prefix.push(Step::Key(k.clone()));
                    out.push(prefix.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    prefix.push(Step::At(i));
                    out.push(prefix.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// The parent container of `path` and the last step.
fn parent<'a>(root: &'a mut Value, path: &'a [Step]) -> Option<(&'a mut Value, &'a Step)> {
    let (last, init) = path.split_last()?;
    let mut v = root;
    for step in init {
        v = match step {
            Step::Key(k) => v.get_mut(k.as_str())?,
            Step::At(i) => v.get_mut(*i)?,
        };
    }
    Some((v, last))
}

fn set(root: &mut Value, at: Index, value: Value) {
    let all = paths(root);
    if all.is_empty() {
        *root = value;
        return;
    }
    let path = all[at.index(all.len())].clone();
    if let Some((p, step)) = parent(root, &path) {
        match step {
            Step::Key(k) => p[k.as_str()] = value,
            Step::At(i) => p[*i] = value,
        }
    }
}

/// Apply `m` to `text` (a JSON message).
fn mutate(text: &str, m: &Mutation) -> String {
    let bytes = text.as_bytes();
    match m {
        Mutation::None => text.to_string(),
        Mutation::Truncate(i) => {
            String::from_utf8_lossy(&bytes[..i.index(bytes.len() + 1)]).into_owned()
        }
        Mutation::FlipByte(i, b) => {
            let mut bytes = bytes.to_vec();
            if !bytes.is_empty() {
                let at = i.index(bytes.len());
                bytes[at] ^= b;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::Splice(i, t) => {
            let mut bytes = bytes.to_vec();
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, t.bytes());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::SetField(..)
        | Mutation::DropField(_)
        | Mutation::RenameKey(..)
        | Mutation::SetFields(_) => {
            let Ok(mut v) = serde_json::from_str::<Value>(text) else {
                return text.to_string();
            };
            match m {
                Mutation::SetField(i, value) => set(&mut v, *i, value.clone()),
                Mutation::SetFields(changes) => {
                    for (i, value) in changes {
                        set(&mut v, *i, value.clone());
                    }
                }
                Mutation::DropField(i) | Mutation::RenameKey(i, _) => {
                    let all = paths(&v);
                    if !all.is_empty() {
                        let path = all[i.index(all.len())].clone();
                        if let Some((Value::Object(map), Step::Key(k))) = parent(&mut v, &path)
                            && let Some(old) = map.remove(k)
                            && let Mutation::RenameKey(_, new) = m
                        {
                            map.insert((*new).to_string(), old);
                        }
                    }
                }
                _ => unreachable!(),
            }
            v.to_string()
        }
    }
}

/// Why the reference reading has no rows to compare with.
#[derive(Debug, PartialEq)]
enum Why {
    /// A field has the wrong type: the parser must refuse the message.
    Bad,
    /// An object given as an array, which serde reads field by field in order (Deribit never
    /// sends one): not modelled here.
    Positional,
}

/// What serde_json says a field of type `f64`/`Option<f64>` holds: `Err` when it is not one.
fn opt_f64(data: &Value, key: &str) -> Result<Option<f64>, Why> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(Why::Bad),
    }
}

fn req_f64(data: &Value, key: &str) -> Result<f64, Why> {
    opt_f64(data, key)?.ok_or(Why::Bad)
}

fn opt_i64(data: &Value, key: &str) -> Result<Option<i64>, Why> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(Why::Bad),
    }
}

fn req_i64(data: &Value, key: &str) -> Result<i64, Why> {
    data.get(key).and_then(Value::as_i64).ok_or(Why::Bad)
}

fn opt_str(data: &Value, key: &str) -> Result<Option<String>, Why> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Why::Bad),
    }
}

fn req_str(data: &Value, key: &str) -> Result<String, Why> {
    opt_str(data, key)?.ok_or(Why::Bad)
}

/// An object (a notification's `data`, a trade).
fn object(v: &Value) -> Result<&Value, Why> {
    match v {
        Value::Object(_) => Ok(v),
        Value::Array(_) => Err(Why::Positional),
        _ => Err(Why::Bad),
    }
}

/// An optional nested object (`greeks`, `stats`): `None` when absent or null.
fn opt_object<'a>(data: &'a Value, key: &str) -> Result<Option<&'a Value>, Why> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(Value::Array(_)) => Err(Why::Positional),
        Some(_) => Err(Why::Bad),
    }
}

/// The rows a notification's `data` holds by serde_json's reading, or `Err` when a field
/// has the wrong type.
fn expected_rows(kind: &str, data: &Value, local_us: i64) -> Result<Vec<Tick>, Why> {
    match kind {
        "ticker" => {
            let d = object(data)?;
            let greeks = opt_object(d, "greeks")?;
            let g = |k: &str| greeks.map_or(Ok(None), |g| opt_f64(g, k));
            let stats = opt_object(d, "stats")?;
            Ok(vec![Tick::Ticker(Box::new(TickerRow {
                instrument: req_str(d, "instrument_name")?,
                exchange_ms: req_i64(d, "timestamp")?,
                local_us,
                state: opt_str(d, "state")?,
                best_bid_price: opt_f64(d, "best_bid_price")?,
                best_bid_amount: opt_f64(d, "best_bid_amount")?,
                best_ask_price: opt_f64(d, "best_ask_price")?,
                best_ask_amount: opt_f64(d, "best_ask_amount")?,
                bid_iv: opt_f64(d, "bid_iv")?,
                ask_iv: opt_f64(d, "ask_iv")?,
                mark_price: opt_f64(d, "mark_price")?,
                mark_iv: opt_f64(d, "mark_iv")?,
                last_price: opt_f64(d, "last_price")?,
                index_price: opt_f64(d, "index_price")?,
                underlying_price: opt_f64(d, "underlying_price")?,
                underlying_index: opt_str(d, "underlying_index")?,
                open_interest: opt_f64(d, "open_interest")?,
                interest_rate: opt_f64(d, "interest_rate")?,
                delta: g("delta")?,
                gamma: g("gamma")?,
                vega: g("vega")?,
                theta: g("theta")?,
                rho: g("rho")?,
                current_funding: opt_f64(d, "current_funding")?,
                funding_8h: opt_f64(d, "funding_8h")?,
                volume_24h: stats.map_or(Ok(None), |s| opt_f64(s, "volume"))?,
            }))])
        }
        "quote" => {
            let d = object(data)?;
            Ok(vec![Tick::Quote(QuoteRow {
                instrument: req_str(d, "instrument_name")?,
                exchange_ms: req_i64(d, "timestamp")?,
                local_us,
                best_bid_price: opt_f64(d, "best_bid_price")?,
                best_bid_amount: opt_f64(d, "best_bid_amount")?,
                best_ask_price: opt_f64(d, "best_ask_price")?,
                best_ask_amount: opt_f64(d, "best_ask_amount")?,
            })])
        }
        "trades" => data
            .as_array()
            .ok_or(Why::Bad)?
            .iter()
            .map(|t| {
                object(t)?;
                let tick_direction = opt_i64(t, "tick_direction")?
                    .map(i32::try_from)
                    .transpose()
                    .map_err(|_| Why::Bad)?;
                Ok(Tick::Trade(TradeRow {
                    instrument: req_str(t, "instrument_name")?,
                    exchange_ms: req_i64(t, "timestamp")?,
                    local_us,
                    trade_id: req_str(t, "trade_id")?,
                    trade_seq: opt_i64(t, "trade_seq")?,
                    price: req_f64(t, "price")?,
                    amount: req_f64(t, "amount")?,
                    direction: req_str(t, "direction")?,
                    iv: opt_f64(t, "iv")?,
                    index_price: opt_f64(t, "index_price")?,
                    mark_price: opt_f64(t, "mark_price")?,
                    tick_direction,
                    liquidation: opt_str(t, "liquidation")?,
                    block_trade_id: opt_str(t, "block_trade_id")?,
                }))
            })
            .collect(),
        _ => unreachable!(),
    }
}

/// An error has its kind's words and says what was wrong.
fn check_error(text: &str, e: &WireError) {
    let shown = e.to_string();
    let (prefix, detail) = match e {
        WireError::Json(inner) => ("malformed JSON: ", inner.to_string()),
        WireError::Unexpected(what) => ("not a JSON-RPC message Deribit sends: ", what.clone()),
    };
    assert!(
        shown.starts_with(prefix) && !detail.trim().is_empty(),
        "an unclear error {shown:?} for {text}"
    );
}

/// The message as a notification serde_json reads: its channel's kind and data, when the
/// channel is one magpie stores and appears in the text as itself (Deribit's form: the
/// parser finds it by a byte search).
fn stored_notification(text: &str, v: &Value) -> Option<(String, Value)> {
    if v.get("method")? != "subscription" {
        return None;
    }
    let params = v.get("params")?;
    let channel = params.get("channel")?.as_str()?;
    let kind = channel.split('.').next().unwrap_or(channel);
    if !matches!(kind, "ticker" | "quote" | "trades") {
        return None;
    }
    let literal = format!(r#""channel":{}"#, Value::from(channel));
    if !text.contains(&literal) || literal.contains('\\') || has_duplicate_keys(text) {
        return None;
    }
    Some((
        kind.to_string(),
        params.get("data").cloned().unwrap_or(Value::Null),
    ))
}

/// Whether an object in `text` has a key twice (serde_json's `Value` keeps the last, a
/// derived struct refuses the message, and Deribit never sends one).
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Walk;
    impl<'de> Visitor<'de> for Walk {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut keys = std::collections::HashSet::new();
            let mut dup = false;
            while let Some(key) = map.next_key::<String>()? {
                dup |= !keys.insert(key);
                dup |= map.next_value::<Dup>()?.0;
            }
            Ok(dup)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dup = false;
            while let Some(Dup(d)) = seq.next_element()? {
                dup |= d;
            }
            Ok(dup)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct Dup(bool);
    impl<'de> serde::Deserialize<'de> for Dup {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Walk).map(Dup)
        }
    }
    serde_json::from_str::<Dup>(text).is_ok_and(|d| d.0)
}

fn check_message(text: &str) {
    const LOCAL_US: i64 = 1_626_993_723_000_123;
    let mut rows = vec![];
    let result = wire::parse(text, LOCAL_US, &mut rows);
    let read: Option<Value> = serde_json::from_str(text).ok();
    match &result {
        Err(e) => check_error(text, e),
        Ok(Incoming::Data { rows: n }) => assert_eq!(*n, rows.len(), "{text}"),
        Ok(_) => assert!(rows.is_empty(), "rows without Data for {text}"),
    }
    let Some(v) = read else {
        // JSON's grammar allows numbers serde_json cannot hold (1e400); only bytes that are
        // not JSON at all must never give rows.
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            assert!(rows.is_empty(), "rows from bytes that are not JSON: {text}");
        }
        return;
    };
    if let Ok(Incoming::Response { id, result }) = &result {
        assert_eq!(v["id"].as_u64(), Some(*id), "{text}");
        if let Ok(raw) = result {
            let raw: Value = serde_json::from_str(raw.get()).expect("a raw value is JSON");
            assert_eq!(raw, v["result"], "{text}");
        }
    }
    if let Some((kind, data)) = stored_notification(text, &v) {
        match expected_rows(&kind, &data, LOCAL_US) {
            Ok(expected) => {
                assert!(
                    matches!(result, Ok(Incoming::Data { .. })),
                    "a well-typed {kind} notification gave {result:?}: {text}"
                );
                assert_eq!(rows, expected, "{text}");
            }
            Err(Why::Positional) => {}
            Err(Why::Bad) => assert!(
                result.is_err(),
                "an ill-typed {kind} notification gave {result:?}: {text}"
            ),
        }
    }
}

/// What serde_json says an instrument record holds, as [`Instrument`] (`Err` when a field
/// has the wrong type).
fn expected_instrument(v: &Value) -> Result<Instrument, Why> {
    object(v)?;
    let is_active = match v.get("is_active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Why::Bad),
    };
    Ok(Instrument {
        instrument_name: req_str(v, "instrument_name")?,
        instrument_id: opt_i64(v, "instrument_id")?,
        kind: req_str(v, "kind")?,
        is_active: is_active.unwrap_or(true),
        settlement_period: opt_str(v, "settlement_period")?,
        creation_timestamp: opt_i64(v, "creation_timestamp")?,
        expiration_timestamp: opt_i64(v, "expiration_timestamp")?,
        strike: opt_f64(v, "strike")?,
        option_type: opt_str(v, "option_type")?,
        tick_size: opt_f64(v, "tick_size")?,
        contract_size: opt_f64(v, "contract_size")?,
        min_trade_amount: opt_f64(v, "min_trade_amount")?,
        base_currency: opt_str(v, "base_currency")?,
        quote_currency: opt_str(v, "quote_currency")?,
        settlement_currency: opt_str(v, "settlement_currency")?,
        record: v.clone(),
    })
}

#[test]
fn every_recorded_message_parses_and_its_tickers_give_rows() {
    let Some(seeds) = seeds() else { return };
    let mut data_rows = 0;
    for text in &seeds.messages {
        check_message(text);
        let mut rows = vec![];
        match wire::parse(text, 0, &mut rows) {
            Ok(Incoming::Data { rows: n }) => data_rows += n,
            Ok(_) => {}
            Err(e) => panic!("a recorded message is refused: {e}: {text}"),
        }
    }
    let tickers = seeds
        .messages
        .iter()
        .filter(|m| m.contains(r#""channel":"ticker."#))
        .count();
    // Each recorded ticker, and a quote and two trades made from it.
    assert!(tickers > 50, "{tickers} tickers in the recorded session");
    assert_eq!(data_rows, tickers * 4);
    for record in &seeds.instruments {
        assert_eq!(
            Instrument::from_value(record.clone()).ok(),
            expected_instrument(record).ok()
        );
    }
    assert!(
        seeds.instruments.len() > 1000,
        "{}",
        seeds.instruments.len()
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_messages_never_panic_and_agree_with_serde_json(
        seed in any::<Index>(),
        m in mutation(),
        again in mutation(),
    ) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let text = &seeds.messages[seed.index(seeds.messages.len())];
        let once = mutate(text, &m);
        check_message(&once);
        check_message(&mutate(&once, &again));
    }

    #[test]
    fn mutated_instruments_never_panic_and_agree_with_serde_json(
        seed in any::<Index>(),
        others in any::<Index>(),
        m in mutation(),
    ) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let record = seeds.instruments[seed.index(seeds.instruments.len())].to_string();
        let text = mutate(&record, &m);
        let Ok(v) = serde_json::from_str::<Value>(&text) else { return Ok(()) };
        let got = Instrument::from_value(v.clone());
        match (&got, expected_instrument(&v)) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, &want),
            (Err(e), Err(Why::Bad)) => prop_assert!(!e.to_string().is_empty()),
            (_, Err(Why::Positional)) => {}
            (got, want) => prop_assert!(false, "{got:?} but serde_json reads {want:?}: {text}"),
        }
        // The same record among recorded ones, as get_instruments' result.
        let n = others.index(4);
        let list: Vec<Value> = seeds.instruments[..n].iter().cloned().chain([v]).collect();
        let raw = serde_json::value::RawValue::from_string(Value::from(list).to_string())
            .expect("JSON");
        let listed = Instrument::list_from(&raw);
        prop_assert_eq!(listed.is_ok(), got.is_ok());
        if let Ok(listed) = listed {
            // Read back from the text (serde_json's default float parsing may differ from
            // the value written by one unit in the last place).
            let reread: Vec<Value> = serde_json::from_str(raw.get()).expect("JSON");
            prop_assert_eq!(listed.len(), n + 1);
            prop_assert_eq!(Ok(listed[n].clone()), expected_instrument(&reread[n]));
        }
    }

    #[test]
    fn get_instruments_text_damaged_is_an_error_not_a_panic(
        m in mutation(),
    ) {
        let Some(seeds) = seeds() else { return Ok(()) };
        let text = Value::from(seeds.instruments[..3].to_vec()).to_string();
        let damaged = mutate(&text, &m);
        let Ok(raw) = serde_json::value::RawValue::from_string(damaged.clone()) else {
            return Ok(());
        };
        // serde_json's RawValue lets some bad escapes through that its full reading refuses.
        let Ok(read) = serde_json::from_str::<Value>(&damaged) else {
            let listed = Instrument::list_from(&raw);
            prop_assert!(listed.is_err(), "{listed:?} from {damaged}");
            return Ok(());
        };
        let want: Result<Vec<Instrument>, Why> = read
            .as_array()
            .ok_or(Why::Bad)
            .and_then(|items| items.iter().map(expected_instrument).collect());
        match (Instrument::list_from(&raw), want) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(e), Err(Why::Bad)) => prop_assert!(!e.to_string().is_empty()),
            (_, Err(Why::Positional)) => {}
            (got, want) => prop_assert!(false, "{got:?} but serde_json reads {want:?}: {damaged}"),
        }
    }
}
