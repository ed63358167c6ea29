//! Running a build's nodes on several DuckDB connections at once.
//!
//! One thread per connection runs what the coordinator (the calling thread) hands it; the
//! coordinator follows the [`Schedule`], hears back every result, and reports it. A node whose
//! attempt asks to run alone (a model that ran out of memory, to be built again on one DuckDB
//! thread) waits until nothing else runs, then runs with the whole database to itself, and
//! nothing else starts meanwhile: DuckDB's thread count and memory are shared by every
//! connection.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use duckdb::Connection;

use crate::schedule::Schedule;

/// How one attempt at a node ended.
pub(crate) enum Attempt<T> {
    /// The node is finished: its result, and whether its dependents may run.
    Finished { result: T, succeeded: bool },
    /// Run the node again once nothing else runs (`alone` is then true).
    AgainAlone,
}

/// What the coordinator reports, in the order it learns it.
pub(crate) enum Event<T> {
    /// A node ran: its result and the time its attempts took.
    Finished {
        node: usize,
        result: T,
        took: Duration,
    },
    /// A node did not run because a node it depends on failed.
    Skipped { node: usize },
}

/// A job for a worker: the node, and whether it runs alone.
type Job = (usize, bool);
/// A worker's answer: the worker, the node, and the attempt (or the worker's panic).
type Answer<T> = (usize, usize, std::thread::Result<Attempt<T>>);

