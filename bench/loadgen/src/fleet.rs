//! K clients connected in parallel (bounded), each receiving until told to stop.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::client::{self, Clock, Received, Target};
use crate::net::Sources;

/// The connected clients.
pub struct Fleet {
    /// Clients that connected and subscribed.
    pub connected: usize,
    /// Clients that did not (their deliveries count as lost).
    pub failed: usize,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Received>>,
}

impl Fleet {
    /// Connects `clients` clients, numbered from `first` (a shard's part of a larger
    /// fleet), spread by number over `targets` in turn (several hosts of one
    /// deployment) and over loopback `sources`, `concurrency` handshakes at a time, and
    /// returns once every one has subscribed or failed.
    pub async fn connect(
        targets: &[Target],
        first: usize,
        clients: usize,
        concurrency: usize,
        clock: &Arc<Clock>,
        sources: Sources,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (ready, mut ready_rx) = mpsc::channel::<bool>(clients.max(1));
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let tasks = (first..first + clients)
            .map(|i| {
                let (target, clock, stop_rx, ready, limit) = (
                    targets[i % targets.len()].clone(),
                    clock.clone(),
                    stop_rx.clone(),
                    ready.clone(),
                    limit.clone(),
                );
                tokio::spawn(async move {
                    let permit = limit.acquire_owned().await.expect("never closed");
                    let conn = client::connect(&target, sources.of(i)).await;
                    drop(permit);
                    let _ = ready.send(conn.is_ok()).await;
                    match conn {
                        Ok(conn) => client::receive(conn, clock, stop_rx).await,
                        Err(e) => {
                            eprintln!("client failed to connect: {e:#}");
                            Received::default()
                        }
                    }
                })
            })
            .collect();
        let (mut connected, mut failed) = (0, 0);
        while connected + failed < clients {
            match ready_rx.recv().await {
                Some(true) => connected += 1,
                Some(false) | None => failed += 1,
            }
        }
        Self {
            connected,
            failed,
            stop,
            tasks,
        }
    }

    /// Disconnects every client and returns what each received.
    pub async fn stop(self) -> Vec<Received> {
        let _ = self.stop.send(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            all.push(task.await.unwrap_or_default());
        }
        all
    }
}
