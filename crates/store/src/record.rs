//! What `task/{id}` holds: the task with a revision, or the marker an expired task
//! leaves behind.

use serde::{Deserialize, Serialize};
use vigil_core::task::Task;

use crate::kv::{KvError, Result};

/// A stored task record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// 1 on the first write, one more on every write: index entries carry the revision
    /// they were computed from, so a stale entry can be told from one being written.
    pub rev: u64,
    /// When Vigil recorded the task finishing (its own clock, seconds since the epoch),
    /// while it is finished: the order retention expires tasks in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<f64>,
    /// The task, unless it expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// Version of the task's history the record was computed from (see
    /// `vigil_core::replay`): a writer holding an older one leaves the record alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hist: u64,
    /// Set once retention expired the task: what remains of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<Expired>,
}

/// What an expired task leaves: enough to answer "expired" instead of "unknown".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expired {
    /// When retention expired it (seconds since the epoch).
    pub at: f64,
    /// When Vigil had recorded it finishing.
    pub done_at: f64,
    /// Which rule expired it.
    pub reason: String,
    /// Its owner, so only those who could see the task learn that it expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Stored {
    /// A live record.
    pub fn live(rev: u64, task: Task, done_at: Option<f64>) -> Self {
        Self {
            rev,
            done_at,
            task: Some(task),
            hist: 0,
            expired: None,
        }
    }

    /// The task, if the record holds one.
    pub fn task(&self) -> Option<&Task> {
        self.task.as_ref()
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored record. A bare task (written before records had revisions) reads
    /// as revision 0.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        match serde_json::from_slice::<Stored>(bytes) {
            Ok(s) if s.task.is_some() || s.expired.is_some() => Ok(s),
            _ => serde_json::from_slice::<Task>(bytes)
                .map(|t| Stored::live(0, t, None))
                .map_err(|e| KvError::Corrupt {
                    key: key.to_owned(),
                    why: e.to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_bare_tasks() {
        let s = Stored::live(3, Task::new("a"), Some(12.5));
        assert_eq!(Stored::decode("k", &s.encode()).unwrap(), s);
        let bare = serde_json::to_vec(&Task::new("b")).unwrap();
        let old = Stored::decode("k", &bare).unwrap();
        assert_eq!((old.rev, old.task().map(|t| t.id.as_str())), (0, Some("b")));
        let gone = Stored {
            rev: 4,
            done_at: None,
            task: None,
            hist: 0,
            expired: Some(Expired {
                at: 2.0,
                done_at: 1.0,
                reason: "older than 1 s".into(),
                owner: None,
            }),
        };
        assert_eq!(Stored::decode("k", &gone.encode()).unwrap(), gone);
        assert!(Stored::decode("k", b"{\"rev\":1}").is_err());
        // Times read back bit for bit: index keys are compared with them.
        for x in [1795802336.7099059, 1795802346.075497, 0.1 + 0.2] {
            let s = Stored::live(1, Task::new("a"), Some(x));
            assert_eq!(Stored::decode("k", &s.encode()).unwrap().done_at, Some(x));
        }
    }
}
