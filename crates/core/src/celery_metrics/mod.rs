//! The Celery domain in Prometheus, as Flower exports it, built from the events Vigil
//! publishes (so a host counts what it relays). Flower's metric names and labels are
//! kept — `flower_events_total{task,type,worker}`, `flower_task_runtime_seconds`,
//! `flower_task_prefetch_time_seconds`, `flower_worker_prefetched_tasks`,
//! `flower_worker_online`, `flower_worker_number_of_currently_executing_tasks` — so
//! dashboards built for Flower work unchanged; Vigil adds `vigil_queue_depth{queue}`.
//! Flower's prefetch time is a gauge of the last task; here it is a histogram.

use std::collections::BTreeMap;
use std::fmt::Write;

use text::{gauge, header, histogram, line, Histogram};

use crate::event::Event;

mod text;

/// Histogram bounds, seconds: Prometheus' defaults, which Flower uses for task runtimes.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Label sets kept per metric: task names × workers × types must not grow without
/// bound when a producer invents names; past it new series are not recorded (counted in
/// `vigil_celery_series_dropped_total`).
pub const MAX_SERIES: usize = 5000;

/// A series' labels, in exposition order.
pub type Labels = Vec<(&'static str, String)>;

/// The metrics, fed every published event.
#[derive(Debug, Default)]
pub struct CeleryMetrics {
    events: BTreeMap<Labels, u64>,
    runtime: BTreeMap<Labels, Histogram>,
    prefetch: BTreeMap<Labels, Histogram>,
    prefetched: BTreeMap<Labels, u64>,
    online: BTreeMap<String, bool>,
    executing: BTreeMap<String, u64>,
    depth: BTreeMap<String, u64>,
    dropped: u64,
}

fn str_of<'a>(data: &'a serde_json::Value, key: &str) -> &'a str {
    data.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn bounded<'a, V: Default>(
    map: &'a mut BTreeMap<Labels, V>,
    key: Labels,
    dropped: &mut u64,
) -> Option<&'a mut V> {
    if !map.contains_key(&key) && map.len() >= MAX_SERIES {
        *dropped += 1;
        return None;
    }
    Some(map.entry(key).or_default())
}

impl CeleryMetrics {
    /// Takes one published event into account.
    pub fn observe(&mut self, e: &Event) {
        let d = &e.data;
        match e.kind.as_str() {
            crate::event::TASK_UPDATE => self.task(d),
            "worker_registered"
            | "worker_deregistered"
            | "worker_status_change"
            | "worker_status_update" => {
                let id = str_of(d, "id").to_owned();
                self.online
                    .insert(id.clone(), str_of(d, "status") != "offline");
                let active = d.get("active").and_then(|v| v.as_u64()).unwrap_or(0);
                self.executing.insert(id, active);
            }
            "queue_stats" => {
                if let Some(depth) = d.get("depth").and_then(|v| v.as_u64()) {
                    self.depth.insert(str_of(d, "name").to_owned(), depth);
                }
            }
            _ => {}
        }
    }

