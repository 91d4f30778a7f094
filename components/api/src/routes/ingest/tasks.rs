//! Task events in a batch: the record (Celery's rule, in `vigil_core::apply`), its
//! history, its parent's children, the worker's counts and the queue's breaker.

use vigil_core::apply;
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::history::{self, History, HistoryEntry};
use vigil_core::ingest::TaskEvent;
use vigil_core::jobs;
use vigil_core::keys;
use vigil_core::task::{Task, TaskState};

use super::Batch;

impl Batch<'_> {
    /// Applies a task event. Never refused by a breaker: the task exists in the cluster
    /// whatever Vigil thinks of its queue; it is recorded, and marked when the breaker
    /// was open.
    pub(super) fn task(&mut self, ev: &TaskEvent) -> Result<(), ApiError> {
        let current = self.load_task(&ev.uuid)?;
        let is_new = current.is_none();
        let had_parent = current.as_ref().is_some_and(|t| t.parent_id.is_some());
        let before = current.as_ref().map(|t| t.state);
        let mut task = apply::apply(current, ev, self.now);
        let ts = ev.timestamp.unwrap_or(self.now);
        let breaker_open = match task.queue.clone() {
            Some(q) => {
                let (now, cfg) = (self.now, self.cfg);
                !self.breaker(&q)?.admits(now, &cfg)
            }
            None => false,
        };
        task.while_breaker_open |= is_new && breaker_open;
        let entry = HistoryEntry::of(ev, ts, self.now, breaker_open);
        self.load_history(&ev.uuid)?.add(entry);
        if let (false, Some(parent)) = (had_parent, task.parent_id.clone()) {
            self.add_child(&parent, &task.id)?;
        }
        if let Some(queue) = task.queue.clone() {
            let finished = matches!(task.state, TaskState::Success | TaskState::Failure);
            if before != Some(task.state) && finished {
                self.record_outcome(&queue, task.state == TaskState::Success)?;
            }
        }
        if ev.kind != "task-sent" {
            if let Some(host) = &ev.fields.hostname {
                self.count_task_event(host, &ev.kind, ts)?;
            }
        }
        self.events.push(Event::task_update(&task, self.now_ms));
        self.events.push(jobs::job_event(&task, self.now_ms));
        if task.total_batches.is_some() {
            self.events.push(Event::batch_progress(&task, self.now_ms));
        }
        self.tasks.insert(task.id.clone(), task);
        Ok(())
    }

    fn load_task(&mut self, id: &str) -> Result<Option<Task>, ApiError> {
        match self.tasks.remove(id) {
            Some(t) => Ok(Some(t)),
            None => self.kv.get(&keys::task(id)),
        }
    }

    fn load_history(&mut self, id: &str) -> Result<&mut History, ApiError> {
        if !self.histories.contains_key(id) {
            let stored = self.kv.get(&keys::history(id))?.unwrap_or_default();
            self.histories.insert(id.to_owned(), stored);
        }
        Ok(self.histories.get_mut(id).expect("inserted above"))
    }

    fn add_child(&mut self, parent: &str, child: &str) -> Result<(), ApiError> {
        if !self.children.contains_key(parent) {
            let stored = self.kv.get(&keys::children(parent))?.unwrap_or_default();
            self.children.insert(parent.to_owned(), stored);
        }
        let list = self.children.get_mut(parent).expect("inserted above");
        history::add_child(list, child);
        Ok(())
    }

    fn record_outcome(&mut self, queue: &str, success: bool) -> Result<(), ApiError> {
        let (now, now_ms, cfg) = (self.now, self.now_ms, self.cfg);
        let b = self.breaker(queue)?;
        if b.record(success, now, &cfg) {
            let status = b.status(now, &cfg);
            self.events.push(Event::new(
                "circuit_breaker",
                vigil_core::event::BREAKERS_TOPIC,
                now_ms,
                status,
            ));
        }
        Ok(())
    }
}
