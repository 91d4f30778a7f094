//! The simulated deployment behind `vigil demo`: workers, queues, tasks that start,
//! report progress, retry, fail or succeed, and one long batch job at a time. Pure: it
//! turns the passing of time into Celery-format events and does no I/O.

use serde_json::{json, Value};

/// Queues tasks go to (seed 003's priority classes, plus Celery's default).
const QUEUES: [&str; 4] = ["default", "premium", "normal", "large"];
/// Task names, with the queue each is sent to and its typical run time in seconds.
const KINDS: [(&str, &str, f64); 6] = [
    ("reports.build", "default", 3.0),
    ("emails.send", "premium", 0.8),
    ("images.resize", "normal", 1.5),
    ("billing.charge", "premium", 1.2),
    ("exports.csv", "large", 5.0),
    ("search.reindex", "normal", 4.0),
];
const WORKERS: [&str; 4] = [
    "celery@alpha",
    "celery@bravo",
    "celery@charlie",
    "celery@delta",
];
/// Users tasks belong to, so viewer tokens for them see their own tasks.
const OWNERS: [&str; 3] = ["alice", "bob", "carol"];
/// The worker that drops out now and then, so the workers panel shows health changing.
const FLAKY: usize = 3;
/// Seconds between heartbeats, queue statistics and system metrics.
const REPORT_EVERY: f64 = 2.0;
/// Batches of each simulated batch job, and seconds per batch.
const BATCHES: u64 = 30;
const BATCH_SECS: f64 = 0.8;
/// Outcome odds when a task finishes: failure, retry (the rest succeed).
const P_FAIL: f64 = 0.08;
const P_RETRY: f64 = 0.08;

/// What one step of the simulation produced.
#[derive(Debug, Default)]
pub struct Step {
    /// `task-received` of new tasks: sent one by one, each after asking its queue's
    /// breaker (as the bridge's publish guard does), so an open queue stops only its own.
    pub submissions: Vec<(String, Value)>,
    /// Everything else, sent as one batch.
    pub updates: Vec<Value>,
}

#[derive(Debug)]
struct Task {
    id: String,
    name: &'static str,
    queue: &'static str,
    owner: &'static str,
    /// When it leaves the queue (waiting) or finishes (running).
    due: f64,
    started: Option<f64>,
    run_secs: f64,
    worker: usize,
    retries: u64,
    last_progress: f64,
}

#[derive(Debug)]
struct Batch {
    id: String,
    /// Set by the step after its submission, once the submission was accepted.
    started: Option<f64>,
    done: u64,
}

#[derive(Debug)]
struct Worker {
    online: bool,
    processed: u64,
    failed: u64,
    /// When the flaky worker next changes between online and offline.
    toggle_at: f64,
}

/// The simulated deployment.
pub struct Sim {
    rng: Rng,
    /// New tasks per second, on average.
    rate: f64,
    tasks: Vec<Task>,
    workers: Vec<Worker>,
    batch: Option<Batch>,
    next_batch_at: f64,
    next_report: f64,
    backlog: [f64; 4],
    sent: u64,
}

