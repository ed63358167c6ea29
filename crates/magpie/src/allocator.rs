//! The process's memory allocator: jemalloc, for magpie's Rust and for DuckDB's C++ alike (the
//! unprefixed build provides `malloc` and `free` themselves, so every allocation in the process
//! goes through it), tuned for a small box.
//!
//! Why not glibc's malloc: DuckDB frees and allocates its 256 KiB buffers all the time, and
//! glibc keeps what it frees in per-thread arenas. Measured on `magpie build` of the 350,000-play
//! demo (two cores, default budget, runs alternating with glibc): jemalloc with these options
//! took 8–14 % less wall time at about the same peak RSS; jemalloc's defaults (eight arenas,
//! ten seconds before freed pages go back) cost 40–50 MiB more RSS.
//!
//! The options: one arena (magpie has few busy threads), freed pages returned after 100 ms
//! (`dirty_decay_ms`) and not kept lazily (`muzzy_decay_ms:0`), by jemalloc's background
//! thread rather than inline in `free` (inline: 6 % slower). Also measured, in alternating
//! runs: 30 ms, within noise of 100 ms (RSS -3 to 0 MiB, wall 0 to +4 %); smaller thread
//! caches (`tcache_max:1024`): RSS -2.5 MiB, wall +4 %. `MALLOC_CONF` in the environment
//! overrides these.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this C string at start-up (the unprefixed build's name).
#[used]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: ConfString =
    ConfString(c"narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0,background_thread:true".as_ptr());

/// A pointer to a `'static` C string, as jemalloc's `const char *malloc_conf` expects.
#[repr(transparent)]
struct ConfString(*const std::ffi::c_char);

// SAFETY: the pointer is to an immutable `'static` string; nothing writes through it.
unsafe impl Sync for ConfString {}
