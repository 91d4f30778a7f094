//! The native WebSocket driver over an in-memory stream.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// Answers `n:<text>`, counting messages; a `slow` message takes 50 ms.
struct Count(u32, Arc<Queue<Outgoing>>);

impl Messages for Count {
    fn text(self, text: Bytes) -> Pin<Box<dyn Future<Output = Self> + Send>> {
        Box::pin(async move {
            if &text[..] == b"slow" {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let answer = format!("{}:{}", self.0, String::from_utf8_lossy(&text));
            let _ = self.1.push_control(Outgoing::Text(answer.into()));
            Count(self.0 + 1, self.1)
        })
    }
}

fn config() -> Config {
    Config {
        missed: 2,
        max_message: 1000,
    }
}

/// A masked client frame, final, with `opcode`.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    ws::masked(0x80 | opcode, payload).to_vec()
}

/// The next server frame: (opcode, payload).
async fn frame(io: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    let len = match head[1] {
        126 => io.read_u16().await.unwrap() as usize,
        n => n as usize,
    };
    let mut body = vec![0; len];
    io.read_exact(&mut body).await.unwrap();
    (head[0] & 0x0F, body)
}

fn start(queue: &Arc<Queue<Outgoing>>) -> (DuplexStream, tokio::task::JoinHandle<String>) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(run(
        server,
        b"",
        queue.clone(),
        Count(0, queue.clone()),
        config(),
    ));
    (client, task)
}

#[tokio::test]
async fn messages_are_answered_in_order_one_at_a_time() {
    let queue = Arc::new(Queue::new(16));
    let (mut client, _task) = start(&queue);
    let mut wire = masked(ws::TEXT, b"slow");
    wire.extend(masked(ws::PING, b"p"));
    wire.extend(masked(ws::TEXT, b"fast"));
    client.write_all(&wire).await.unwrap();
    assert_eq!(frame(&mut client).await, (ws::PONG, b"p".to_vec()));
    assert_eq!(frame(&mut client).await, (ws::TEXT, b"0:slow".to_vec()));
    assert_eq!(frame(&mut client).await, (ws::TEXT, b"1:fast".to_vec()));
}

#[tokio::test]
async fn an_end_closes_with_its_code_after_what_came_before() {
    let queue = Arc::new(Queue::new(16));
    let (mut client, task) = start(&queue);
    queue
        .push_all([
            Outgoing::Text(Bytes::from_static(b"last")),
            Outgoing::End {
                ns: 0,
                code: 4001,
                reason: "token expired".into(),
            },
            Outgoing::Text(Bytes::from_static(b"never")),
        ])
        .unwrap();
    assert_eq!(frame(&mut client).await, (ws::TEXT, b"last".to_vec()));
    let (op, body) = frame(&mut client).await;
    assert_eq!((op, &body[..2]), (ws::CLOSE, &4001u16.to_be_bytes()[..]));
    assert_eq!(task.await.unwrap(), "token expired");
}

#[tokio::test]
async fn a_client_silent_for_two_heartbeats_in_a_row_is_closed() {
    let queue = Arc::new(Queue::new(16));
    let (mut client, task) = start(&queue);
    queue.push(Outgoing::Heartbeat).unwrap();
    assert_eq!(frame(&mut client).await, (ws::PING, vec![]), "one missed");
    client.write_all(&masked(ws::PONG, b"")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the pong read
    queue.push(Outgoing::Heartbeat).unwrap();
    assert_eq!(
        frame(&mut client).await.0,
        ws::PING,
        "answered: none missed"
    );
    queue.push(Outgoing::Heartbeat).unwrap();
    assert_eq!(frame(&mut client).await.0, ws::PING, "one missed");
    queue.push(Outgoing::Heartbeat).unwrap();
    let (op, body) = frame(&mut client).await;
    assert_eq!((op, &body[..2]), (ws::CLOSE, &4000u16.to_be_bytes()[..]));
    assert!(task.await.unwrap().contains("heartbeats"));
}

#[tokio::test]
async fn a_message_over_the_limit_ends_the_connection() {
    let queue = Arc::new(Queue::new(16));
    let (mut client, task) = start(&queue);
    client
        .write_all(&masked(ws::TEXT, &[b'x'; 2000]))
        .await
        .unwrap();
    let (op, body) = frame(&mut client).await;
    assert_eq!(
        (op, &body[..2]),
        (ws::CLOSE, &ws::CLOSE_TOO_BIG.to_be_bytes()[..])
    );
    assert!(task.await.unwrap().contains("too big"));
}
