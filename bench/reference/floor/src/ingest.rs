//! The floor of `scripts/bench ingest`: the least a server must do to acknowledge Celery
//! task events durably in the store Vigil's architecture prescribes (SQLite, in Spin's
//! key-value schema, WAL, `synchronous = NORMAL`: a commit survives the process being
//! killed). Started with `INGEST_DB=<file>`.
//!
//! `POST /api/v1/events` with a bearer token (HS256, [`jwt`]; its role unchecked) and
//! one Celery event or an array of them: each event's task record (`task/<uuid>`) is
//! read, updated and written back, and the event is logged with the next sequence number as a
//! `task_update` carrying the record (`event/<seq>`, the last [`HISTORY`] kept, the head
//! in `meta/seq`): the same keys and the same rows per event as Vigil's record and log.
//! One writer thread owns the connection and commits everything that arrived while it
//! was busy in one transaction (group commit), then answers `202 {"accepted": n}`.
//!
//! Skipped, so it stays a lower bound: the listing indexes, per-task history, counters,
//! worker records, rate limits, per-event checks beyond the JSON's shape, and handing
//! the events to subscribers. The record keeps a few fields, not Vigil's forty.
//!
//! [`jwt`]: crate::jwt

use std::path::Path;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{respond, Answer};

/// Events the log keeps, Vigil's default (`--history`).
pub const HISTORY: u64 = 10_000;
/// The store label, Vigil's.
const STORE: &str = "default";
/// Largest body taken, Vigil's.
const MAX_BODY: usize = 1 << 20;

/// One Celery task event: the fields the record keeps (the rest is ignored).
#[derive(Deserialize)]
struct CeleryEvent {
    #[serde(rename = "type")]
    kind: String,
    uuid: String,
    name: Option<String>,
    routing_key: Option<String>,
    hostname: Option<String>,
    timestamp: Option<f64>,
}

/// A task's record.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
    updated_at: f64,
}

impl Record {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: "PENDING".to_owned(),
            name: None,
            queue: None,
            worker: None,
            updated_at: 0.0,
        }
    }

    /// The record after `e`: a later event moves the state, fields fill in.
    fn apply(&mut self, e: &CeleryEvent) {
        let state = e.kind.strip_prefix("task-").unwrap_or(&e.kind);
        let at = e.timestamp.unwrap_or(0.0);
        if at >= self.updated_at {
            self.state = state.to_ascii_uppercase();
            self.updated_at = at;
        }
        fill(&mut self.name, &e.name);
        fill(&mut self.queue, &e.routing_key);
        fill(&mut self.worker, &e.hostname);
    }
}

fn fill(field: &mut Option<String>, from: &Option<String>) {
    if field.is_none() {
        field.clone_from(from);
    }
}

/// A request's events, waiting for the writer.
struct Job {
    events: Vec<CeleryEvent>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The ingest endpoint: a token check, then the writer.
pub struct Ingest {
    secret: Vec<u8>,
    jobs: mpsc::Sender<Job>,
}

impl Ingest {
    /// Opens (creating) the store at `path` and starts its writer thread.
    pub fn open(path: &Path, secret: Vec<u8>) -> std::io::Result<Self> {
        let (conn, head) = open_store(path).map_err(std::io::Error::other)?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("floor-writer".into())
            .spawn(move || write_groups(conn, head, queue))?;
        Ok(Self { secret, jobs })
    }

    /// `POST /api/v1/events`.
    pub async fn accept(&self, req: Request<Incoming>) -> Answer {
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token.is_some_and(|t| crate::jwt::verify(&self.secret, t)) {
            return respond(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#);
        }
        let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => return respond(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"too large"}"#),
        };
        let Some(events) = parse(&body) else {
            return respond(StatusCode::BAD_REQUEST, r#"{"error":"not Celery events"}"#);
        };
        let accepted = events.len();
        let (done, committed) = oneshot::channel();
        if self.jobs.send(Job { events, done }).is_err() {
            return respond(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"no writer"}"#);
        }
        match committed.await {
            Ok(Ok(())) => respond(
                StatusCode::ACCEPTED,
                &format!(r#"{{"accepted":{accepted}}}"#),
            ),
            _ => respond(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"not stored"}"#),
        }
    }
}

/// The store at `path` in Spin's schema, and the log's head. The same table and settings
/// as `vigil_kv::sqlite` opens, written out here: the floor uses none of Vigil's code.
fn open_store(path: &Path) -> rusqlite::Result<(Connection, u64)> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        )",
    )?;
    let head: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = ?1 AND key = 'meta/seq'",
            [STORE],
            |r| r.get(0),
        )
        .optional()?;
    let head = head
        .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0);
    Ok((conn, head))
}

