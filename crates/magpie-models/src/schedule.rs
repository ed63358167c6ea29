//! The order in which a build runs its nodes when several run at once.
//!
//! A node is ready when every node it depends on has succeeded. Among ready nodes, the one
//! that heads the longest remaining path goes first, measured in the time each node took in
//! the last build, so the chain that decides how long a build takes (at 350,000 plays:
//! int_track_identities → int_plays → dim_artist → fact_plays) never waits behind short side
//! branches. A node that fails takes everything that depends on it along: those are skipped.
//!
//! ```
//! use magpie_models::schedule::Schedule;
//! // 0 → 1 → 2, and 3 on its own; node 1 is slow.
//! let mut s = Schedule::new(vec![vec![], vec![0], vec![1], vec![]], vec![1, 50, 1, 10]);
//! assert_eq!(s.pop_ready(), Some(0)); // heads the 52 µs chain
//! assert_eq!(s.pop_ready(), Some(3));
//! assert_eq!(s.pop_ready(), None); // 1 waits for 0
//! assert!(s.finish(0, false).contains(&2)); // 0 failed: 1 and 2 are skipped
//! assert!(s.finish(3, true).is_empty());
//! assert!(s.is_done());
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Where a node is in the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Done,
}

/// Dependencies, priorities and progress of one build's nodes (indices `0..n`).
#[derive(Debug, Clone)]
pub struct Schedule {
    dependents: Vec<Vec<usize>>,
    /// Dependencies not yet succeeded, per node.
    unmet: Vec<usize>,
    /// The node's cost plus the costliest path of dependents after it.
    priority: Vec<u64>,
    state: Vec<State>,
    ready: BinaryHeap<(u64, Reverse<usize>)>,
    done: usize,
    /// Nodes of which at most one runs at a time (the others run beside it).
    one_at_a_time: Vec<bool>,
    single_running: bool,
}

impl Schedule {
    /// `depends_on[i]` lists the nodes `i` needs (each index below `depends_on.len()`, no
    /// cycles: the models' graph is checked before); `cost[i]` is what `i` is expected to take,
    /// in any unit.
    pub fn new(depends_on: Vec<Vec<usize>>, cost: Vec<u64>) -> Self {
        let n = depends_on.len();
        assert_eq!(cost.len(), n, "one cost per node");
        let mut dependents = vec![Vec::new(); n];
        for (node, deps) in depends_on.iter().enumerate() {
            for &d in deps {
                dependents[d].push(node);
            }
        }
        let unmet: Vec<usize> = depends_on.iter().map(Vec::len).collect();
        let mut priority = vec![0; n];
        for node in reverse_topological(&dependents, &unmet) {
            let after = dependents[node]
                .iter()
                .map(|&d| priority[d])
                .max()
                .unwrap_or(0);
            priority[node] = cost[node].saturating_add(after);
        }
        let mut schedule = Self {
            dependents,
            unmet,
            priority,
            state: vec![State::Waiting; n],
            ready: BinaryHeap::new(),
            done: 0,
            one_at_a_time: vec![false; n],
            single_running: false,
        };
        for node in 0..n {
            if schedule.unmet[node] == 0 {
                schedule.make_ready(node);
            }
        }
        schedule
    }

    fn make_ready(&mut self, node: usize) {
        self.state[node] = State::Ready;
        self.ready.push((self.priority[node], Reverse(node)));
    }

    /// Mark the nodes of which at most one may run at a time (`flags[i]` for node `i`); nodes
    /// not marked run beside them.
    pub fn one_at_a_time(mut self, flags: Vec<bool>) -> Self {
        assert_eq!(flags.len(), self.state.len(), "one flag per node");
        self.one_at_a_time = flags;
        self
    }

    /// The ready node to run next (now counted as running), if any may start now.
    pub fn pop_ready(&mut self) -> Option<usize> {
        let mut held_back = Vec::new();
        let mut next = None;
        while let Some(entry) = self.ready.pop() {
            let Reverse(node) = entry.1;
            if self.one_at_a_time[node] && self.single_running {
                held_back.push(entry);
            } else {
                next = Some(node);
                break;
            }
        }
        self.ready.extend(held_back);
        let node = next?;
        self.state[node] = State::Running;
        if self.one_at_a_time[node] {
            self.single_running = true;
        }
        Some(node)
    }

