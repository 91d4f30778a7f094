//! Timeout answers shared by a group's members whose waits end together. Clients woken
//! by one event poll again at once, so their next timeouts fall together too: without
//! this, 10 000 of them would mean 10 000 component calls in the same instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::Answer;

/// Waits of one group ending within this window of the first one share its timeout
/// answer. Short against any timeout (whole seconds), and a request whose answer could
/// change in the window is woken by the event itself, not by its timeout.
pub const SHARE_WINDOW: Duration = Duration::from_millis(50);

/// The shared timeout answers in use, by group and window.
pub struct Timeouts {
    epoch: Instant,
    cells: Mutex<Cells>,
}

#[derive(Default)]
struct Cells {
    by_window: HashMap<(String, u64), Weak<OnceCell<Answer>>>,
    /// Entries after the last sweep of unused ones: the next sweep comes at twice this.
    after_sweep: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            cells: Mutex::default(),
        }
    }
}

impl Timeouts {
    /// The timeout answer shared by group `group`'s waits ending at `deadline`'s window
    /// (asked for by the first of them).
    pub fn cell(&self, group: &str, deadline: Instant) -> Arc<OnceCell<Answer>> {
        let since = deadline.saturating_duration_since(self.epoch);
        let window = (since.as_millis() / SHARE_WINDOW.as_millis()) as u64;
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let key = (group.to_owned(), window);
        if let Some(cell) = cells.by_window.get(&key).and_then(Weak::upgrade) {
            return cell;
        }
        let cell = Arc::new(OnceCell::new());
        cells.by_window.insert(key, Arc::downgrade(&cell));
        if cells.by_window.len() > 2 * cells.after_sweep.max(64) {
            cells.by_window.retain(|_, c| c.strong_count() > 0);
            cells.after_sweep = cells.by_window.len();
        }
        cell
    }

    /// When windows are counted from (for tests).
    #[cfg(test)]
    pub(crate) fn epoch_for_tests(&self) -> Instant {
        self.epoch
    }

    /// Entries kept (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cells.lock().unwrap().by_window.len()
    }
}
