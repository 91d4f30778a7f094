//! The wasmtime engine, built once per process, and the epoch ticker behind deadlines.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Granularity of deadlines: the epoch advances this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances the pooling allocator keeps slots for: the most component calls in flight
/// at once (long-polls included; see `spin_http`). Each idle long-poll costs ~0.3 MiB.
/// Override with `VIGIL_POOL_INSTANCES`.
const DEFAULT_POOL_INSTANCES: u32 = 1024;

/// Largest linear memory of one component instance. Components here use a few MiB;
/// this bounds a misbehaving one. Override with `VIGIL_MAX_MEMORY_MIB`.
const DEFAULT_MAX_MEMORY_MIB: usize = 128;

/// Linear memory an instance slot keeps resident when its instance ends, reset in place
/// (only the pages it dirtied, found with Linux's `PAGEMAP_SCAN` where the kernel has
/// it) instead of unmapped: the next instance in the slot takes no page faults, and no
/// `madvise` makes the kernel flush both cores' TLBs. Measured on ingest, unmapping,
/// page faults and TLB flushes were ~20% of the host's CPU for single-event requests
/// and ~10% for batches of 100. An api instance dirties 1–3 MiB, so this bounds the
/// extra memory to a few MiB per warm slot (wasmtime keeps at most 100 unused ones).
const KEEP_RESIDENT_BYTES: usize = 4 << 20;
/// The same for an instance's tables (function references: a few KiB to tens of KiB),
/// which are otherwise unmapped, with a TLB flush, every time an instance ends.
const TABLE_KEEP_RESIDENT_BYTES: usize = 1 << 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Component instances that may exist at once.
pub fn pool_instances() -> u32 {
    env_or("VIGIL_POOL_INSTANCES", DEFAULT_POOL_INSTANCES).max(8)
}

/// Builds the engine: async, epoch interruption, the pooling allocator when the
/// machine lets it reserve its address space (falling back to on-demand otherwise).
pub fn build() -> anyhow::Result<Engine> {
    let instances = pool_instances();
    let max_memory = env_or("VIGIL_MAX_MEMORY_MIB", DEFAULT_MAX_MEMORY_MIB) << 20;
    let mut config = base_config();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // A Spin component holds a handful of core instances, memories and tables.
        .total_core_instances(instances * 4)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memory_size(max_memory)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
            Ok(Engine::new(&base_config())?)
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Profiling: names the components' compiled functions for `perf` (/tmp/perf-<pid>.map).
    if std::env::var("VIGIL_PERFMAP").is_ok() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("vigil-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Epoch ticks in `d`, at least one.
pub fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
