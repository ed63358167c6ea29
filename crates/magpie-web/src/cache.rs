//! Query results cached per (query, parameters) until the pages' data changes.
//!
//! Dashboards ask the same questions again and again between builds. Publishing a new
//! snapshot calls [`QueryCache::clear`], which starts a new *generation*: a result is kept only
//! if no clear happened while it was computed ([`QueryCache::generation`] is read before the
//! query, [`QueryCache::put`] checks it under the same lock `clear` takes), so a page computed
//! from the old snapshot can never outlive the build that replaced it.
//!
//! The cache is bounded by the bytes its results take (their JSON size, a close estimate of
//! their memory) and forgets the oldest first.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

type Entry = (Arc<dyn Any + Send + Sync>, usize);

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
    generation: u64,
}

/// Shared, byte-bounded, type-erased result cache.
#[derive(Clone)]
pub struct QueryCache {
    inner: Arc<Mutex<Inner>>,
    max_bytes: usize,
}

/// What [`QueryCache::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Kept,
    /// A clear happened since the value's generation began: it was dropped.
    Stale,
    /// Larger than the whole cache.
    TooLarge,
}

impl QueryCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_bytes: max_bytes.max(1),
        }
    }

    /// The current generation: read it before computing a value to [`QueryCache::put`].
    pub fn generation(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.generation)
    }

    /// The cached value of type `T` under `key`, if any.
    pub fn get<T: Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(key).cloned()?.0.downcast::<T>().ok()
    }

    /// Remember `value` under `key` if it was computed within `generation`.
    pub fn put<T: Serialize + Send + Sync + 'static>(
        &self,
        generation: u64,
        key: String,
        value: Arc<T>,
    ) -> Put {
        let size = key.len() + json_size(&*value) + 64;
        if size > self.max_bytes {
            return Put::TooLarge;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return Put::Stale;
        };
        if inner.generation != generation {
            return Put::Stale;
        }
        match inner.entries.insert(key.clone(), (value, size)) {
            Some((_, old)) => inner.bytes -= old,
            None => inner.order.push_back(key),
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, freed)) = inner.entries.remove(&oldest) {
                inner.bytes -= freed;
            }
        }
        Put::Kept
    }

    /// Forget everything and start a new generation (the pages' data changed).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.entries.clear();
            inner.order.clear();
            inner.bytes = 0;
            inner.generation += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.entries.len())
    }

    /// Bytes the cached results take (their estimate).
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The length of `value` as JSON, counted without building the text.
fn json_size<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_oldest_beyond_its_bytes_and_on_clear() {
        // Each entry: a 1-byte key, 4 bytes of JSON ("aaaa" is 6 with quotes), 64 overhead.
        let cache = QueryCache::new(150);
        let g = cache.generation();
        assert_eq!(cache.put(g, "a".into(), Arc::new(1111u32)), Put::Kept);
        assert_eq!(cache.put(g, "b".into(), Arc::new(2222u32)), Put::Kept);
        assert_eq!(cache.put(g, "c".into(), Arc::new(3333u32)), Put::Kept);
        assert!(cache.get::<u32>("a").is_none(), "the oldest went first");
        assert_eq!(*cache.get::<u32>("c").unwrap(), 3333);
        assert!(cache.bytes() <= 150);
        assert!(
            cache.get::<String>("c").is_none(),
            "a value of another type is a miss"
        );
        let big = "x".repeat(200);
        assert_eq!(cache.put(g, "big".into(), Arc::new(big)), Put::TooLarge);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_value_computed_before_a_clear_is_not_kept() {
        let cache = QueryCache::new(1 << 20);
        let before = cache.generation();
        // ... a query runs on the old snapshot while a build publishes a new one ...
        cache.clear();
        assert_eq!(
            cache.put(before, "page".into(), Arc::new("old".to_string())),
            Put::Stale
        );
        assert!(cache.get::<String>("page").is_none());
        let now = cache.generation();
        assert_eq!(
            cache.put(now, "page".into(), Arc::new("new".to_string())),
            Put::Kept
        );
        assert_eq!(*cache.get::<String>("page").unwrap(), "new");
    }
}
