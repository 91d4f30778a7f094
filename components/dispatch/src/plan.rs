//! The batch decision: for every subscriber, which events it gets and what to do with
//! each; every distinct (event, encoding, gzip) is encoded once into a shared frame.

use std::collections::HashMap;

use crate::{encode, filter, rate, Decision, Delivery, Encoding, Event, Plan, Subscriber};

/// Plans the delivery of `events` to `subscribers` at `now_ms`.
pub fn plan(now_ms: u64, events: &[Event], subscribers: &[Subscriber]) -> Plan {
    let mut frames = Vec::new();
    let mut frame_of: HashMap<(u32, u8, bool), u32> = HashMap::new();
    let mut deliveries = Vec::new();
    let mut rates = Vec::with_capacity(subscribers.len());
    for (si, sub) in subscribers.iter().enumerate() {
        let mut bucket = rate::refill(sub.rate, sub.rate_per_sec, now_ms);
        let mut held: Vec<String> = sub.held_keys.clone();
        let mut held_count = sub.held_count;
        for (ei, ev) in events.iter().enumerate() {
            if !filter::matches(&sub.filter, ev) {
                continue;
            }
            let decision = decide(sub, ev, &mut bucket, &mut held, &mut held_count);
            let frame = if decision == Decision::Send {
                *frame_of
                    .entry((ei as u32, encoding_key(sub.encoding), sub.gzip))
                    .or_insert_with(|| {
                        frames.push(encode::event(ev, sub.encoding, sub.gzip));
                        frames.len() as u32 - 1
                    })
            } else {
                0
            };
            deliveries.push(Delivery {
                subscriber: si as u32,
                event: ei as u32,
                decision,
                frame,
            });
        }
        rates.push(bucket);
    }
    Plan {
        frames,
        deliveries,
        rates,
    }
}

/// What a held update is superseded by: a later event of the same kind about the same
/// subject (`<kind>/<key>`); a `task_update` never replaces a `job-started`.
pub fn conflation_key(ev: &Event) -> Option<String> {
    vigil_rules::conflation_key(&ev.kind, ev.key.as_deref())
}

/// A small number per encoding, to share frames by (event, encoding, gzip).
fn encoding_key(e: Encoding) -> u8 {
    match e {
        Encoding::Json => 0,
        Encoding::Msgpack => 1,
        Encoding::Socketio => 2,
    }
}

