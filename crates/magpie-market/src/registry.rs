//! The subscription registry: one set of wanted channels for the whole collector, each
//! channel owned by exactly one data connection, and which of them the server accepted.
//!
//! Being sets, adding a channel twice or resubscribing after a reconnect can never double a
//! subscription. New channels go to the least-loaded connection, an instrument's channels
//! (ticker and quote) all to the same one, so a connection that drops takes whole
//! instruments with it, never half of one.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Channels per connection to (un)subscribe, as the registry decided.
pub type Assignments = BTreeMap<usize, Vec<String>>;

#[derive(Debug, Default)]
pub struct Registry {
    /// Channel → the data connection (1-based) that carries it.
    owner: HashMap<String, usize>,
    /// Instrument (or, for per-kind channels, the channel) → its connection.
    group_owner: HashMap<String, (usize, usize)>,
    load: Vec<usize>,
    accepted: HashSet<String>,
    rejected: HashMap<String, String>,
}

impl Registry {
    /// A registry spreading channels over connections `1..=connections`.
    pub fn new(connections: usize) -> Self {
        Self {
            load: vec![0; connections.max(1)],
            ..Default::default()
        }
    }

    /// Want these channels: new ones are given an owner; returned per connection are those
    /// that are not accepted yet (new, or rejected before: asked again).
    pub fn want(&mut self, channels: impl IntoIterator<Item = String>) -> Assignments {
        let mut out = Assignments::new();
        for channel in channels {
            if self.accepted.contains(&channel) {
                continue;
            }
            let conn = match self.owner.get(&channel) {
                Some(&conn) => conn,
                None => {
                    let group = group_of(&channel).to_string();
                    let conn = match self.group_owner.get_mut(&group) {
                        Some((conn, members)) => {
                            *members += 1;
                            *conn
                        }
                        None => {
                            let (index, _) = self
                                .load
                                .iter()
                                .enumerate()
                                .min_by_key(|(i, load)| (**load, *i))
                                .expect("at least one connection");
                            self.group_owner.insert(group, (index + 1, 1));
                            index + 1
                        }
                    };
                    self.load[conn - 1] += 1;
                    self.owner.insert(channel.clone(), conn);
                    conn
                }
            };
            out.entry(conn).or_default().push(channel);
        }
        out
    }

    /// Stop wanting these channels; returned per connection are those it carried.
    pub fn drop_channels(&mut self, channels: impl IntoIterator<Item = String>) -> Assignments {
        let mut out = Assignments::new();
        for channel in channels {
            if let Some(conn) = self.owner.remove(&channel) {
                self.load[conn - 1] -= 1;
                let group = group_of(&channel);
                if let Some((_, members)) = self.group_owner.get_mut(group) {
                    *members -= 1;
                    if *members == 0 {
                        self.group_owner.remove(group);
                    }
                }
                self.accepted.remove(&channel);
                self.rejected.remove(&channel);
                out.entry(conn).or_default().push(channel);
            }
        }
        out
    }

    pub fn on_accepted(&mut self, channels: &[String]) {
        for channel in channels {
            if self.owner.contains_key(channel) {
                self.rejected.remove(channel);
                self.accepted.insert(channel.clone());
            }
        }
    }

    pub fn on_rejected(&mut self, channels: &[String], error: &str) {
        for channel in channels {
            if self.owner.contains_key(channel) {
                self.accepted.remove(channel);
                self.rejected.insert(channel.clone(), error.to_string());
            }
        }
    }

    /// A connection went down: none of its channels is subscribed until it resubscribes.
    pub fn on_disconnected(&mut self, conn: usize) {
        let owner = &self.owner;
        self.accepted.retain(|c| owner.get(c) != Some(&conn));
    }

    pub fn is_wanted(&self, channel: &str) -> bool {
        self.owner.contains_key(channel)
    }

    pub fn is_accepted(&self, channel: &str) -> bool {
        self.accepted.contains(channel)
    }

    /// Wanted channels the server refused, with its reason.
    pub fn rejected(&self) -> &HashMap<String, String> {
        &self.rejected
    }

    /// Wanted but not accepted.
    pub fn missing(&self) -> Vec<String> {
        self.owner
            .keys()
            .filter(|c| !self.accepted.contains(*c))
            .cloned()
            .collect()
    }

    pub fn wanted_count(&self) -> usize {
        self.owner.len()
    }

    pub fn accepted_count(&self) -> usize {
        self.accepted.len()
    }

    /// Channels per connection.
    pub fn load(&self) -> &[usize] {
        &self.load
    }
}

/// The instrument a channel is for, or the channel itself (per-kind channels).
fn group_of(channel: &str) -> &str {
    crate::plan::instrument_of(channel).unwrap_or(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ticker.I{i}.100ms")).collect()
    }

    #[test]
    fn channels_spread_evenly_and_never_double() {
        let mut r = Registry::new(3);
        let first = r.want(names(10));
        assert_eq!(first.values().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(r.load(), &[4, 3, 3]);
        // An instrument's quote goes where its ticker went.
        let quote = r.want(vec!["quote.I4".to_string()]);
        let ticker_conn = first
            .iter()
            .find(|(_, v)| v.contains(&"ticker.I4.100ms".to_string()))
            .unwrap()
            .0;
        assert_eq!(quote.keys().next(), Some(ticker_conn));
        r.drop_channels(vec!["quote.I4".to_string()]);
        // Asking again returns the same owners (not accepted yet), with no new load.
        let again = r.want(names(10));
        assert_eq!(again, first);
        assert_eq!(r.load(), &[4, 3, 3]);
        let all: Vec<String> = first.values().flatten().cloned().collect();
        r.on_accepted(&all);
        assert!(
            r.want(names(10)).is_empty(),
            "accepted channels are not asked again"
        );
        assert_eq!(r.wanted_count(), 10);
    }

    #[test]
    fn rejected_are_retried_dropped_are_forgotten_disconnects_unaccept() {
        let mut r = Registry::new(2);
        let a = r.want(names(4));
        let all: Vec<String> = a.values().flatten().cloned().collect();
        r.on_accepted(&all[..3]);
        r.on_rejected(&all[3..], "not in the subscribe result");
        assert_eq!(r.rejected().len(), 1);
        assert_eq!(r.want(names(4)).values().flatten().count(), 1);
        let dropped = r.drop_channels(vec![all[0].clone(), "unknown".into()]);
        assert_eq!(dropped.values().flatten().count(), 1);
        assert_eq!(r.wanted_count(), 3);
        let conn_of_1 = *a.iter().find(|(_, v)| v.contains(&all[1])).unwrap().0;
        r.on_disconnected(conn_of_1);
        assert!(!r.is_accepted(&all[1]));
        assert!(r.is_wanted(&all[1]));
    }
}
