//! Key-value layout shared by the components (which write) and the host (which relays).
//!
//! - `task/{id}`: a [`crate::task::Task`] as JSON.
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
}
