//! Key-value layout shared by the components (which write) and the host (which relays).
//!
//! - `task/{id}`: a task record (`vigil-store`'s `Stored`: the [`crate::task::Task`]
//!   with its revision, or what is left of it once retention expired it).
//! - `history/{id}`: the task's events in order, a [`crate::history::History`].
//! - `children/{id}`: ids of the tasks it sent (their `parent_id` is `id`), a JSON array.
//!   [`task_keys`] lists every key that belongs to one task.
//! - `outbox/{micros:016x}-{nonce:016x}`: a JSON array of unsequenced events a component
//!   published; the host's relay moves them into the event log.
//! - `event/{seq:020}`: one sequenced [`crate::event::Event`]; the bounded history that
//!   resume and long-poll read.
//! - `meta/seq`: the last sequence number the relay assigned.
//! - `worker/{hostname}`, `queue/{name}` (reported stats), `breaker/{queue}`,
//!   `metrics/system`: the other records.
//! - `ix/{index}`, `ix/{index}#{page:x}` and `ix/{index}##{chunk:x}`: the directory,
//!   pages and (in a large index) directory chunks of an ordered index of tasks
//!   (`vigil-store`); `count/{set}`: how many tasks a set holds;
//!   `agg/…`: per-queue aggregates; `reg/queues`, `reg/workers`, `reg/names`: the
//!   queue, worker and task names in use.
//!   User-supplied parts of these keys are [`escape`]d, so `/` and `#` only separate.

/// Prefix of task records.
pub const TASK_PREFIX: &str = "task/";
/// Prefix of the outbox.
pub const OUTBOX_PREFIX: &str = "outbox/";
/// Prefix of the sequenced event log.
pub const EVENT_PREFIX: &str = "event/";
/// Last assigned sequence number.
pub const SEQ_KEY: &str = "meta/seq";
/// Prefix of worker records.
pub const WORKER_PREFIX: &str = "worker/";
/// Prefix of reported queue statistics.
pub const QUEUE_PREFIX: &str = "queue/";
/// Prefix of circuit breakers.
pub const BREAKER_PREFIX: &str = "breaker/";
/// The last system metrics reported.
pub const SYSTEM_METRICS: &str = "metrics/system";

/// Prefix of task histories.
pub const HISTORY_PREFIX: &str = "history/";
/// Prefix of task children lists.
pub const CHILDREN_PREFIX: &str = "children/";

/// Key of a task record.
pub fn task(id: &str) -> String {
    format!("{TASK_PREFIX}{id}")
}

/// Key of a task's event history.
pub fn history(id: &str) -> String {
    format!("{HISTORY_PREFIX}{id}")
}

/// Key of the list of a task's children.
pub fn children(id: &str) -> String {
    format!("{CHILDREN_PREFIX}{id}")
}

/// Every key that belongs to task `id`: delete them all to forget the task.
pub fn task_keys(id: &str) -> [String; 3] {
    [task(id), history(id), children(id)]
}

/// Key of a worker record.
pub fn worker(hostname: &str) -> String {
    format!("{WORKER_PREFIX}{hostname}")
}

/// Key of a queue's circuit breaker.
pub fn breaker(queue: &str) -> String {
    format!("{BREAKER_PREFIX}{queue}")
}

/// Key of an outbox entry. Keys sort by time, so the relay keeps publication order;
/// the nonce keeps two instances writing in the same microsecond apart.
pub fn outbox(micros: u64, nonce: u64) -> String {
    format!("{OUTBOX_PREFIX}{micros:016x}-{nonce:016x}")
}

/// Key of a sequenced event; zero-padded so keys sort by sequence.
pub fn event(seq: u64) -> String {
    format!("{EVENT_PREFIX}{seq:020}")
}

/// Prefix of index directories and pages.
pub const INDEX_PREFIX: &str = "ix/";
/// Prefix of counters (read them with `increment(key, 0)`, never `get`).
pub const COUNT_PREFIX: &str = "count/";
/// Names of the queues in use (a JSON array).
pub const QUEUE_NAMES: &str = "reg/queues";
/// Names of the workers in use (a JSON array).
pub const WORKER_NAMES: &str = "reg/workers";
/// Task names in use (a JSON array).
pub const TASK_NAMES: &str = "reg/names";

/// A user-supplied name (queue, worker, owner, task name) made safe as one part of a
/// key: `%`, `/` and `#` are percent-encoded, so they can only separate parts.
pub fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if !part.contains(['%', '/', '#']) {
        return part.into();
    }
    let mut out = String::with_capacity(part.len() + 6);
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.into()
}

/// Key of an index's directory. `index` is already made of escaped parts.
pub fn index_dir(index: &str) -> String {
    format!("{INDEX_PREFIX}{index}")
}

/// Key of one page of an index.
pub fn index_page(index: &str, page: u64) -> String {
    format!("{INDEX_PREFIX}{index}#{page:x}")
}

/// Key of one chunk of a large index's directory (`##`: no page key has two `#`).
pub fn index_chunk(index: &str, chunk: u64) -> String {
    format!("{INDEX_PREFIX}{index}##{chunk:x}")
}

/// Key of the counter of a set of tasks (see `vigil-store`'s `sets`).
pub fn count(set: &str) -> String {
    format!("{COUNT_PREFIX}{set}")
}

/// Key of a per-queue aggregate, e.g. `agg/wait_ms/{queue}`.
pub fn aggregate(name: &str, queue: &str) -> String {
    format!("agg/{name}/{}", escape(queue))
}

/// Key of one slot of a queue's ring of finished-task counts (throughput).
pub fn throughput(queue: &str, slot: u64) -> String {
    format!("agg/tp/{}/{slot}", escape(queue))
}

/// Key of a queue's reported statistics.
pub fn queue(name: &str) -> String {
    format!("{QUEUE_PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_order() {
        assert!(outbox(9, 0) < outbox(10, 0));
        assert!(outbox(0xff, 5) < outbox(0x100, 0));
        assert!(event(9) < event(10));
        assert_eq!(task("abc"), "task/abc");
        assert_eq!(
            task_keys("abc"),
            ["task/abc", "history/abc", "children/abc"].map(String::from)
        );
    }

    #[test]
    fn escaped_parts_cannot_forge_structure() {
        assert_eq!(escape("celery"), "celery");
        assert_eq!(escape("a/b#c%"), "a%2Fb%23c%25");
        assert_ne!(
            index_dir(&format!("q/{}", escape("x#1"))),
            index_page("q/x", 1)
        );
        assert_eq!(index_page("all", 255), "ix/all#ff");
        assert_eq!(index_chunk("all", 255), "ix/all##ff");
        assert_eq!(aggregate("wait_ms", "a/b"), "agg/wait_ms/a%2Fb");
    }
}
