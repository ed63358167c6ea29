//! The rows the collector stores, one type per dataset, each with the exchange's timestamp
//! and the local receive time. Where a row goes on disk is its [`Partition`].

use chrono::NaiveDate;

/// Deribit's instrument kinds as far as storage cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Option,
    Future,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Option => "option",
            Kind::Future => "future",
        }
    }

    /// The kind of an instrument from its name: options are `BTC-27DEC24-60000-C`
    /// (four parts, ending in C or P); everything else (perpetuals, dated futures) is a future.
    pub fn of_instrument(name: &str) -> Kind {
        let mut parts = name.split('-');
        let fourth = parts.nth(3);
        match fourth {
            Some("C" | "P") if parts.next().is_none() => Kind::Option,
            _ => Kind::Future,
        }
    }
}

/// The currency partition of an instrument: the part of its name before the first `-`
/// (`BTC-PERPETUAL` → `BTC`, `SOL_USDC-PERPETUAL` → `SOL_USDC`).
pub fn currency_of(instrument: &str) -> &str {
    instrument.split('-').next().unwrap_or(instrument)
}

/// The UTC date of an exchange time (ms since the epoch).
fn date_of(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
}

/// The datasets written (one folder each under the market directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    Tickers,
    Quotes,
    Trades,
}

impl Dataset {
    pub const ALL: [Dataset; 3] = [Dataset::Tickers, Dataset::Quotes, Dataset::Trades];

    pub fn folder(self) -> &'static str {
        match self {
            Dataset::Tickers => "tickers",
            Dataset::Quotes => "quotes",
            Dataset::Trades => "trades",
        }
    }
}

/// Where a row is written: `{dataset}/date=…/currency=…/kind=…/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub dataset: Dataset,
    pub date: NaiveDate,
    pub currency: String,
    pub kind: Kind,
}

impl Partition {
    /// Whether `tick` belongs here (what [`Tick::partition`] would say, without building it).
    pub fn holds(&self, tick: &Tick) -> bool {
        let instrument = tick.instrument();
        self.dataset == tick.dataset()
            && self.kind == Kind::of_instrument(instrument)
            && self.currency == currency_of(instrument)
            && self.date == date_of(tick.exchange_ms())
    }

    pub fn path(&self) -> String {
        format!(
            "{}/date={}/currency={}/kind={}",
            self.dataset.folder(),
            self.date,
            self.currency,
            self.kind.as_str()
        )
    }
}

/// `ticker.{instrument}.{interval}`. Option-only fields (IVs, greeks, underlying) are `None`
/// for futures, future-only ones (funding) for options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickerRow {
    pub instrument: String,
    /// Exchange time, ms since the Unix epoch.
    pub exchange_ms: i64,
    /// Local receive time, µs since the Unix epoch.
    pub local_us: i64,
    pub state: Option<String>,
    pub best_bid_price: Option<f64>,
    pub best_bid_amount: Option<f64>,
    pub best_ask_price: Option<f64>,
    pub best_ask_amount: Option<f64>,
    pub bid_iv: Option<f64>,
    pub ask_iv: Option<f64>,
    pub mark_price: Option<f64>,
    pub mark_iv: Option<f64>,
    pub last_price: Option<f64>,
    pub index_price: Option<f64>,
    pub underlying_price: Option<f64>,
    pub underlying_index: Option<String>,
    pub open_interest: Option<f64>,
    pub interest_rate: Option<f64>,
    pub delta: Option<f64>,
    pub gamma: Option<f64>,
    pub vega: Option<f64>,
    pub theta: Option<f64>,
    pub rho: Option<f64>,
    pub current_funding: Option<f64>,
    pub funding_8h: Option<f64>,
    pub volume_24h: Option<f64>,
}

/// `quote.{instrument}`: the best bid and ask.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuoteRow {
    pub instrument: String,
    pub exchange_ms: i64,
    pub local_us: i64,
    pub best_bid_price: Option<f64>,
    pub best_bid_amount: Option<f64>,
    pub best_ask_price: Option<f64>,
    pub best_ask_amount: Option<f64>,
}

/// One trade from `trades.{kind}.{currency}.{interval}` (or `trades.{instrument}.…`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TradeRow {
    pub instrument: String,
    pub exchange_ms: i64,
    pub local_us: i64,
    pub trade_id: String,
    pub trade_seq: Option<i64>,
    pub price: f64,
    pub amount: f64,
    pub direction: String,
    pub iv: Option<f64>,
    pub index_price: Option<f64>,
    pub mark_price: Option<f64>,
    pub tick_direction: Option<i32>,
    pub liquidation: Option<String>,
    pub block_trade_id: Option<String>,
}

/// One row on its way to storage.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// Boxed: a ticker row is four times a quote's size, and rows wait in a queue.
    Ticker(Box<TickerRow>),
    Quote(QuoteRow),
    Trade(TradeRow),
}

impl Tick {
    pub fn dataset(&self) -> Dataset {
        match self {
            Tick::Ticker(_) => Dataset::Tickers,
            Tick::Quote(_) => Dataset::Quotes,
            Tick::Trade(_) => Dataset::Trades,
        }
    }

    pub fn instrument(&self) -> &str {
        match self {
            Tick::Ticker(r) => &r.instrument,
            Tick::Quote(r) => &r.instrument,
            Tick::Trade(r) => &r.instrument,
        }
    }

    pub fn exchange_ms(&self) -> i64 {
        match self {
            Tick::Ticker(r) => r.exchange_ms,
            Tick::Quote(r) => r.exchange_ms,
            Tick::Trade(r) => r.exchange_ms,
        }
    }

    pub fn local_us(&self) -> i64 {
        match self {
            Tick::Ticker(r) => r.local_us,
            Tick::Quote(r) => r.local_us,
            Tick::Trade(r) => r.local_us,
        }
    }

    /// The partition the row belongs to: its dataset, the UTC date of its exchange time, its
    /// instrument's currency and kind.
    pub fn partition(&self) -> Partition {
        let instrument = self.instrument();
        Partition {
            dataset: self.dataset(),
            date: date_of(self.exchange_ms()),
            currency: currency_of(instrument).to_string(),
            kind: Kind::of_instrument(instrument),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_currencies_come_from_names() {
        assert_eq!(Kind::of_instrument("BTC-24SEP21-40000-P"), Kind::Option);
        assert_eq!(Kind::of_instrument("ETH-30JUL21-2800-C"), Kind::Option);
        assert_eq!(Kind::of_instrument("BTC-PERPETUAL"), Kind::Future);
        assert_eq!(Kind::of_instrument("BTC-24SEP21"), Kind::Future);
        assert_eq!(Kind::of_instrument("UNI_USDC-PERPETUAL"), Kind::Future);
        assert_eq!(currency_of("SOL_USDC-PERPETUAL"), "SOL_USDC");
        assert_eq!(currency_of("ETH-30JUL21-2800-C"), "ETH");
    }

    #[test]
    fn partitions_by_dataset_date_currency_kind() {
        let tick = Tick::Quote(QuoteRow {
            instrument: "ETH-30JUL21-2800-C".into(),
            exchange_ms: 1_626_993_723_632,
            ..Default::default()
        });
        assert!(tick.partition().holds(&tick));
        assert_eq!(
            tick.partition().path(),
            "quotes/date=2021-07-22/currency=ETH/kind=option"
        );
    }
}
