//! Seed 003's view of the same state: job notifications (`job-queued` … `job-failed`),
//! `queue-status` and the admin-only `system-metrics`, built from Vigil's records.

use serde_json::{json, Map, Value};

use serde::Deserialize;

use crate::event::{Event, JOBS_TOPIC, TASK_UPDATE};
use crate::queue::QueueSummary;
use crate::task::{Task, TaskState};
use crate::worker::{Worker, WorkerStatus};

/// Seed 003's `queue-status` event.
pub const QUEUE_STATUS: &str = "queue-status";
/// Seed 003's `system-metrics` event (admins only).
pub const SYSTEM_METRICS: &str = "system-metrics";

/// The job notification a task change is: `job-queued`, `job-started`, `job-progress`,
/// `job-completed` or `job-failed`, with seed 003's `JobProgress` payload. A revoked
/// task is a failed job whose error says so.
pub fn job_event(task: &Task, ts_ms: u64) -> Event {
    let status = match task.state {
        TaskState::Pending | TaskState::Received | TaskState::Retry => "queued",
        TaskState::Started => "started",
        TaskState::Progress => "progress",
        TaskState::Success => "completed",
        TaskState::Failure | TaskState::Revoked | TaskState::Rejected => "failed",
    };
    let mut data = json!({
        "jobId": task.id,
        "status": status,
        "progress": if task.state == TaskState::Success { 100.0 } else { task.progress },
    });
    let fields = [
        ("step", task.step.clone().map(Value::from)),
        ("estimatedTime", task.eta_secs.map(Value::from)),
        ("queuePosition", task.queue_position.map(Value::from)),
        ("result", task.result.clone()),
        ("error", error_of(task).map(Value::from)),
        ("name", task.name.clone().map(Value::from)),
        ("queue", task.queue.clone().map(Value::from)),
    ];
    if let Some(obj) = data.as_object_mut() {
        obj.extend(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?))),
        );
    }
    Event::about_task(task, format!("job-{status}"), JOBS_TOPIC, ts_ms, data)
}

/// The job notification a logged `task_update` stands for, with its sequence number.
/// The log keeps one entry per task change (half the entries, appends and reads of
/// logging both); every reader of the log (the feed, the hub's follower, resume)
/// derives seed 003's notification from it with this, so they all serve the same.
pub fn derived(e: &Event) -> Option<Event> {
    if e.kind != TASK_UPDATE {
        return None;
    }
    let task = Task::deserialize(&e.data).ok()?;
    Some(Event {
        seq: e.seq,
        ..job_event(&task, e.ts)
    })
}

/// A logged event followed by the events derived from it, all with its sequence number.
pub fn with_derived(e: Event) -> impl Iterator<Item = Event> {
    let job = derived(&e);
    std::iter::once(e).chain(job)
}

fn error_of(task: &Task) -> Option<String> {
    match task.state {
        TaskState::Failure => Some(
            task.exception
                .clone()
                .unwrap_or_else(|| "the job failed".to_owned()),
        ),
        TaskState::Revoked => Some("the job was revoked".to_owned()),
        TaskState::Rejected => Some("the job was rejected by its worker".to_owned()),
        _ => None,
    }
}

/// Seed 003's `QueueStatus`: per queue `{waiting, active, avgWaitTime}` (minutes), and
/// the worker counts. `statuses` are the workers' current statuses.
pub fn queue_status(queues: &[QueueSummary], statuses: &[WorkerStatus]) -> Value {
    let mut out = Map::new();
    for q in queues {
        out.insert(
            q.name.clone(),
            json!({
                "waiting": q.depth,
                "active": q.active,
                "avgWaitTime": q.avg_wait.map_or(0.0, |s| s / 60.0),
            }),
        );
    }
    let active = statuses
        .iter()
        .filter(|s| matches!(s, WorkerStatus::Online | WorkerStatus::Busy))
        .count();
    out.insert("totalWorkers".into(), json!(statuses.len()));
    out.insert("activeWorkers".into(), json!(active));
    Value::Object(out)
}