    fn task(&mut self, d: &serde_json::Value) {
        let kind = str_of(d, "last_event");
        if kind.is_empty() {
            return;
        }
        let host = if kind == "task-sent" {
            str_of(d, "client")
        } else {
            str_of(d, "worker")
        };
        let tw: Labels = vec![
            ("task", str_of(d, "name").to_owned()),
            ("worker", host.to_owned()),
        ];
        let mut with_type = tw.clone();
        with_type.insert(1, ("type", kind.to_owned()));
        if let Some(n) = bounded(&mut self.events, with_type, &mut self.dropped) {
            *n += 1;
        }
        let num = |k: &str| d.get(k).and_then(|v| v.as_f64());
        match kind {
            "task-received" => {
                if let Some(n) = bounded(&mut self.prefetched, tw, &mut self.dropped) {
                    *n += 1;
                }
            }
            "task-started" => {
                if let Some(n) = self.prefetched.get_mut(&tw) {
                    *n = n.saturating_sub(1);
                }
                if let (Some(r), Some(s)) = (num("received_at"), num("started_at")) {
                    if let Some(h) = bounded(&mut self.prefetch, tw, &mut self.dropped) {
                        h.observe((s - r).max(0.0));
                    }
                }
            }
            "task-succeeded" => {
                if let (Some(rt), Some(h)) = (
                    num("runtime"),
                    bounded(&mut self.runtime, tw, &mut self.dropped),
                ) {
                    h.observe(rt);
                }
            }
            _ => {}
        }
    }

    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "flower_events_total",
            "counter",
            "Celery events Vigil relayed, by task name, type and worker.",
        );
        for (labels, n) in &self.events {
            line(out, "flower_events_total", labels, &n.to_string());
        }
        histogram(
            out,
            "flower_task_runtime_seconds",
            "Task run time (task-succeeded).",
            &self.runtime,
        );
        histogram(
            out,
            "flower_task_prefetch_time_seconds",
            "Time a task waited at the worker between task-received and task-started.",
            &self.prefetch,
        );
        header(
            out,
            "flower_worker_prefetched_tasks",
            "gauge",
            "Tasks received by a worker and not yet started, by task name.",
        );
        for (labels, n) in &self.prefetched {
            line(
                out,
                "flower_worker_prefetched_tasks",
                labels,
                &n.to_string(),
            );
        }
        gauge(
            out,
            "flower_worker_online",
            "Worker online (1) or offline (0).",
            "worker",
            self.online.iter().map(|(k, v)| (k, u64::from(*v))),
        );
        gauge(
            out,
            "flower_worker_number_of_currently_executing_tasks",
            "Tasks running on a worker, as its heartbeats report.",
            "worker",
            self.executing.iter().map(|(k, v)| (k, *v)),
        );
        gauge(
            out,
            "vigil_queue_depth",
            "Messages waiting in the broker, as the bridge reports them.",
            "queue",
            self.depth.iter().map(|(k, v)| (k, *v)),
        );
        header(
            out,
            "vigil_celery_series_dropped_total",
            "counter",
            "Observations not recorded because a metric reached its series limit.",
        );
        let _ = writeln!(out, "vigil_celery_series_dropped_total {}", self.dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task_update(data: serde_json::Value) -> Event {
        Event::new(
            crate::event::TASK_UPDATE,
            crate::event::TASKS_TOPIC,
            0,
            data,
        )
    }

    #[test]
    fn counts_events_and_observes_runtimes_and_prefetch_like_flower() {
        let mut m = CeleryMetrics::default();
        let base = json!({"name": "app.add", "worker": "w1", "client": "gen@c"});
        let with = |extra: serde_json::Value| {
            let mut d = base.clone();
            d.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            task_update(d)
        };
        m.observe(&with(json!({"last_event": "task-sent"})));
        m.observe(&with(
            json!({"last_event": "task-received", "received_at": 10.0}),
        ));
        m.observe(&with(
            json!({"last_event": "task-started", "received_at": 10.0, "started_at": 10.3}),
        ));
        m.observe(&with(
            json!({"last_event": "task-succeeded", "runtime": 0.02}),
        ));
        m.observe(&Event::new(
            "worker_status_update",
            "workers",
            0,
            json!({"id": "w1", "status": "busy", "active": 2}),
        ));
        m.observe(&Event::new(
            "queue_stats",
            "celery:queues",
            0,
            json!({"name": "celery", "depth": 7}),
        ));
        let mut out = String::new();
        m.render(&mut out);
        for want in [
            r#"flower_events_total{task="app.add",type="task-sent",worker="gen@c"} 1"#,
            r#"flower_events_total{task="app.add",type="task-succeeded",worker="w1"} 1"#,
            r#"flower_task_runtime_seconds_bucket{task="app.add",worker="w1",le="0.025"} 1"#,
            r#"flower_task_runtime_seconds_bucket{task="app.add",worker="w1",le="0.01"} 0"#,
            r#"flower_task_prefetch_time_seconds_bucket{task="app.add",worker="w1",le="0.5"} 1"#,
            r#"flower_worker_prefetched_tasks{task="app.add",worker="w1"} 0"#,
            r#"flower_worker_online{worker="w1"} 1"#,
            r#"flower_worker_number_of_currently_executing_tasks{worker="w1"} 2"#,
            r#"vigil_queue_depth{queue="celery"} 7"#,
        ] {
            assert!(out.contains(want), "missing {want} in\n{out}");
        }
    }

    #[test]
    fn series_are_bounded_and_labels_escaped() {
        let mut m = CeleryMetrics::default();
        for i in 0..=MAX_SERIES {
            m.observe(&task_update(
                json!({"last_event": "task-custom", "name": format!("t{i}")}),
            ));
        }
        assert_eq!((m.events.len(), m.dropped), (MAX_SERIES, 1));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("vigil_celery_series_dropped_total 1"));
        let mut fresh = CeleryMetrics::default();
        fresh.observe(&task_update(
            json!({"last_event": "task-x", "name": "a\"b"}),
        ));
        let mut out = String::new();
        fresh.render(&mut out);
        assert!(out.contains(r#"task="a\"b""#), "{out}");
    }
}