/// One event (an object) or several (an array).
fn parse(body: &Bytes) -> Option<Vec<CeleryEvent>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        serde_json::from_slice(body).ok()
    } else {
        serde_json::from_slice(body).ok().map(|e| vec![e])
    }
}

/// The writer: waits for a job, takes every other one queued meanwhile, commits them in
/// one transaction and answers them all.
fn write_groups(conn: Connection, mut head: u64, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let before = head;
        let result = commit(&conn, &mut head, &group).map_err(|e| e.to_string());
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            head = before;
        }
        for job in group {
            let _ = job.done.send(result.clone());
        }
    }
}

/// Stores every event of `group` in one transaction, numbering them after `head` (left
/// advanced: the caller rolls back and restores it if this fails).
fn commit(conn: &Connection, head: &mut u64, group: &[Job]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut select =
        conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
    )?;
    let mut delete =
        conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for e in group.iter().flat_map(|job| &job.events) {
        let key = format!("task/{}", e.uuid);
        let stored: Option<Vec<u8>> = select
            .query_row(params![STORE, key], |r| r.get(0))
            .optional()?;
        let mut record = stored
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| Record::new(&e.uuid));
        record.apply(e);
        let record = serde_json::to_string(&record).expect("a record serializes");
        upsert.execute(params![STORE, key, record.as_bytes()])?;
        *head += 1;
        let seq = *head;
        let event = format!(
            r#"{{"seq":{seq},"type":"task_update","topic":"celery:tasks","ts":{now_ms},"key":"task:{}","data":{record}}}"#,
            e.uuid
        );
        upsert.execute(params![STORE, format!("event/{seq:020}"), event.as_bytes()])?;
        if seq > HISTORY {
            delete.execute(params![STORE, format!("event/{:020}", seq - HISTORY)])?;
        }
    }
    upsert.execute(params![STORE, "meta/seq", head.to_string().as_bytes()])?;
    conn.execute_batch("COMMIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, at: f64) -> CeleryEvent {
        CeleryEvent {
            kind: kind.into(),
            uuid: "t1".into(),
            name: Some("app.add".into()),
            routing_key: None,
            hostname: Some("w1".into()),
            timestamp: Some(at),
        }
    }

    #[test]
    fn a_record_keeps_the_latest_state_and_the_first_fields() {
        let mut r = Record::new("t1");
        r.apply(&event("task-started", 2.0));
        r.apply(&event("task-received", 1.0));
        assert_eq!(
            (r.state.as_str(), r.name.as_deref()),
            ("STARTED", Some("app.add"))
        );
    }

    #[test]
    fn bodies_are_one_event_or_an_array() {
        let one = Bytes::from_static(br#" {"type":"task-received","uuid":"a"}"#);
        let many = Bytes::from_static(
            br#"[{"type":"task-received","uuid":"a"},{"type":"task-started","uuid":"a"}]"#,
        );
        assert_eq!(parse(&one).map(|v| v.len()), Some(1));
        assert_eq!(parse(&many).map(|v| v.len()), Some(2));
        assert!(parse(&Bytes::from_static(b"{}")).is_none());
        assert!(parse(&Bytes::from_static(b"")).is_none());
    }

    #[test]
    fn each_event_is_logged_and_its_record_written_in_one_commit() {
        let path = std::env::temp_dir().join(format!("floor-ingest-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL,
             value BLOB NOT NULL, PRIMARY KEY (store, key))",
        )
        .unwrap();
        let (done, _) = oneshot::channel();
        let job = Job {
            events: vec![event("task-received", 1.0), event("task-started", 2.0)],
            done,
        };
        let mut head = 0;
        commit(&conn, &mut head, &[job]).unwrap();
        let get = |k: &str| -> String {
            conn.query_row(
                "SELECT value FROM spin_key_value WHERE key = ?1",
                [k],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap()
        };
        assert_eq!(head, 2);
        assert_eq!(get("meta/seq"), "2");
        assert!(get("task/t1").contains(r#""state":"STARTED""#));
        assert!(get(&format!("event/{:020}", 1)).starts_with(r#"{"seq":1,"type":"task_update""#));
        let _ = std::fs::remove_file(&path);
    }
}
