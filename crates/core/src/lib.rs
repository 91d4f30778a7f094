//! Vigil's domain, shared by the Spin components and the host. No I/O lives here.
//!
//! - [`task`]: the task record and its states.
//! - [`ingest`]: parsing and validating producers' events (Celery's event format).
//! - [`apply`]: how an ingested event changes a task record (Celery's precedence rule).
//! - [`attempt`]: a task's runs (the first, then one per retry), each with its own times.
//! - [`history`]: every event of a task, in order, for its detail view.
//! - [`replay`]: a task record recomputed from its history, whatever the arrival order.
//! - [`control`]: worker control commands (pool, consumers, limits, shutdown).
//! - [`celery_metrics`]: the Celery domain in Prometheus, as Flower exports it.
//! - [`jobs`]: seed 003's job notifications, queue status and system metrics.
//! - [`event`]: the published event envelope every push transport carries.
//! - [`auth`]: JWT tokens, roles and what each role may do.
//! - [`ids`]: which ids are accepted, and how URL paths name them.
//! - [`error`]: the one error shape every refusal is rendered with.
//! - [`keys`]: the key-value layout shared by the components and the host.
//! - [`worker`], [`queue`], [`breaker`]: workers, queue statistics, circuit breakers.
//! - [`stamps`]: which event set each field of a worker, so arrival order does not matter.
//! - [`time`]: timestamps as the APIs show them.
#![deny(missing_docs)]

pub mod apply;
pub mod attempt;
pub mod auth;
pub mod breaker;
pub mod celery_metrics;
pub mod control;
pub mod error;
pub mod event;
pub mod history;
pub mod ids;
pub mod ingest;
pub mod jobs;
pub mod keys;
pub mod queue;
pub mod replay;
pub mod stamps;
pub mod task;
pub mod time;
pub mod worker;
