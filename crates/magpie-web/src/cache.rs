//! Query results cached per (query, parameters) until the warehouse changes.
//!
//! Dashboards ask the same questions again and again between builds; a build (or an import)
//! calls [`QueryCache::clear`]. The cache holds at most `capacity` results and forgets the
//! oldest first.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

type Entry = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

/// Shared, bounded, type-erased result cache.
#[derive(Clone)]
pub struct QueryCache {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl QueryCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// The cached value of type `T` under `key`, if any.
    pub fn get<T: Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(key).cloned()?.downcast::<T>().ok()
    }

    /// Remember `value` under `key`.
    pub fn put<T: Send + Sync + 'static>(&self, key: String, value: Arc<T>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.entries.insert(key.clone(), value).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.entries.remove(&oldest);
            }
        }
    }

    /// Forget everything (the marts were rebuilt).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.entries.clear();
            inner.order.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_oldest_beyond_capacity_and_on_clear() {
        let cache = QueryCache::new(2);
        cache.put("a".into(), Arc::new(1u32));
        cache.put("b".into(), Arc::new(2u32));
        cache.put("c".into(), Arc::new(3u32));
        assert!(cache.get::<u32>("a").is_none());
        assert_eq!(*cache.get::<u32>("c").unwrap(), 3);
        assert!(
            cache.get::<String>("c").is_none(),
            "a value of another type is a miss"
        );
        cache.clear();
        assert!(cache.is_empty());
    }
}