/// Send while the bucket has tokens (never while degraded). Past that, hold for the
/// next batch; an update whose key is already held replaces it (conflate); a full hold
/// means the subscriber cannot keep up (drop).
fn decide(
    sub: &Subscriber,
    ev: &Event,
    bucket: &mut crate::RateState,
    held: &mut Vec<String>,
    held_count: &mut u32,
) -> Decision {
    if !sub.degraded && (sub.rate_per_sec == 0 || rate::take(bucket)) {
        return Decision::Send;
    }
    let key = conflation_key(ev);
    if let Some(key) = &key {
        if held.contains(key) {
            return Decision::Conflate;
        }
    }
    if *held_count >= sub.max_held {
        return Decision::Drop;
    }
    *held_count += 1;
    if let Some(key) = key {
        held.push(key);
    }
    Decision::Hold
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Filter, RateState};

    pub fn event(seq: u64, key: &str, queue: Option<&str>) -> Event {
        let json = serde_json::json!({
            "seq": seq, "type": "task_update", "topic": "celery:tasks",
            "data": { "id": key, "queue": queue },
        });
        Event {
            seq,
            kind: "task_update".into(),
            topic: "celery:tasks".into(),
            key: Some(key.into()),
            owner: Some("alice".into()),
            queue: queue.map(Into::into),
            state: Some("STARTED".into()),
            json: json.to_string(),
        }
    }

    pub fn filter() -> Filter {
        Filter {
            topics: vec![],
            queues: vec![],
            states: vec![],
            keys: vec![],
            owner: None,
        }
    }

    fn subscriber(rate_per_sec: u32, encoding: Encoding) -> Subscriber {
        Subscriber {
            filter: filter(),
            encoding,
            gzip: false,
            rate_per_sec,
            rate: rate::full(rate_per_sec, 0),
            held_keys: vec![],
            held_count: 0,
            max_held: 3,
            degraded: false,
        }
    }

    fn decisions(p: &Plan, sub: u32) -> Vec<Decision> {
        p.deliveries
            .iter()
            .filter(|d| d.subscriber == sub)
            .map(|d| d.decision)
            .collect()
    }

    #[test]
    fn one_frame_per_event_and_encoding_whoever_shares_it() {
        let evs = [event(1, "a", None), event(2, "b", None)];
        let subs = [
            subscriber(0, Encoding::Json),
            subscriber(0, Encoding::Json),
            subscriber(0, Encoding::Msgpack),
        ];
        let p = plan(0, &evs, &subs);
        assert_eq!(p.frames.len(), 4, "2 events × 2 encodings");
        assert_eq!(p.deliveries.len(), 6);
        assert_eq!(
            p.deliveries[0].frame, p.deliveries[2].frame,
            "both JSON subscribers share"
        );
        assert!(p.frames[p.deliveries[4].frame as usize].binary);
    }

    #[test]
    fn filtered_out_events_get_no_delivery() {
        let evs = [event(1, "a", Some("q1")), event(2, "b", Some("q2"))];
        let mut sub = subscriber(0, Encoding::Json);
        sub.filter.queues = vec!["q2".into()];
        let p = plan(0, &evs, &[sub]);
        assert_eq!(p.deliveries.len(), 1);
        assert_eq!(p.deliveries[0].event, 1);
    }

    #[test]
    fn over_the_rate_holds_then_conflates_then_drops() {
        let evs: Vec<Event> = ["a", "b", "c", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, k)| event(i as u64 + 1, k, None))
            .collect();
        let mut sub = subscriber(2, Encoding::Json);
        sub.max_held = 2;
        let p = plan(0, &evs, &[sub]);
        use Decision::*;
        assert_eq!(decisions(&p, 0), [Send, Send, Hold, Conflate, Hold, Drop]);
        assert_eq!(p.rates[0].tokens_milli, 0);
    }

    #[test]
    fn held_keys_from_earlier_batches_conflate() {
        let mut sub = subscriber(1, Encoding::Json);
        sub.rate = RateState {
            tokens_milli: 0,
            last_refill_ms: 0,
        };
        sub.held_keys = vec!["task_update/a".into()];
        sub.held_count = 1;
        let p = plan(0, &[event(9, "a", None)], &[sub]);
        assert_eq!(decisions(&p, 0), [Decision::Conflate]);
    }

    #[test]
    fn degraded_subscribers_get_latest_state_only() {
        let evs: Vec<Event> = ["a", "a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, k)| event(i as u64 + 1, k, None))
            .collect();
        let mut sub = subscriber(0, Encoding::Json);
        sub.degraded = true;
        let p = plan(0, &evs, &[sub]);
        use Decision::*;
        assert_eq!(decisions(&p, 0), [Hold, Conflate, Hold, Hold, Drop]);
        assert!(
            p.frames.is_empty(),
            "nothing is encoded for a degraded subscriber"
        );
    }

    #[test]
    fn only_the_same_kind_about_the_same_subject_conflates() {
        let mut job = event(2, "a", None);
        job.kind = "job-started".into();
        let evs = [event(1, "a", None), job, event(3, "a", None)];
        let mut sub = subscriber(1, Encoding::Json);
        sub.rate = RateState {
            tokens_milli: 0,
            last_refill_ms: 0,
        };
        let p = plan(0, &evs, &[sub]);
        use Decision::*;
        assert_eq!(decisions(&p, 0), [Hold, Hold, Conflate]);
    }

    #[test]
    fn tokens_refill_with_time() {
        let mut sub = subscriber(10, Encoding::Json);
        sub.rate = RateState {
            tokens_milli: 0,
            last_refill_ms: 0,
        };
        let p = plan(100, &[event(1, "a", None)], &[sub]);
        assert_eq!(decisions(&p, 0), [Decision::Send]);
    }
}
