//! A connection's bounded queue: the hub (and the connection's own replies) push,
//! the connection's writer drains everything queued in one go when it wakes.
//!
//! The writer is woken only when the queue goes from empty to not empty (or closes):
//! a burst of a thousand messages costs one wake-up, not a thousand. Nothing is
//! allocated while the queue is empty, and a queue that grew for a burst gives the
//! memory back once drained, so an idle connection costs no buffer.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// Extra room for the connection's own replies (acks, pongs, markers) beyond the
/// capacity, so a full queue still tells the client why it is closed. A client that
/// keeps asking without reading fills even that and is closed.
pub const CONTROL_SLACK: usize = 16;
/// Slots kept allocated after a drain; a queue that grew past this for a burst
/// shrinks back, so idle connections hold no burst-sized buffer.
const KEEP_SLOTS: usize = 8;

/// The queue was full: the connection is not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A bounded multi-producer, single-consumer queue.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// Items queued with [`Queue::push_exempt`] not yet drained: they do not count
    /// against the capacity (a resumed client's replay may be longer than it).
    exempt: usize,
    /// Set once closed, with the reason the connection tells its client.
    closed: Option<String>,
}

impl<T> State<T> {
    /// Items that count against the capacity.
    fn counted(&self) -> usize {
        self.items.len() - self.exempt.min(self.items.len())
    }
}

