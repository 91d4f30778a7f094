//! Whether a subscriber wants an event.

use crate::{Event, Filter};

/// An empty list allows anything; otherwise the value must be in it.
fn allows(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
}

/// `true` when every part of `f` admits `ev`.
pub fn matches(f: &Filter, ev: &Event) -> bool {
    allows(&f.topics, Some(&ev.topic))
        && allows(&f.queues, ev.queue.as_deref())
        && allows(&f.states, ev.state.as_deref())
        && allows(&f.keys, ev.key.as_deref())
        && f.owner
            .as_ref()
            .is_none_or(|o| ev.owner.as_ref() == Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{event, filter};

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
    fn a_list_filter_refuses_events_without_the_field() {
        let ev = event(1, "t1", None);
        let mut f = filter();
        f.queues = vec!["q1".into()];
        assert!(!matches(&f, &ev));
    }
}
