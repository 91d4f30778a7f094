//! Seed 000's Socket.IO rooms, and the hub filter a socket's rooms make.
//!
//! Rooms are not Socket.IO broadcast rooms: nothing is broadcast to them. They only shape the
//! socket's hub filter, so every event still goes through the dispatch component.

use std::collections::BTreeSet;

use vigil_core::event;

use crate::dispatch::Filter;

/// Every task event (`task_update`).
pub const TASKS: &str = event::TASKS_TOPIC;
/// Batch job progress (`batch_progress`).
pub const BATCH_JOBS: &str = event::BATCH_JOBS_TOPIC;
/// Queue statistics (`queue_stats`).
pub const QUEUES: &str = event::QUEUES_TOPIC;
/// Task events of one queue: `celery:queue:<name>`.
pub const QUEUE_PREFIX: &str = vigil_rules::QUEUE_ROOM_PREFIX;
/// What a socket of the default namespace receives before it joins any room:
/// everything but admin metrics (which need `subscribe-admin`, seed 003) and producer
/// commands.
pub const EVERYTHING: [&str; 6] = [
    event::TASKS_TOPIC,
    event::BATCH_JOBS_TOPIC,
    event::QUEUES_TOPIC,
    event::JOBS_TOPIC,
    event::WORKERS_TOPIC,
    event::BREAKERS_TOPIC,
];
/// Most rooms one socket may be in: the component checks each room for each event.
pub const MAX_ROOMS: usize = 64;
/// Longest room name accepted; queue names are short identifiers.
pub const MAX_ROOM_LEN: usize = 200;

/// Why a room was refused; the text goes back to the client in the ack.
pub type RoomError = String;

/// `Ok` for a room Vigil publishes to.
pub fn validate(room: &str) -> Result<(), RoomError> {
    if room.len() > MAX_ROOM_LEN {
        return Err(format!("room names are at most {MAX_ROOM_LEN} bytes"));
    }
    if matches!(room, TASKS | BATCH_JOBS | QUEUES) || vigil_rules::room_queue(room).is_some() {
        Ok(())
    } else {
        Err(format!(
            "unknown room `{room}`: use {TASKS}, {BATCH_JOBS}, {QUEUES} or {QUEUE_PREFIX}<name>"
        ))
    }
}

/// The rooms of one socket.
#[derive(Debug, Clone)]
pub struct Rooms {
    joined: BTreeSet<String>,
    /// With no room joined: everything the user may see (default namespace, seed 003,
    /// whose client never subscribes), or nothing (admin namespace, seed 000).
    all_when_empty: bool,
    /// Non-admins only ever see their own tasks.
    owner: Option<String>,
    /// Receives admin metrics (`subscribe-admin`; admins only).
    admin_events: bool,
}

impl Rooms {
    /// No room joined yet.
    pub fn new(all_when_empty: bool, owner: Option<String>) -> Self {
        Self {
            joined: BTreeSet::new(),
            all_when_empty,
            owner,
            admin_events: false,
        }
    }

    /// Sets whose tasks the socket sees (`None`: everyone's, for admins), e.g. after a
    /// refresh changed the role. A non-admin loses the admin metrics.
    pub fn set_owner(&mut self, owner: Option<String>) {
        if owner.is_some() {
            self.admin_events = false;
        }
        self.owner = owner;
    }

    /// Starts or stops admin metrics; the caller has checked the role.
    pub fn set_admin_events(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.admin_events, on) != on
    }

    /// Joins `room`; `Ok(false)` if already in it.
    pub fn join(&mut self, room: &str) -> Result<bool, RoomError> {
        validate(room)?;
        if self.joined.contains(room) {
            return Ok(false);
        }
        if self.joined.len() >= MAX_ROOMS {
            return Err(format!("at most {MAX_ROOMS} rooms per connection"));
        }
        Ok(self.joined.insert(room.to_owned()))
    }

    /// Leaves `room`; `false` if not in it.
    pub fn leave(&mut self, room: &str) -> bool {
        self.joined.remove(room)
    }

    /// The hub filter for these rooms; `None` receives nothing.
    pub fn filter(&self) -> Option<Filter> {
        let mut topics: Vec<String> = if self.joined.is_empty() && self.all_when_empty {
            EVERYTHING.iter().map(|t| (*t).to_owned()).collect()
        } else {
            self.joined.iter().cloned().collect()
        };
        if self.admin_events {
            topics.push(event::METRICS_TOPIC.to_owned());
        }
        if topics.is_empty() {
            return None;
        }
        Some(Filter {
            topics,
            queues: Vec::new(),
            states: Vec::new(),
            keys: Vec::new(),
            owner: self.owner.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_rooms_and_queue_rooms_only() {
        for ok in [TASKS, BATCH_JOBS, QUEUES, "celery:queue:embedding"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in ["", "celery:queue:", "lobby", "celery:tasks:x"] {
            assert!(validate(bad).unwrap_err().contains("unknown room"), "{bad}");
        }
        assert!(validate(&format!("{QUEUE_PREFIX}{}", "q".repeat(300))).is_err());
    }

    #[test]
    fn admin_namespace_receives_nothing_until_it_joins() {
        let mut r = Rooms::new(false, None);
        assert!(r.filter().is_none());
        assert_eq!(r.join(TASKS), Ok(true));
        assert_eq!(r.join(TASKS), Ok(false), "joining twice changes nothing");
        assert_eq!(r.filter().unwrap().topics, [TASKS]);
        assert!(r.leave(TASKS));
        assert!(!r.leave(TASKS));
        assert!(r.filter().is_none());
    }

    #[test]
    fn default_namespace_sees_all_its_own_until_it_narrows() {
        let mut r = Rooms::new(true, Some("alice".into()));
        let f = r.filter().unwrap();
        assert_eq!(f.topics, EVERYTHING);
        assert!(!f.topics.iter().any(|t| t == event::METRICS_TOPIC));
        assert_eq!(f.owner.as_deref(), Some("alice"));
        r.join("celery:queue:q1").unwrap();
        assert_eq!(r.filter().unwrap().topics, ["celery:queue:q1"]);
    }

    #[test]
    fn admin_events_add_the_metrics_topic_until_the_role_is_lost() {
        let mut r = Rooms::new(false, None);
        assert!(r.set_admin_events(true));
        assert!(!r.set_admin_events(true), "already on");
        assert_eq!(r.filter().unwrap().topics, [event::METRICS_TOPIC]);
        r.set_owner(Some("bob".into()));
        assert!(r.filter().is_none(), "a viewer gets no admin metrics");
    }

    #[test]
    fn rooms_per_socket_are_bounded() {
        let mut r = Rooms::new(false, None);
        for i in 0..MAX_ROOMS {
            r.join(&format!("{QUEUE_PREFIX}q{i}")).unwrap();
        }
        assert!(r.join("celery:queue:one-more").is_err());
    }
}
