//! Fuzz targets for what the host parses from the wire, against a real host: push query
//! strings (`/events?…`), native WebSocket messages, and Engine.IO/Socket.IO packets
//! (HTTP long-polling bodies, parsed by `vigil-transport`'s Engine.IO layer and Vigil's handlers). Each runs
//! for a bounded time (`vigil_fuzz`); the checks: every refusal is the JSON error
//! shape, no 5xx, every WebSocket text message gets a JSON answer, and the host still
//! answers `/health` and `/ready` afterwards.

mod common;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use vigil_fuzz::{budget, regressions, seed, Mutator};

/// Longest a wire-level input may take to be answered before it counts as a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Replays `name`'s regressions, then mutated seeds until the budget is spent.
fn inputs(name: &str, seeds: &[&[u8]], dictionary: &[&[u8]]) -> impl Iterator<Item = Vec<u8>> {
    let mut mutator = Mutator::new(seed());
    let (seeds, dictionary): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (
        seeds.iter().map(|s| s.to_vec()).collect(),
        dictionary.iter().map(|s| s.to_vec()).collect(),
    );
    let deadline = Instant::now() + budget();
    regressions(name)
        .into_iter()
        .chain(std::iter::from_fn(move || {
            let s: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
            let d: Vec<&[u8]> = dictionary.iter().map(Vec::as_slice).collect();
            (Instant::now() < deadline).then(|| mutator.next(&s, &d))
        }))
}

/// The error shape every refusal must have, with its status.
fn assert_json_error(status: u16, body: &[u8], what: &str) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{what}: {status} is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(v["error"]["status"], status, "{what}: {v}");
}

async fn still_answers(host: &common::TestHost) {
    for path in ["/health", "/ready"] {
        let r = reqwest::get(host.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path} after fuzzing");
    }
}

#[tokio::test]
async fn push_query_strings() {
    let host = common::start().await;
    let client = reqwest::Client::new();
    let admin = common::admin();
    let mut n = 0;
    for input in inputs(
        "push_query",
        &[
            b"topics=celery:tasks&since=0",
            b"queues=a,b&states=SUCCESS&ids=x%2Fy",
            b"encoding=json",
        ],
        &[
            b"&",
            b"=",
            b"since=",
            b"%",
            b"%FF",
            b"18446744073709551616",
            b"-1",
            b"since=1&since=2",
            b"+",
        ],
    ) {
        let query = String::from_utf8_lossy(&input).replace(['#', ' '], "%20");
        let resp = tokio::time::timeout(
            ANSWER_WITHIN,
            client
                .get(host.url(&format!("/events?{query}")))
                .bearer_auth(&admin)
                .send(),
        )
        .await
        .expect("answered in time");
        let Ok(resp) = resp else { continue }; // a URL reqwest itself refuses to send
        let status = resp.status().as_u16();
        n += 1;
        if status != 200 {
            assert!(status < 500, "/events?{query}: {status}");
            let body = resp.bytes().await.unwrap();
            assert_json_error(status, &body, &format!("/events?{query}"));
        }
    }
    println!("fuzz push_query: {n} requests");
    still_answers(&host).await;
}

#[tokio::test]
async fn websocket_messages() {
    let host = common::start().await;
    let url = format!(
        "ws://{}/ws?access_token={}",
        host.running.addr,
        common::admin()
    );
    let open = || async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.next().await; // `connected`
        ws
    };
    let mut ws = open().await;
    let mut n = 0;
    for input in inputs(
        "ws_messages",
        &[
            br#"{"type":"subscribe","topics":["celery:tasks"],"queues":["q"],"ids":["a/b"],"id":1}"#,
            br#"{"type":"ping","timestamp":5,"id":"x"}"#,
            br#"{"type":"refresh","token":"abc.def.ghi"}"#,
        ],
        &[b"\"type\":", b"\"subscribe\"", b"[", b"]", b"null", b"\"states\":", b"1e999", b"\"\\ud800\""],
    ) {
        let Ok(text) = String::from_utf8(input) else { continue };
        n += 1;
        if ws.send(Message::text(text.clone())).await.is_err() {
            ws = open().await;
            continue;
        }
        let answer = loop {
            match tokio::time::timeout(ANSWER_WITHIN, ws.next()).await.expect("an answer in time") {
                Some(Ok(Message::Text(t))) => break Some(t),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => break None,
            }
        };
        match answer {
            Some(t) => {
                let v: Value = serde_json::from_str(&t).expect("answers are JSON");
                assert!(v["type"].is_string(), "{text:?} → {v}");
            }
            None => ws = open().await,
        }
    }
    println!("fuzz ws_messages: {n} messages");
    still_answers(&host).await;
}

#[tokio::test]
async fn engineio_packets() {
    let host = common::start().await;
    let client = reqwest::Client::new();
    let base = host.url("/socket.io/?EIO=4&transport=polling");
    let token = common::admin();
    let handshake = || async {
        let text = client
            .get(&base)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open: Value = serde_json::from_str(text.trim_start_matches('0')).unwrap();
        open["sid"].as_str().unwrap().to_owned()
    };
    let connect = format!(r#"40/ws/celery/tasks,{{"token":"{token}"}}"#);
    let seeds: Vec<&[u8]> = vec![
        connect.as_bytes(),
        br#"42/ws/celery/tasks,["subscribe",{"room":"celery:tasks"}]"#,
        br#"42/ws/celery/tasks,1["ping",{"timestamp":1}]"#,
        b"2\x1e3\x1e40",
        br#"451-["x",{"_placeholder":true,"num":0}]"#,
    ];
    let mut sid = handshake().await;
    let mut n = 0;
    for input in inputs(
        "engineio_packets",
        &seeds,
        &[
            b"\x1e",
            b"4",
            b"42",
            b"/ws/celery/tasks,",
            b"[",
            b"{",
            b"\"",
            b"b",
            b"6",
            b"1",
        ],
    ) {
        let url = format!("{base}&sid={sid}");
        let resp =
            tokio::time::timeout(ANSWER_WITHIN, client.post(&url).body(input.clone()).send())
                .await
                .expect("answered in time")
                .unwrap();
        n += 1;
        assert!(
            resp.status().as_u16() < 500,
            "{:?}: {}",
            String::from_utf8_lossy(&input),
            resp.status()
        );
        if !resp.status().is_success() {
            sid = handshake().await; // the session is gone; open another
        }
    }
    println!("fuzz engineio_packets: {n} payloads");
    still_answers(&host).await;
}