    /// Record that a running node ended. When it failed, every node depending on it, directly
    /// or not, is done too: they are returned (in dependency order) to be reported as skipped.
    pub fn finish(&mut self, node: usize, succeeded: bool) -> Vec<usize> {
        assert_eq!(
            self.state[node],
            State::Running,
            "node {node} was not running"
        );
        self.state[node] = State::Done;
        self.done += 1;
        if self.one_at_a_time[node] {
            self.single_running = false;
        }
        let mut skipped = Vec::new();
        if succeeded {
            for i in 0..self.dependents[node].len() {
                let d = self.dependents[node][i];
                self.unmet[d] -= 1;
                if self.unmet[d] == 0 && self.state[d] == State::Waiting {
                    self.make_ready(d);
                }
            }
        } else {
            let mut stack = vec![node];
            while let Some(n) = stack.pop() {
                for &d in &self.dependents[n] {
                    // A dependent cannot have started: it waits for this node.
                    if self.state[d] == State::Waiting {
                        self.state[d] = State::Done;
                        self.done += 1;
                        skipped.push(d);
                        stack.push(d);
                    }
                }
            }
        }
        skipped
    }

    /// How many nodes the build has.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether the build has no nodes.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Whether every node has ended (run or skipped).
    pub fn is_done(&self) -> bool {
        self.done == self.state.len()
    }
}

/// Nodes ordered so that every node comes after all of its dependents.
fn reverse_topological(dependents: &[Vec<usize>], unmet: &[usize]) -> Vec<usize> {
    let mut indegree = unmet.to_vec();
    let mut stack: Vec<usize> = (0..indegree.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(node) = stack.pop() {
        order.push(node);
        for &d in &dependents[node] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                stack.push(d);
            }
        }
    }
    assert_eq!(order.len(), indegree.len(), "the nodes form a cycle");
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Schedule) -> Vec<usize> {
        let mut order = Vec::new();
        while let Some(n) = s.pop_ready() {
            order.push(n);
            s.finish(n, true);
        }
        order
    }

    #[test]
    fn the_longest_chain_goes_first() {
        // 0 → 1 → 2 is 30 long; 3 → 4 is 25 long but its head costs more than 0.
        let mut s = Schedule::new(
            vec![vec![], vec![0], vec![1], vec![], vec![3]],
            vec![5, 20, 5, 15, 10],
        );
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.pop_ready(), Some(3));
        s.finish(3, true);
        // 4 (10) is ready, 1 is not yet: 4 runs.
        assert_eq!(s.pop_ready(), Some(4));
        s.finish(0, true);
        s.finish(4, true);
        assert_eq!(drain(&mut s), vec![1, 2]);
        assert!(s.is_done());
    }

    #[test]
    fn a_node_waits_for_all_its_dependencies() {
        let mut s = Schedule::new(vec![vec![], vec![], vec![0, 1]], vec![1, 1, 1]);
        let a = s.pop_ready().unwrap();
        let b = s.pop_ready().unwrap();
        assert_eq!(s.pop_ready(), None);
        s.finish(a, true);
        assert_eq!(s.pop_ready(), None, "2 still waits for {b}");
        s.finish(b, true);
        assert_eq!(s.pop_ready(), Some(2));
        s.finish(2, true);
        assert!(s.is_done());
    }

    #[test]
    fn a_failure_skips_everything_downstream_once() {
        // 0 → 1 → 3, 0 → 2 → 3, and 4 beside.
        let mut s = Schedule::new(
            vec![vec![], vec![0], vec![0], vec![1, 2], vec![]],
            vec![1, 1, 1, 1, 1],
        );
        let first = s.pop_ready().unwrap();
        let second = s.pop_ready().unwrap();
        assert_eq!((first.min(second), first.max(second)), (0, 4));
        let mut skipped = s.finish(0, false);
        skipped.sort();
        assert_eq!(skipped, vec![1, 2, 3]);
        assert!(!s.is_done(), "4 is still running");
        assert_eq!(s.pop_ready(), None);
        assert!(s.finish(4, true).is_empty());
        assert!(s.is_done());
    }

    #[test]
    fn nodes_marked_one_at_a_time_never_run_together() {
        // 0, 1 and 2 are independent; 0 and 1 run one at a time, 2 beside either.
        let mut s =
            Schedule::new(vec![vec![]; 3], vec![3, 2, 1]).one_at_a_time(vec![true, true, false]);
        assert_eq!(s.pop_ready(), Some(0));
        assert_eq!(s.pop_ready(), Some(2), "1 waits for 0, 2 does not");
        assert_eq!(s.pop_ready(), None);
        s.finish(0, true);
        assert_eq!(s.pop_ready(), Some(1));
        s.finish(1, true);
        s.finish(2, true);
        assert!(s.is_done());
    }

    #[test]
    fn ties_go_in_index_order() {
        let mut s = Schedule::new(vec![vec![]; 4], vec![3; 4]);
        assert_eq!(drain(&mut s), vec![0, 1, 2, 3]);
    }
}