impl Sim {
    /// A simulation submitting `rate` tasks per second, seeded for reproducible runs.
    pub fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: Rng(seed | 1),
            rate: rate.max(0.1),
            tasks: Vec::new(),
            workers: Vec::new(),
            batch: None,
            next_batch_at: 0.0,
            next_report: 0.0,
            backlog: [5.0; 4],
            sent: 0,
        }
    }

    /// Brings the workers online.
    pub fn start(&mut self, now: f64) -> Vec<Value> {
        self.workers = (0..WORKERS.len())
            .map(|i| Worker {
                online: true,
                processed: 0,
                failed: 0,
                toggle_at: if i == FLAKY {
                    now + 90.0
                } else {
                    f64::INFINITY
                },
            })
            .collect();
        self.next_batch_at = now + 1.0;
        (0..WORKERS.len())
            .map(|i| json!({"type": "worker-online", "hostname": WORKERS[i], "timestamp": now, "freq": REPORT_EVERY}))
            .collect()
    }

    /// A submission was refused (its queue's breaker is open): the task never existed.
    pub fn refused(&mut self, id: &str) {
        self.tasks.retain(|t| t.id != id);
        if self.batch.as_ref().is_some_and(|b| b.id == id) {
            self.batch = None;
        }
    }

    /// Advances to `now`, `dt` seconds after the previous step.
    pub fn step(&mut self, now: f64, dt: f64) -> Step {
        let mut out = Step::default();
        self.submit(now, dt, &mut out);
        self.advance_tasks(now, &mut out);
        self.advance_batch(now, &mut out);
        self.flaky_worker(now, &mut out);
        if now >= self.next_report {
            self.next_report = now + REPORT_EVERY;
            self.report(now, &mut out);
        }
        out
    }

    fn submit(&mut self, now: f64, dt: f64, out: &mut Step) {
        // Poisson-ish arrivals with a slow swell, so the charts have something to show.
        let swell = 1.0 + 0.6 * (now / 40.0).sin();
        let mut expected = self.rate * dt * swell;
        while expected > 0.0 {
            if self.rng.f64() < expected.min(1.0) {
                let (name, queue, secs) = KINDS[self.rng.below(KINDS.len())];
                let task = Task {
                    id: self.rng.uuid(),
                    name,
                    queue,
                    owner: OWNERS[self.rng.below(OWNERS.len())],
                    due: now + 0.3 + self.rng.f64() * 2.5,
                    started: None,
                    run_secs: secs * (0.5 + self.rng.f64()),
                    worker: 0,
                    retries: 0,
                    last_progress: now,
                };
                out.submissions
                    .push((task.id.clone(), received(&task, now)));
                self.tasks.push(task);
            }
            expected -= 1.0;
        }
    }

    fn advance_tasks(&mut self, now: f64, out: &mut Step) {
        let mut i = 0;
        while i < self.tasks.len() {
            if self.tasks[i].due > now {
                self.progress(i, now, out);
                i += 1;
                continue;
            }
            if self.tasks[i].started.is_none() {
                self.start_task(i, now, out);
                i += 1;
            } else if self.finish_task(i, now, out) {
                self.tasks.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn online_worker(&mut self) -> usize {
        let online: Vec<usize> = (0..self.workers.len())
            .filter(|&w| self.workers[w].online)
            .collect();
        match online.len() {
            0 => 0,
            n => online[self.rng.below(n)],
        }
    }

    fn start_task(&mut self, i: usize, now: f64, out: &mut Step) {
        let worker = self.online_worker();
        let t = &mut self.tasks[i];
        t.started = Some(now);
        t.worker = worker;
        t.due = now + t.run_secs;
        t.last_progress = now;
        out.updates.push(json!({
            "type": "task-started", "uuid": t.id, "hostname": WORKERS[worker],
            "timestamp": now, "retries": t.retries,
        }));
    }

    /// Long tasks report progress about once a second.
    fn progress(&mut self, i: usize, now: f64, out: &mut Step) {
        let t = &mut self.tasks[i];
        let Some(started) = t.started else { return };
        if t.run_secs < 2.0 || now - t.last_progress < 1.0 {
            return;
        }
        t.last_progress = now;
        let pct = ((now - started) / t.run_secs * 100.0)
            .clamp(0.0, 99.0)
            .round();
        out.updates.push(json!({
            "type": "task-progress", "uuid": t.id, "progress": pct,
            "step": format!("step {}", (pct / 25.0).floor() as u32 + 1), "timestamp": now,
        }));
    }

    /// Ends a running task; false when it was retried (it waits in its queue again).
    fn finish_task(&mut self, i: usize, now: f64, out: &mut Step) -> bool {
        let roll = self.rng.f64();
        let t = &mut self.tasks[i];
        let runtime = now - t.started.unwrap_or(now);
        let host = WORKERS[t.worker];
        if roll < P_RETRY && t.retries < 3 {
            t.retries += 1;
            t.started = None;
            t.due = now + 1.0 + t.retries as f64;
            out.updates.push(json!({
                "type": "task-retried", "uuid": t.id, "hostname": host, "timestamp": now,
                "retries": t.retries, "exception": "ConnectionError('upstream timed out')",
            }));
            return false;
        }
        let w = &mut self.workers[t.worker];
        w.processed += 1;
        if roll < P_RETRY + P_FAIL {
            w.failed += 1;
            out.updates.push(json!({
                "type": "task-failed", "uuid": t.id, "hostname": host, "timestamp": now,
                "runtime": runtime, "exception": failure(t.name),
                "traceback": "Traceback (most recent call last): …",
            }));
        } else {
            out.updates.push(json!({
                "type": "task-succeeded", "uuid": t.id, "hostname": host, "timestamp": now,
                "runtime": runtime, "result": {"ok": true},
            }));
        }
        true
    }

    fn advance_batch(&mut self, now: f64, out: &mut Step) {
        let Some(b) = &mut self.batch else {
            if now >= self.next_batch_at {
                let b = Batch {
                    id: self.rng.uuid(),
                    started: None,
                    done: 0,
                };
                out.submissions.push((
                    b.id.clone(),
                    json!({
                        "type": "task-received", "uuid": b.id, "name": "embeddings.embed_all_documents",
                        "routing_key": "large", "owner": "alice", "timestamp": now,
                        "args": ["s3://corpus/2026-11"], "totalBatches": BATCHES, "completedBatches": 0,
                    }),
                ));
                self.batch = Some(b);
            }
            return;
        };
        let Some(started) = b.started else {
            b.started = Some(now);
            out.updates.push(json!({"type": "task-started", "uuid": b.id, "hostname": WORKERS[0], "timestamp": now}));
            return;
        };
        let due = ((now - started) / BATCH_SECS).floor() as u64;
        if due <= b.done {
            return;
        }
        b.done = due.min(BATCHES);
        if b.done == BATCHES {
            out.updates.push(json!({
                "type": "task-succeeded", "uuid": b.id, "hostname": WORKERS[0], "timestamp": now,
                "runtime": now - started, "completedBatches": BATCHES, "progress": 100.0,
                "result": {"documents": BATCHES * 500},
            }));
            self.batch = None;
            self.next_batch_at = now + 5.0;
            return;
        }
        let per_batch = (now - started) / b.done as f64;
        out.updates.push(json!({
            "type": "task-progress", "uuid": b.id, "timestamp": now,
            "progress": (b.done as f64 / BATCHES as f64 * 100.0).round(),
            "totalBatches": BATCHES, "completedBatches": b.done,
            "estimatedTimeRemaining": (per_batch * (BATCHES - b.done) as f64).round(),
            "step": format!("batch {}/{}", b.done, BATCHES),
        }));
    }

    /// The flaky worker leaves for 40 s every two minutes or so.
    fn flaky_worker(&mut self, now: f64, out: &mut Step) {
        let Some(w) = self.workers.get_mut(FLAKY) else {
            return;
        };
        if now < w.toggle_at {
            return;
        }
        w.online = !w.online;
        w.toggle_at = now + if w.online { 120.0 } else { 40.0 };
        let kind = if w.online {
            "worker-online"
        } else {
            "worker-offline"
        };
        out.updates
            .push(json!({"type": kind, "hostname": WORKERS[FLAKY], "timestamp": now}));
    }

    fn report(&mut self, now: f64, out: &mut Step) {
        for (w, name) in WORKERS.iter().enumerate() {
            if !self.workers[w].online {
                continue;
            }
            let active = self
                .tasks
                .iter()
                .filter(|t| t.started.is_some() && t.worker == w)
                .count();
            let cpu = (15.0 + active as f64 * 18.0 + self.rng.f64() * 10.0).min(100.0);
            let worker = &self.workers[w];
            out.updates.push(json!({
                "type": "worker-heartbeat", "hostname": name, "timestamp": now,
                "active": active, "processed": worker.processed, "failed": worker.failed,
                "cpu": cpu.round(), "memory": (380.0 + active as f64 * 45.0).round(),
                "loadavg": [cpu / 50.0, cpu / 60.0, cpu / 70.0], "freq": REPORT_EVERY,
            }));
        }
        for (q, name) in QUEUES.iter().enumerate() {
            // A random walk of messages not yet taken by this demo's workers.
            self.backlog[q] = (self.backlog[q] + self.rng.f64() * 6.0 - 3.0).clamp(0.0, 60.0);
            let waiting = self
                .tasks
                .iter()
                .filter(|t| t.queue == *name && t.started.is_none())
                .count();
            out.updates.push(json!({
                "type": "queue-stats", "queue": name, "timestamp": now,
                "messages": waiting as u64 + self.backlog[q] as u64, "consumers": self.online_count(),
            }));
        }
        self.sent += 1;
        let running = self.tasks.iter().filter(|t| t.started.is_some()).count();
        out.updates.push(json!({
            "type": "system-metrics", "timestamp": now,
            "cpu_percent": (20.0 + running as f64 * 4.0 + self.rng.f64() * 8.0).min(100.0).round(),
            "memory_percent": (41.0 + self.rng.f64() * 6.0).round(),
            "disk_percent": 63.0,
            "running_tasks": running,
            "waiting_tasks": self.tasks.len() - running,
            "workers_online": self.online_count(),
            "reports": self.sent,
        }));
    }

    fn online_count(&self) -> usize {
        self.workers.iter().filter(|w| w.online).count()
    }
}

fn received(t: &Task, now: f64) -> Value {
    json!({
        "type": "task-received", "uuid": t.id, "name": t.name, "routing_key": t.queue,
        "owner": t.owner, "timestamp": now, "retries": 0,
        "args": [format!("{}-{}", t.name.split('.').next().unwrap_or("job"), &t.id[..4])],
        "kwargs": {},
    })
}

fn failure(name: &str) -> String {
    match name {
        "billing.charge" => "PaymentDeclined('card expired')".into(),
        "emails.send" => "SMTPRecipientsRefused('no such user')".into(),
        _ => "ValueError('malformed input row 812')".into(),
    }
}

/// xorshift64*: plenty for a demo, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random UUID-shaped id, like Celery's task ids.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the simulation for `secs` in quarter-second steps; returns every event.
    fn run(secs: f64) -> Vec<Value> {
        let mut sim = Sim::new(7, 4.0);
        let mut events = sim.start(1000.0);
        let mut now = 1000.0;
        while now < 1000.0 + secs {
            now += 0.25;
            let step = sim.step(now, 0.25);
            events.extend(step.submissions.into_iter().map(|(_, e)| e));
            events.extend(step.updates);
        }
        events
    }

    #[test]
    fn produces_every_kind_of_event_vigil_accepts() {
        let events = run(60.0);
        let kinds: std::collections::BTreeSet<&str> =
            events.iter().filter_map(|e| e["type"].as_str()).collect();
        for k in [
            "worker-online",
            "worker-heartbeat",
            "task-received",
            "task-started",
            "task-progress",
            "task-succeeded",
            "task-failed",
            "task-retried",
            "queue-stats",
            "system-metrics",
        ] {
            assert!(kinds.contains(k), "no {k} in {kinds:?}");
        }
        // Every event is valid for the ingest API.
        let body = serde_json::to_vec(&events[..1000.min(events.len())]).unwrap();
        let parsed = vigil_core::ingest::parse_body(&body).unwrap();
        assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    }

    #[test]
    fn a_batch_job_runs_to_completion_with_an_eta() {
        let events = run(40.0);
        let progress: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "task-progress" && e["totalBatches"] == BATCHES)
            .collect();
        assert!(progress.len() >= 20);
        assert!(progress
            .iter()
            .all(|e| e["estimatedTimeRemaining"].is_number()));
        assert!(events
            .iter()
            .any(|e| e["type"] == "task-succeeded" && e["completedBatches"] == BATCHES));
    }

    #[test]
    fn a_refused_submission_is_forgotten() {
        let mut sim = Sim::new(3, 20.0);
        sim.start(0.0);
        let step = sim.step(1.0, 1.0);
        for (id, _) in &step.submissions {
            sim.refused(id);
        }
        let later = sim.step(5.0, 0.01);
        let refused: Vec<&String> = step.submissions.iter().map(|(id, _)| id).collect();
        assert!(later
            .updates
            .iter()
            .all(|e| !refused.iter().any(|id| e["uuid"] == id.as_str())));
    }
}
