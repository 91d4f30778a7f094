//! The writer of one connection: it alone owns the write half and sends everything
//! queued since its last wake-up with one `writev`.

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

/// Frames per `writev` at most.
const MAX_BATCH: usize = 64;

/// Writes until the queue's last sender is gone or the socket fails.
pub async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if write_all(&mut wr, &mut batch).await.is_err() {
            return;
        }
    }
}

/// Writes and empties `batch`, one `writev` per call unless the socket takes less.
async fn write_all(wr: &mut OwnedWriteHalf, batch: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut start = 0;
    while start < batch.len() {
        let mut written = if start + 1 == batch.len() {
            wr.write(&batch[start]).await?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_BATCH];
            let n = batch.len() - start;
            for (slice, b) in slices.iter_mut().zip(&batch[start..]) {
                *slice = IoSlice::new(b);
            }
            wr.write_vectored(&slices[..n]).await?
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let b = &mut batch[start];
            if written >= b.len() {
                written -= b.len();
                start += 1;
            } else {
                b.advance(written);
                written = 0;
            }
        }
    }
    batch.clear();
    Ok(())
}
