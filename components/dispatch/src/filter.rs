//! Whether a subscriber wants an event. The rules shared with the host and the api
//! component (rooms, who may see what) are `vigil-rules`.

use vigil_rules::{may_see, room_admits, Sees};

use crate::{Event, Filter};

/// An empty list allows anything; otherwise the value must be in it.
fn allows(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
}

/// `true` when every part of `f` admits `ev`. With an owner set (a non-admin), only
/// what that user may see: its own tasks' events and the public topics.
pub fn matches(f: &Filter, ev: &Event) -> bool {
    let (topic, queue) = (ev.topic.as_str(), ev.queue.as_deref());
    let sees = f.owner.as_deref().map_or(Sees::All, Sees::Own);
    (f.topics.is_empty() || f.topics.iter().any(|room| room_admits(room, topic, queue)))
        && allows(&f.queues, queue)
        && allows(&f.states, ev.state.as_deref())
        && allows(&f.keys, ev.key.as_deref())
        && may_see(sees, ev.owner.as_deref(), Some(topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{event, filter};

    #[test]
    fn owners_see_their_own_and_the_public_topics_only() {
        let mut f = filter();
        f.owner = Some("bob".into());
        let mut queue = event(1, "q", None);
        queue.owner = None;
        queue.topic = "celery:queues".into();
        assert!(matches(&f, &queue), "queue statistics are for every reader");
        let mut metrics = queue.clone();
        metrics.topic = "admin:metrics".into();
        assert!(!matches(&f, &metrics), "admin metrics are not");
        assert!(
            !matches(&f, &event(2, "t", None)),
            "alice's task is not bob's"
        );
    }

    #[test]
    fn empty_filter_admits_everything() {
        assert!(matches(&filter(), &event(1, "t1", Some("q1"))));
    }

    #[test]
    fn each_part_narrows() {
        let ev = event(1, "t1", Some("q1"));
        let mut f = filter();
        f.queues = vec!["q2".into()];
        assert!(!matches(&f, &ev));
        f.queues.push("q1".into());
        assert!(matches(&f, &ev));
        f.owner = Some("bob".into());
        assert!(!matches(&f, &ev), "alice's task is not bob's");
        f.owner = Some("alice".into());
        assert!(matches(&f, &ev));
        f.topics = vec!["celery:queues".into()];
        assert!(!matches(&f, &ev));
    }

    #[test]
    fn a_queue_room_admits_the_events_of_that_queue_only() {
        let mut f = filter();
        f.topics = vec!["celery:queue:embedding".into()];
        assert!(matches(&f, &event(1, "t1", Some("embedding"))));
        assert!(!matches(&f, &event(2, "t2", Some("celery"))));
        assert!(!matches(&f, &event(3, "t3", None)), "no queue, no match");
        f.topics = vec!["celery:queue:".into()];
        assert!(!matches(&f, &event(4, "t4", Some("embedding"))));
    }

    #[test]
    fn rooms_are_alternatives() {
        let mut f = filter();
        f.topics = vec!["celery:queues".into(), "celery:queue:q1".into()];
        assert!(matches(&f, &event(1, "t1", Some("q1"))), "by queue room");
        f.topics = vec!["celery:queue:q9".into(), "celery:tasks".into()];
        assert!(matches(&f, &event(2, "t2", Some("q1"))), "by topic");
        f.owner = Some("bob".into());
        assert!(
            !matches(&f, &event(3, "t3", Some("q1"))),
            "owner still applies"
        );
    }

    #[test]
    fn a_list_filter_refuses_events_without_the_field() {
        let ev = event(1, "t1", None);
        let mut f = filter();
        f.queues = vec!["q1".into()];
        assert!(!matches(&f, &ev));
    }
}
