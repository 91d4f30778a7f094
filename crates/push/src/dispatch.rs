//! The dispatch component, loaded once and called with whole batches.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Host bindings of the `dispatcher` world.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "vigil:platform/dispatcher",
        path: "../../wit",
        exports: { default: async },
        // Hashable and comparable, so the hub can group connections whose records are
        // equal into one.
        additional_derives: [PartialEq, Eq, Hash],
    });
}

pub use bindings::vigil::platform::types::{
    Decision, Encoding, Event, Filter, Frame, Plan, RateState, Subscriber,
};
use bindings::{Dispatcher, DispatcherPre};

/// Longest one dispatch call may run; a batch of thousands of subscribers takes
/// milliseconds, so hitting this means the component is stuck.
const CALL_DEADLINE: Duration = Duration::from_secs(2);

struct DispatchState {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for DispatchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A live instance of the dispatch component. One instance serves the whole hub;
/// after a trap it is replaced by a fresh one.
pub struct DispatchComponent {
    pre: DispatcherPre<DispatchState>,
    store: Store<DispatchState>,
    instance: Dispatcher,
}

impl DispatchComponent {
    /// Compiles and instantiates the component at `path`.
    pub async fn load(engine: &Engine, path: &Path) -> anyhow::Result<Self> {
        let component = Component::from_file(engine, path)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "loading the dispatch component {} (run ./scripts/build-wasm)",
                    path.display()
                )
            })?;
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let pre = DispatcherPre::new(linker.instantiate_pre(&component)?)?;
        let (store, instance) = Self::instantiate(&pre).await?;
        Ok(Self {
            pre,
            store,
            instance,
        })
    }

    async fn instantiate(
        pre: &DispatcherPre<DispatchState>,
    ) -> anyhow::Result<(Store<DispatchState>, Dispatcher)> {
        let state = DispatchState {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stderr().build(),
        };
        let mut store = Store::new(pre.engine(), state);
        store.set_epoch_deadline(vigil_runtime::engine::ticks(CALL_DEADLINE));
        store.epoch_deadline_trap();
        let instance = pre.instantiate_async(&mut store).await?;
        Ok((store, instance))
    }

    /// Plans delivery of `events` to `subscribers`.
    pub async fn decide(
        &mut self,
        now_ms: u64,
        events: &[Event],
        subscribers: &[Subscriber],
    ) -> anyhow::Result<Plan> {
        self.store
            .set_epoch_deadline(vigil_runtime::engine::ticks(CALL_DEADLINE));
        let result = self
            .instance
            .vigil_platform_dispatch()
            .call_decide(&mut self.store, now_ms, events, subscribers)
            .await;
        self.recover(result).await
    }

    /// Encodes held updates as one `batch_update`.
    pub async fn encode_batch(
        &mut self,
        events: &[Event],
        encoding: Encoding,
        gzip: bool,
    ) -> anyhow::Result<Frame> {
        self.store
            .set_epoch_deadline(vigil_runtime::engine::ticks(CALL_DEADLINE));
        let result = self
            .instance
            .vigil_platform_dispatch()
            .call_encode_batch(&mut self.store, events, encoding, gzip)
            .await;
        self.recover(result).await
    }

    /// A trapped instance cannot be called again: replace it, and report the trap.
    async fn recover<T>(&mut self, result: wasmtime::Result<T>) -> anyhow::Result<T> {
        if let Err(e) = &result {
            tracing::error!(error = %format!("{e:#}"), "dispatch component trapped; re-instantiating");
            let (store, instance) = Self::instantiate(&self.pre).await?;
            self.store = store;
            self.instance = instance;
        }
        Ok(result?)
    }
}