/// Run every node of `schedule`, each by `work(connection, node, alone)` on one of
/// `connections` (as many nodes at once as there are connections), telling `report` of each
/// result on this thread. When `report` fails, no node starts after it; the running ones
/// finish, and the first error is returned.
pub(crate) fn run<T: Send, E>(
    connections: Vec<Connection>,
    mut schedule: Schedule,
    work: impl Fn(&Connection, usize, bool) -> Attempt<T> + Sync,
    mut report: impl FnMut(Event<T>) -> Result<(), E>,
) -> Result<(), E> {
    assert!(!connections.is_empty(), "at least one connection");
    std::thread::scope(|scope| {
        let (answer_tx, answers) = mpsc::channel::<Answer<T>>();
        let mut jobs = Vec::new();
        for (worker, connection) in connections.into_iter().enumerate() {
            let (job_tx, job_rx) = mpsc::channel::<Job>();
            jobs.push(job_tx);
            let answer_tx = answer_tx.clone();
            let work = &work;
            scope.spawn(move || {
                for (node, alone) in job_rx {
                    let attempt =
                        panic::catch_unwind(AssertUnwindSafe(|| work(&connection, node, alone)));
                    if answer_tx.send((worker, node, attempt)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(answer_tx);

        let mut idle: Vec<usize> = (0..jobs.len()).rev().collect();
        let mut started: Vec<Option<Instant>> = vec![None; schedule.len()];
        let mut took = vec![Duration::ZERO; schedule.len()];
        let mut waiting_alone: VecDeque<usize> = VecDeque::new();
        let mut failure: Option<E> = None;
        loop {
            let all_idle = idle.len() == jobs.len();
            if failure.is_none() {
                if !waiting_alone.is_empty() {
                    if all_idle {
                        let node = waiting_alone.pop_front().expect("not empty");
                        let worker = idle.pop().expect("every worker is idle");
                        started[node] = Some(Instant::now());
                        send(&jobs[worker], node, true);
                    }
                } else {
                    while !idle.is_empty() {
                        let Some(node) = schedule.pop_ready() else {
                            break;
                        };
                        let worker = idle.pop().expect("not empty");
                        started[node] = Some(Instant::now());
                        send(&jobs[worker], node, false);
                    }
                }
            }
            if idle.len() == jobs.len() {
                // Nothing runs, and nothing more can start.
                break;
            }
            let (worker, node, attempt) = answers.recv().expect("a worker is running");
            idle.push(worker);
            took[node] += started[node]
                .take()
                .map(|t| t.elapsed())
                .unwrap_or_default();
            let attempt = match attempt {
                Ok(attempt) => attempt,
                Err(payload) => {
                    drop(jobs);
                    panic::resume_unwind(payload);
                }
            };
            match attempt {
                Attempt::AgainAlone => waiting_alone.push_back(node),
                Attempt::Finished { result, succeeded } => {
                    let skipped = schedule.finish(node, succeeded);
                    let finished = Event::Finished {
                        node,
                        result,
                        took: took[node],
                    };
                    let events = std::iter::once(finished)
                        .chain(skipped.into_iter().map(|node| Event::Skipped { node }));
                    for event in events {
                        if failure.is_none()
                            && let Err(e) = report(event)
                        {
                            failure = Some(e);
                        }
                    }
                }
            }
        }
        drop(jobs);
        match failure {
            Some(e) => Err(e),
            None => {
                debug_assert!(schedule.is_done(), "every node ran or was skipped");
                Ok(())
            }
        }
    })
}

fn send(jobs: &mpsc::Sender<Job>, node: usize, alone: bool) {
    jobs.send((node, alone))
        .expect("a worker lives as long as the pool");
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn connections(n: usize) -> Vec<Connection> {
        let first = Connection::open_in_memory().unwrap();
        let mut all: Vec<Connection> = (1..n).map(|_| first.try_clone().unwrap()).collect();
        all.push(first);
        all
    }

    #[test]
    fn runs_nodes_at_once_and_in_dependency_order() {
        // 0 and 1 are independent and slow; 2 needs both.
        let schedule = Schedule::new(vec![vec![], vec![], vec![0, 1]], vec![1, 1, 1]);
        let at_once = AtomicUsize::new(0);
        let most_at_once = AtomicUsize::new(0);
        let finished = Mutex::new(Vec::new());
        let mut reported = Vec::new();
        run::<usize, ()>(
            connections(2),
            schedule,
            |conn, node, alone| {
                assert!(!alone);
                let now = at_once.fetch_add(1, Ordering::SeqCst) + 1;
                most_at_once.fetch_max(now, Ordering::SeqCst);
                if node < 2 {
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    assert_eq!(finished.lock().unwrap().len(), 2, "2 ran after 0 and 1");
                }
                let one: usize = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
                at_once.fetch_sub(1, Ordering::SeqCst);
                finished.lock().unwrap().push(node);
                Attempt::Finished {
                    result: node * 10 + one,
                    succeeded: true,
                }
            },
            |event| {
                if let Event::Finished { node, result, took } = event {
                    assert_eq!(result, node * 10 + 1);
                    if node < 2 {
                        assert!(took >= Duration::from_millis(100), "{took:?}");
                    }
                    reported.push(node);
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            most_at_once.load(Ordering::SeqCst),
            2,
            "0 and 1 ran together"
        );
        assert_eq!(reported.len(), 3);
        assert_eq!(reported[2], 2);
    }

    #[test]
    fn a_node_that_asks_to_run_alone_runs_when_nothing_else_does() {
        // 0 asks to run again alone while 1 (slow) runs; 2 is ready all along but must not
        // start before 0's second attempt ended.
        let schedule = Schedule::new(vec![vec![]; 3], vec![3, 2, 1]);
        let running = Mutex::new(Vec::<usize>::new());
        let log = Mutex::new(Vec::new());
        let mut skipped = 0;
        run::<(), ()>(
            connections(2),
            schedule,
            |_, node, alone| {
                running.lock().unwrap().push(node);
                if node == 1 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if alone {
                    assert_eq!(*running.lock().unwrap(), vec![node], "nothing else runs");
                }
                log.lock().unwrap().push((node, alone));
                running.lock().unwrap().retain(|&n| n != node);
                if node == 0 && !alone {
                    Attempt::AgainAlone
                } else {
                    Attempt::Finished {
                        result: (),
                        succeeded: node != 0,
                    }
                }
            },
            |event| {
                if let Event::Skipped { .. } = event {
                    skipped += 1;
                }
                Ok(())
            },
        )
        .unwrap();
        let log = log.into_inner().unwrap();
        let alone_at = log.iter().position(|&e| e == (0, true)).unwrap();
        let two_at = log.iter().position(|&e| e.0 == 2).unwrap();
        let one_at = log.iter().position(|&e| e.0 == 1).unwrap();
        assert!(one_at < alone_at && alone_at < two_at, "{log:?}");
        assert_eq!(skipped, 0);
    }

    #[test]
    fn a_failing_report_stops_new_nodes_and_is_returned() {
        let schedule = Schedule::new(vec![vec![], vec![0], vec![1]], vec![1, 1, 1]);
        let ran = AtomicUsize::new(0);
        let result = run::<(), String>(
            connections(2),
            schedule,
            |_, _, _| {
                ran.fetch_add(1, Ordering::SeqCst);
                Attempt::Finished {
                    result: (),
                    succeeded: true,
                }
            },
            |_| Err("disk full".to_string()),
        );
        assert_eq!(result.unwrap_err(), "disk full");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "nothing ran after the failure"
        );
    }

    #[test]
    fn a_panicking_node_panics_the_build_instead_of_hanging_it() {
        let schedule = Schedule::new(vec![vec![], vec![]], vec![1, 1]);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            run::<(), ()>(
                connections(2),
                schedule,
                |_, node, _| {
                    if node == 0 {
                        panic!("boom");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    Attempt::Finished {
                        result: (),
                        succeeded: true,
                    }
                },
                |_| Ok(()),
            )
        }));
        assert!(outcome.is_err());
    }
}
