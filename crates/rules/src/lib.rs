//! The rules the host, the api component and the dispatch component must agree on,
//! written once: who may see an event or a record, which topics are public, the
//! per-queue rooms, what makes two updates conflate, and how a component asks the host
//! to park a long-poll ([`park`]). No dependencies, so the dispatch component compiles
//! it without growing.
#![deny(missing_docs)]
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

pub mod park;

/// Room of queue statistics (seed 000's `celery:queues`).
pub const QUEUES_TOPIC: &str = "celery:queues";
/// Topic of worker registrations and health (seed 004).
pub const WORKERS_TOPIC: &str = "workers";
/// Topic of circuit-breaker changes (seed 002).
pub const BREAKERS_TOPIC: &str = "breakers";

/// Topics of shared state every reader may see, as on REST (queue statistics, workers,
/// breakers); anything else reaches a non-admin only when it is about its own tasks.
pub const PUBLIC_TOPICS: [&str; 3] = [QUEUES_TOPIC, WORKERS_TOPIC, BREAKERS_TOPIC];

/// Prefix of seed 000's per-queue rooms: `celery:queue:<name>` holds the task events
/// of that queue.
pub const QUEUE_ROOM_PREFIX: &str = "celery:queue:";

/// What a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sees<'a> {
    /// Everything (admins).
    All,
    /// What this user owns, plus the [`PUBLIC_TOPICS`] (viewers).
    Own(&'a str),
}

/// Whether a reader that [`Sees`] so may see something owned by `owner`, published on
/// `topic` (`None` for a record read over REST, which is on no topic).
pub fn may_see(sees: Sees<'_>, owner: Option<&str>, topic: Option<&str>) -> bool {
    match sees {
        Sees::All => true,
        Sees::Own(user) => owner == Some(user) || topic.is_some_and(is_public),
    }
}

/// Whether every reader may see `topic`.
pub fn is_public(topic: &str) -> bool {
    PUBLIC_TOPICS.contains(&topic)
}

/// The queue a room is for, if it is a per-queue room with a name.
pub fn room_queue(room: &str) -> Option<&str> {
    room.strip_prefix(QUEUE_ROOM_PREFIX)
        .filter(|q| !q.is_empty())
}

/// Whether `room` admits an event on `topic` about a task of `queue`: its own topic,
/// or the room of its queue.
pub fn room_admits(room: &str, topic: &str, queue: Option<&str>) -> bool {
    room == topic || room_queue(room).is_some_and(|q| queue == Some(q))
}

/// What a held update is superseded by: a later event of the same kind about the same
/// subject (`<kind>/<key>`); a `task_update` never replaces a `job-started`. Events
/// about no particular subject never conflate.
pub fn conflation_key(kind: &str, key: Option<&str>) -> Option<String> {
    key.map(|k| format!("{kind}/{k}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_see_their_own_and_the_public_topics() {
        let bob = Sees::Own("bob");
        assert!(may_see(bob, Some("bob"), Some("celery:tasks")));
        assert!(!may_see(bob, Some("alice"), Some("celery:tasks")));
        assert!(may_see(bob, None, Some(QUEUES_TOPIC)));
        assert!(!may_see(bob, None, Some("admin:metrics")));
        assert!(
            !may_see(bob, None, None),
            "a record without owner is not bob's"
        );
        assert!(may_see(Sees::All, Some("alice"), None));
    }

    #[test]
    fn queue_rooms_need_a_name_and_admit_their_queue_only() {
        assert_eq!(room_queue("celery:queue:q1"), Some("q1"));
        assert_eq!(room_queue("celery:queue:"), None);
        assert!(room_admits("celery:queue:q1", "celery:tasks", Some("q1")));
        assert!(!room_admits("celery:queue:q1", "celery:tasks", Some("q2")));
        assert!(!room_admits("celery:queue:", "celery:tasks", Some("")));
        assert!(room_admits("celery:tasks", "celery:tasks", None));
    }

    #[test]
    fn conflation_is_per_kind_and_subject() {
        assert_eq!(
            conflation_key("task_update", Some("t1")).as_deref(),
            Some("task_update/t1")
        );
        assert_ne!(
            conflation_key("task_update", Some("t1")),
            conflation_key("job-started", Some("t1"))
        );
        assert_eq!(conflation_key("queue_stats", None), None);
    }
}