impl<T> Queue<T> {
    /// An empty queue for `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                exempt: 0,
                closed: None,
            }),
            waker: AtomicWaker::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`; `Err(Full)` when `capacity` messages wait already. A closed queue
    /// takes nothing (and says so as if full: the connection is ending). `Ok` says how
    /// many messages count against the capacity now.
    pub fn push(&self, item: T) -> Result<usize, Full> {
        self.push_all(std::iter::once(item))
    }

    /// Queues `items` in order under one lock, waking the writer at most once; stops
    /// at the first that does not fit (`Err(Full)`, the rest dropped).
    pub fn push_all(&self, items: impl IntoIterator<Item = T>) -> Result<usize, Full> {
        self.push_within(items, self.capacity, false)
    }

    /// Queues one of the connection's own replies, which may use [`CONTROL_SLACK`]
    /// slots beyond the capacity.
    pub fn push_control(&self, item: T) -> Result<usize, Full> {
        self.push_within(std::iter::once(item), self.capacity + CONTROL_SLACK, false)
    }

    /// Queues several of the connection's own messages in order (all or, past the
    /// [`CONTROL_SLACK`], up to the first that does not fit).
    pub fn push_all_control(&self, items: impl IntoIterator<Item = T>) -> Result<usize, Full> {
        self.push_within(items, self.capacity + CONTROL_SLACK, false)
    }

    /// Queues `item` whatever the capacity (only a closed queue refuses): for a bounded
    /// amount of catching up, e.g. a resumed client's replay, which the messages
    /// queued after it must not be refused for.
    pub fn push_exempt(&self, item: T) -> Result<usize, Full> {
        self.push_within(std::iter::once(item), usize::MAX, true)
    }

    /// Puts `items` in front of everything queued, in order, whatever the capacity
    /// (only a closed queue refuses): a resumed client's replay, which must come before
    /// the live messages queued while it was read.
    pub fn push_front_exempt(&self, items: Vec<T>) -> Result<usize, Full> {
        let was_empty = {
            let mut s = self.lock();
            if s.closed.is_some() {
                return Err(Full);
            }
            let was_empty = s.items.is_empty();
            s.exempt += items.len();
            for item in items.into_iter().rev() {
                s.items.push_front(item);
            }
            was_empty && !s.items.is_empty()
        };
        if was_empty {
            self.waker.wake();
        }
        Ok(self.lock().counted())
    }

    fn push_within(
        &self,
        items: impl IntoIterator<Item = T>,
        limit: usize,
        exempt: bool,
    ) -> Result<usize, Full> {
        let (was_empty, result) = {
            let mut s = self.lock();
            if s.closed.is_some() {
                return Err(Full);
            }
            let was_empty = s.items.is_empty();
            let mut result = Ok(0);
            for item in items {
                if s.counted() >= limit {
                    result = Err(Full);
                    break;
                }
                s.items.push_back(item);
                if exempt {
                    s.exempt += 1;
                }
            }
            (
                was_empty && !s.items.is_empty(),
                result.map(|_| s.counted()),
            )
        };
        if was_empty {
            self.waker.wake();
        }
        result
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Fewer than a quarter of its slots are free: the connection is falling behind.
    pub fn nearly_full(&self) -> bool {
        Self::is_nearly_full(self.lock().counted(), self.capacity)
    }

    /// Whether `counted` messages (as [`Queue::push`] reports) make a queue of
    /// `capacity` nearly full.
    pub fn is_nearly_full(counted: usize, capacity: usize) -> bool {
        counted > capacity - capacity / 4
    }

    /// Closes the queue with `reason` (the first reason wins); the writer still gets
    /// what was queued, then [`Queue::closed`] says why.
    pub fn close(&self, reason: &str) {
        {
            let mut s = self.lock();
            if s.closed.is_some() {
                return;
            }
            s.closed = Some(reason.to_owned());
        }
        self.waker.wake();
    }

    /// Why it was closed, once it was.
    pub fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Moves up to `max` queued messages into `out`; waits while there are none.
    /// Returns how many were moved: 0 only once the queue is closed and empty.
    pub async fn recv_many(&self, out: &mut Vec<T>, max: usize) -> usize {
        std::future::poll_fn(|cx| self.poll_recv_many(cx, out, max)).await
    }

    /// The poll behind [`Queue::recv_many`], for writers that poll by hand.
    pub fn poll_recv_many(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<T>,
        max: usize,
    ) -> Poll<usize> {
        if let Some(n) = self.try_drain(out, max) {
            return Poll::Ready(n);
        }
        self.waker.register(cx.waker());
        // Something may have come between the first look and the registration.
        match self.try_drain(out, max) {
            Some(n) => Poll::Ready(n),
            None => Poll::Pending,
        }
    }

    /// Ready once something is queued or the queue is closed; takes nothing.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = |s: &State<T>| !s.items.is_empty() || s.closed.is_some();
        if ready(&self.lock()) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if ready(&self.lock()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Wakes whoever waits on the queue (e.g. a long-polling request that must end
    /// because its session upgrades).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Keeps only the queued messages `keep` accepts (e.g. live messages a resumed
    /// client's replay already holds).
    pub fn retain(&self, keep: impl FnMut(&T) -> bool) {
        let mut s = self.lock();
        s.items.retain(keep);
        s.exempt = s.exempt.min(s.items.len());
    }

    /// Moves what is queued without waiting: `Some(n)` when something was moved or the
    /// queue is closed and empty (`Some(0)`), `None` when there is nothing yet.
    pub fn try_drain(&self, out: &mut Vec<T>, max: usize) -> Option<usize> {
        let mut s = self.lock();
        if s.items.is_empty() {
            return s.closed.is_some().then_some(0);
        }
        let n = s.items.len().min(max.max(1));
        out.extend(s.items.drain(..n));
        s.exempt = s.exempt.saturating_sub(n);
        if s.items.is_empty() && s.items.capacity() > KEEP_SLOTS {
            s.items.shrink_to(KEEP_SLOTS);
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_replay_goes_in_front_and_does_not_count() {
        let q = Queue::new(2);
        q.push_all([3, 4]).unwrap();
        assert_eq!(q.push_front_exempt(vec![1, 2]), Ok(2));
        assert_eq!(q.push(5), Err(Full));
        let mut out = Vec::new();
        q.try_drain(&mut out, 10);
        assert_eq!(out, [1, 2, 3, 4]);
    }

    struct Counter(AtomicUsize);

    impl futures::task::ArcWake for Counter {
        fn wake_by_ref(me: &Arc<Self>) {
            me.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_wakes_the_writer_once() {
        let q = Queue::new(100);
        let wakes = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = futures::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        assert_eq!(q.poll_recv_many(&mut cx, &mut out, 64), Poll::Pending);
        for i in 0..50 {
            q.push(i).unwrap();
        }
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "one wake-up for 50 messages"
        );
        assert_eq!(q.poll_recv_many(&mut cx, &mut out, 64), Poll::Ready(50));
        assert_eq!(out, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn full_means_full_except_for_the_connections_own_replies() {
        let q = Queue::new(4);
        for i in 0..4 {
            q.push(i).unwrap();
        }
        assert!(q.nearly_full());
        assert_eq!(q.push(4), Err(Full));
        assert_eq!(q.push_all([4, 5]), Err(Full));
        for i in 0..CONTROL_SLACK {
            q.push_control(i).unwrap();
        }
        assert_eq!(q.push_control(99), Err(Full));
    }

    #[test]
    fn a_replay_pushed_exempt_does_not_count_against_the_capacity() {
        let q = Queue::new(4);
        for i in 0..10 {
            q.push_exempt(i).unwrap();
        }
        assert!(!q.nearly_full(), "the replay is not counted");
        assert_eq!(q.push_all([10, 11]), Ok(2), "live messages still fit");
        let mut out = Vec::new();
        q.try_drain(&mut out, 6);
        assert_eq!(
            q.push_all([12, 13, 14]),
            Err(Full),
            "2 counted: two more fit"
        );
        assert_eq!(q.len(), 8);
        q.close("done");
        assert_eq!(q.push_exempt(99), Err(Full), "a closed queue takes nothing");
    }

    #[test]
    fn a_drained_queue_gives_its_burst_memory_back() {
        let q = Queue::new(10_000);
        for i in 0..5000 {
            q.push(i).unwrap();
        }
        let mut out = Vec::new();
        while q.try_drain(&mut out, 64).is_some_and(|n| n > 0) {}
        assert!(q.lock().items.capacity() <= KEEP_SLOTS);
        assert_eq!(out.len(), 5000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_hands_over_what_it_has_then_says_why() {
        let q = Arc::new(Queue::new(8));
        q.push(1).unwrap();
        q.close("slow consumer");
        q.close("later reason");
        assert_eq!(q.push(2), Err(Full));
        let mut out = Vec::new();
        assert_eq!(q.recv_many(&mut out, 8).await, 1);
        assert_eq!(q.recv_many(&mut out, 8).await, 0);
        assert_eq!(q.closed().as_deref(), Some("slow consumer"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_sleeps_until_something_comes() {
        let q = Arc::new(Queue::new(8));
        let mut out = Vec::new();
        let idle = tokio::time::timeout(Duration::from_secs(60), q.recv_many(&mut out, 8)).await;
        assert!(idle.is_err(), "nothing queued, nothing received");
        let pusher = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            pusher.push(7).unwrap();
        });
        assert_eq!(q.recv_many(&mut out, 8).await, 1);
        assert_eq!(out, [7]);
    }
}