/// Seed 003's `SystemMetrics`. `reported` is what producers last sent as
/// `system-metrics` (its own `totalMemoryUsage`, `totalCpuUsage`, `systemLoad`,
/// `averageProcessingTime` win over what Vigil derives); `workers` pairs each worker
/// with its current status.
pub fn system_metrics(
    reported: Option<&Map<String, Value>>,
    queues: &[QueueSummary],
    workers: &[(&Worker, WorkerStatus)],
    timestamp: &str,
) -> Value {
    let pick = |k: &str| reported.and_then(|r| r.get(k)).cloned();
    let statuses: Vec<WorkerStatus> = workers.iter().map(|(_, s)| *s).collect();
    let cpus: Vec<f64> = workers.iter().filter_map(|(w, _)| w.cpu).collect();
    let avg_cpu = if cpus.is_empty() {
        0.0
    } else {
        cpus.iter().sum::<f64>() / cpus.len() as f64
    };
    let (succeeded, failed) = queues
        .iter()
        .fold((0, 0), |(s, f), q| (s + q.succeeded, f + q.failed));
    let finished = succeeded + failed;
    let per_worker: Vec<Value> = workers
        .iter()
        .map(|(w, status)| {
            json!({
                "id": w.id, "status": status, "cpu": w.cpu, "memory": w.memory,
                "active": w.active, "processed": w.processed, "failed": w.failed,
            })
        })
        .collect();
    json!({
        "timestamp": timestamp,
        "workers": per_worker,
        "queues": queue_status(queues, &statuses),
        "system": {
            "totalMemoryUsage": pick("totalMemoryUsage").unwrap_or(json!(0)),
            "totalCpuUsage": pick("totalCpuUsage").unwrap_or(json!(avg_cpu)),
            "systemLoad": pick("systemLoad").unwrap_or(json!(avg_cpu / 100.0)),
        },
        "performance": {
            "totalJobsProcessed": finished,
            "averageProcessingTime": pick("averageProcessingTime").unwrap_or(Value::Null),
            "errorRate": if finished == 0 { 0.0 } else { failed as f64 / finished as f64 },
            "throughputPerHour": queues.iter().map(|q| q.throughput).sum::<f64>() * 60.0,
        },
        "reported": reported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: TaskState) -> Task {
        let mut t = Task::new("j1");
        t.state = state;
        t.owner = Some("alice".into());
        t.progress = 40.0;
        t
    }

    #[test]
    fn each_state_is_its_job_event() {
        for (state, kind) in [
            (TaskState::Received, "job-queued"),
            (TaskState::Started, "job-started"),
            (TaskState::Progress, "job-progress"),
            (TaskState::Success, "job-completed"),
            (TaskState::Failure, "job-failed"),
            (TaskState::Revoked, "job-failed"),
        ] {
            let e = job_event(&task(state), 1);
            assert_eq!(e.kind, kind);
            assert_eq!(e.topic, JOBS_TOPIC);
            assert_eq!(e.owner.as_deref(), Some("alice"), "owners still filter");
            assert_eq!(e.key.as_deref(), Some("j1"));
            assert_eq!(e.data["jobId"], "j1");
        }
        let done = job_event(&task(TaskState::Success), 1);
        assert_eq!(done.data["progress"], 100.0);
        let mut failed = task(TaskState::Failure);
        failed.exception = Some("ValueError('x')".into());
        assert_eq!(job_event(&failed, 1).data["error"], "ValueError('x')");
        assert!(job_event(&task(TaskState::Started), 1)
            .data
            .get("error")
            .is_none());
    }

    #[test]
    fn a_logged_task_update_derives_the_job_event_of_its_task() {
        let mut t = task(TaskState::Failure);
        t.exception = Some("ValueError('x')".into());
        t.step = Some("embedding".into());
        t.queue = Some("premium".into());
        t.name = Some("app.tasks.embed".into());
        t.eta_secs = Some(12.0);
        t.queue_position = Some(3);
        t.result = Some(json!({"rows": 2}));
        t.state_at = 1_700_000_000.5;
        let mut logged = Event::task_update(&t, 7);
        logged.seq = 41;
        let derived = derived(&logged).expect("a task_update derives a job event");
        assert_eq!(
            derived,
            Event {
                seq: 41,
                ..job_event(&t, 7)
            }
        );
        let both: Vec<Event> = with_derived(logged.clone()).collect();
        assert_eq!(both, vec![logged, derived]);
        let other = Event::new("queue_stats", "celery:queues", 7, json!({}));
        assert_eq!(
            with_derived(other).count(),
            1,
            "only task updates derive one"
        );
    }

    #[test]
    fn queue_status_is_seed_003s_shape() {
        let q = QueueSummary {
            name: "premium".into(),
            depth: 4,
            active: 2,
            avg_wait: Some(90.0),
            ..QueueSummary::default()
        };
        let v = queue_status(&[q], &[WorkerStatus::Busy, WorkerStatus::Offline]);
        assert_eq!(
            v,
            json!({
                "premium": { "waiting": 4, "active": 2, "avgWaitTime": 1.5 },
                "totalWorkers": 2, "activeWorkers": 1,
            })
        );
    }

    #[test]
    fn system_metrics_derive_what_was_not_reported() {
        let q = QueueSummary {
            name: "q".into(),
            succeeded: 3,
            failed: 1,
            throughput: 2.0,
            ..QueueSummary::default()
        };
        let mut reported = Map::new();
        reported.insert("totalMemoryUsage".into(), json!(2048));
        let v = system_metrics(Some(&reported), &[q], &[], "2026-11-22T00:00:00Z");
        assert_eq!(v["system"]["totalMemoryUsage"], 2048);
        assert_eq!(v["performance"]["totalJobsProcessed"], 4);
        assert_eq!(v["performance"]["errorRate"], 0.25);
        assert_eq!(v["performance"]["throughputPerHour"], 120.0);
        assert_eq!(v["queues"]["totalWorkers"], 0);
    }
}
