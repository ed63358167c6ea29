//! The model graph: edges from `ref()` calls, a topological build order, cycle and missing-ref
//! errors that name the files, and dbt's selection syntax (`NAME`, `NAME+`, `+NAME`, `+NAME+`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use crate::ModelsError;

/// Nodes are model names; `parents[m]` are the models `m` refs.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    pub parents: BTreeMap<String, BTreeSet<String>>,
    pub files: BTreeMap<String, PathBuf>,
}

impl Dag {
    /// Build the graph; a ref to an unknown model is an error naming the file.
    pub fn new(
        models: impl IntoIterator<Item = (String, PathBuf, Vec<String>)>,
    ) -> Result<Self, ModelsError> {
        let mut dag = Dag::default();
        let mut refs = Vec::new();
        for (name, path, parents) in models {
            dag.files.insert(name.clone(), path);
            refs.push((name, parents));
        }
        for (name, parents) in refs {
            for parent in &parents {
                if !dag.files.contains_key(parent) {
                    return Err(ModelsError::Graph(format!(
                        "{} refers to `{parent}`, but no model of that name exists",
                        dag.files[&name].display()
                    )));
                }
            }
            dag.parents.insert(name, parents.into_iter().collect());
        }
        dag.order()?;
        Ok(dag)
    }

    fn children(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut children: BTreeMap<&str, Vec<&str>> = self
            .parents
            .keys()
            .map(|k| (k.as_str(), Vec::new()))
            .collect();
        for (child, parents) in &self.parents {
            for p in parents {
                children.entry(p.as_str()).or_default().push(child.as_str());
            }
        }
        children
    }

    /// All models, parents before children (ties by name, so the order is stable).
    pub fn order(&self) -> Result<Vec<String>, ModelsError> {
        let mut indegree: BTreeMap<&str, usize> = self
            .parents
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect();
        let children = self.children();
        let mut ready: VecDeque<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(k, _)| *k)
            .collect();
        let mut order = Vec::new();
        while let Some(node) = ready.pop_front() {
            order.push(node.to_string());
            let mut next: Vec<&str> = Vec::new();
            for child in &children[node] {
                let d = indegree.get_mut(child).expect("known node");
                *d -= 1;
                if *d == 0 {
                    next.push(child);
                }
            }
            next.sort();
            ready.extend(next);
        }
        if order.len() < self.parents.len() {
            return Err(ModelsError::Graph(self.describe_cycle(&order)));
        }
        Ok(order)
    }

    /// Find one cycle among the nodes not ordered and name its files.
    fn describe_cycle(&self, ordered: &[String]) -> String {
        let done: BTreeSet<&str> = ordered.iter().map(String::as_str).collect();
        let start = self
            .parents
            .keys()
            .find(|k| !done.contains(k.as_str()))
            .expect("a node in a cycle");
        let mut path = vec![start.clone()];
        let mut seen = BTreeSet::new();
        let mut node = start.clone();
        loop {
            seen.insert(node.clone());
            let next = self.parents[&node]
                .iter()
                .find(|p| !done.contains(p.as_str()))
                .expect("a node in a cycle has a parent in it")
                .clone();
            if seen.contains(&next) {
                let from = path.iter().position(|p| *p == next).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..]
                    .iter()
                    .map(|m| format!("{} ({})", m, self.files[m].display()))
                    .collect();
                cycle.push(format!("{} ({})", next, self.files[&next].display()));
                return format!(
                    "models refer to each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
            path.push(next.clone());
            node = next;
        }
    }

    /// Models picked by a dbt-style selector: `name`, `name+` (and descendants), `+name` (and
    /// ancestors), `+name+`.
    pub fn select(&self, selector: &str) -> Result<BTreeSet<String>, ModelsError> {
        let ancestors = selector.starts_with('+');
        let descendants = selector.ends_with('+');
        let name = selector.trim_matches('+');
        if !self.parents.contains_key(name) {
            return Err(ModelsError::Graph(format!(
                "--select {selector}: no model named `{name}`"
            )));
        }
        let mut picked = BTreeSet::from([name.to_string()]);
        if ancestors {
            let mut stack = vec![name.to_string()];
            while let Some(n) = stack.pop() {
                for p in &self.parents[&n] {
                    if picked.insert(p.clone()) {
                        stack.push(p.clone());
                    }
                }
            }
        }
        if descendants {
            let children = self.children();
            let mut stack = vec![name.to_string()];
            while let Some(n) = stack.pop() {
                for c in &children[n.as_str()] {
                    if picked.insert(c.to_string()) {
                        stack.push(c.to_string());
                    }
                }
            }
        }
        Ok(picked)
    }

    /// Every model downstream of `name` (not including it).
    pub fn descendants(&self, name: &str) -> BTreeSet<String> {
        let mut all = self.select(&format!("{name}+")).unwrap_or_default();
        all.remove(name);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&str, &[&str])]) -> Result<Dag, ModelsError> {
        Dag::new(edges.iter().map(|(n, ps)| {
            (
                n.to_string(),
                PathBuf::from(format!("models/{n}.sql")),
                ps.iter().map(|p| p.to_string()).collect(),
            )
        }))
    }

    #[test]
    fn order_and_selection() {
        let d = dag(&[
            ("fact", &["stg_a", "dim"]),
            ("dim", &["stg_a"]),
            ("stg_a", &[]),
            ("other", &[]),
        ])
        .unwrap();
        let order = d.order().unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("stg_a") < pos("dim") && pos("dim") < pos("fact"));
        assert_eq!(
            d.select("dim+").unwrap(),
            BTreeSet::from(["dim".into(), "fact".into()])
        );
        assert_eq!(
            d.select("+dim").unwrap(),
            BTreeSet::from(["dim".into(), "stg_a".into()])
        );
        assert_eq!(d.select("other").unwrap(), BTreeSet::from(["other".into()]));
        assert!(d.select("nope").is_err());
        assert_eq!(
            d.descendants("stg_a"),
            BTreeSet::from(["dim".into(), "fact".into()])
        );
    }

    #[test]
    fn cycles_and_missing_refs_name_files() {
        let e = dag(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cycle") && e.contains("models/a.sql") && e.contains("models/c.sql"),
            "{e}"
        );
        let e = dag(&[("a", &["ghost"])]).unwrap_err().to_string();
        assert!(e.contains("models/a.sql") && e.contains("ghost"), "{e}");
    }
}
