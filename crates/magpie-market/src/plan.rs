//! What to collect, from the configuration: which instruments are wanted and which channels
//! each needs (per instrument: ticker, quote; per kind and currency: trades; the lifecycle's
//! `instrument.state` and `instrument.creation`).

use magpie_core::config::{MarketChannel, MarketConfig, MarketKind};

use crate::deribit::wire::Instrument;

/// The collection plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub currencies: Vec<String>,
    kinds: Vec<MarketKind>,
    channels: Vec<MarketChannel>,
    interval: String,
}

impl Plan {
    pub fn new(config: &MarketConfig) -> Self {
        Self {
            currencies: config.currencies.clone(),
            kinds: config.kinds.clone(),
            channels: config.channels.clone(),
            interval: config.interval.clone(),
        }
    }

    /// The `kind` values `get_instruments` is asked for.
    pub fn api_kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.kinds.contains(&MarketKind::Option) {
            kinds.push("option");
        }
        if self.kinds.contains(&MarketKind::Future) || self.kinds.contains(&MarketKind::Perpetual) {
            kinds.push("future");
        }
        kinds
    }

    /// Whether `instrument` is collected (trading, and of a wanted kind).
    pub fn wants(&self, instrument: &Instrument) -> bool {
        instrument.is_active
            && match instrument.kind.as_str() {
                "option" => self.kinds.contains(&MarketKind::Option),
                "future" => {
                    self.kinds.contains(&MarketKind::Future)
                        || (self.kinds.contains(&MarketKind::Perpetual)
                            && instrument.is_perpetual())
                }
                _ => false,
            }
    }

    /// The per-instrument channels.
    pub fn instrument_channels(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.channels.contains(&MarketChannel::Ticker) {
            out.push(format!("ticker.{name}.{}", self.interval));
        }
        if self.channels.contains(&MarketChannel::Quote) {
            out.push(format!("quote.{name}"));
        }
        out
    }

    /// The per-kind data channels of a currency (trades).
    pub fn kind_channels(&self, currency: &str) -> Vec<String> {
        if !self.channels.contains(&MarketChannel::Trades) {
            return Vec::new();
        }
        self.api_kinds()
            .into_iter()
            .map(|kind| format!("trades.{kind}.{currency}.{}", self.interval))
            .collect()
    }

    /// The lifecycle channels of a currency (on the lifecycle connection).
    pub fn lifecycle_channels(&self, currency: &str) -> Vec<String> {
        self.api_kinds()
            .into_iter()
            .flat_map(|kind| {
                [
                    format!("instrument.state.{kind}.{currency}"),
                    format!("instrument.creation.{kind}.{currency}"),
                ]
            })
            .collect()
    }
}

/// The instrument a per-instrument channel is for (`ticker.X.100ms`, `quote.X` → `X`).
pub fn instrument_of(channel: &str) -> Option<&str> {
    let mut parts = channel.split('.');
    match parts.next()? {
        "ticker" | "quote" | "book" => parts.next(),
        "trades" => {
            let second = parts.next()?;
            (second.contains('-')).then_some(second)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instrument(name: &str, kind: &str, period: &str) -> Instrument {
        Instrument::from_value(serde_json::json!({
            "instrument_name": name, "kind": kind, "settlement_period": period, "is_active": true
        }))
        .unwrap()
    }

    #[test]
    fn the_default_plan_collects_options_and_perpetuals() {
        let plan = Plan::new(&MarketConfig::default());
        assert!(plan.wants(&instrument("BTC-27DEC24-60000-C", "option", "month")));
        assert!(plan.wants(&instrument("BTC-PERPETUAL", "future", "perpetual")));
        assert!(!plan.wants(&instrument("BTC-27DEC24", "future", "month")));
        assert_eq!(
            plan.instrument_channels("BTC-PERPETUAL"),
            ["ticker.BTC-PERPETUAL.100ms", "quote.BTC-PERPETUAL"]
        );
        assert_eq!(
            plan.kind_channels("ETH"),
            ["trades.option.ETH.100ms", "trades.future.ETH.100ms"]
        );
        assert_eq!(plan.lifecycle_channels("BTC").len(), 4);
        assert_eq!(
            instrument_of("ticker.BTC-PERPETUAL.100ms"),
            Some("BTC-PERPETUAL")
        );
        assert_eq!(
            instrument_of("quote.ETH-30JUL21-2800-C"),
            Some("ETH-30JUL21-2800-C")
        );
        assert_eq!(instrument_of("trades.option.BTC.100ms"), None);
    }
}
