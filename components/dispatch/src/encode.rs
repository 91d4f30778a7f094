//! Encodings: JSON as the host produced it, MessagePack, Socket.IO payloads in the
//! seeds' shapes, and gzip over 1 KiB.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::{Encoding, Event, Frame};

/// Frames larger than this are gzip-compressed for subscribers that accept gzip (seed 001).
pub const GZIP_THRESHOLD: usize = 1024;

/// Encodes one event's envelope.
pub fn event(ev: &Event, encoding: Encoding, gzip: bool) -> Frame {
    match encoding {
        Encoding::Json => finish(ev.json.as_bytes().to_vec(), false, gzip),
        Encoding::Msgpack => {
            let value: serde_json::Value =
                serde_json::from_str(&ev.json).unwrap_or(serde_json::Value::Null);
            finish(msgpack(&value), true, gzip)
        }
        Encoding::Socketio => finish(socketio(ev).to_string().into_bytes(), false, gzip),
    }
}

/// Seed 000's Socket.IO payload, `{"type":"task_update","data":<task record>}`, with
/// the sequence number beside `type` so a client can resume from it. Seed 003's events
/// (hyphenated names: `job-progress`, `queue-status`, …) carry their payload itself,
/// e.g. `{"jobId":…,"status":…}`, with `seq` added.
fn socketio(ev: &Event) -> serde_json::Value {
    let mut data = serde_json::from_str::<serde_json::Value>(&ev.json)
        .ok()
        .and_then(|mut v| v.get_mut("data").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    if ev.kind.contains('-') {
        if let Some(obj) = data.as_object_mut() {
            obj.insert("seq".into(), ev.seq.into());
            return data;
        }
    }
    serde_json::json!({ "type": ev.kind, "seq": ev.seq, "data": data })
}

/// Seed 001's Socket.IO `batch_update`: `{"updates":[{"event":…,"data":…}],"count":n}`,
/// each `data` the payload the event would have had on its own.
fn socketio_batch(events: &[Event]) -> serde_json::Value {
    let updates: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::json!({ "event": e.kind, "data": socketio(e) }))
        .collect();
    serde_json::json!({
        "type": "batch_update",
        "seq": events.last().map_or(0, |e| e.seq),
        "count": updates.len(),
        "updates": updates,
    })
}

/// Encodes held updates as one `batch_update` message:
/// `{"type":"batch_update","seq":<last>,"count":n,"updates":[<envelope>…]}`.
pub fn batch(events: &[Event], encoding: Encoding, gzip: bool) -> Frame {
    if encoding == Encoding::Socketio {
        // A Socket.IO client that chose binary (`gzip`) gets MessagePack, gzipped over
        // 1 KiB (seed 001); the others get the JSON payload.
        let value = socketio_batch(events);
        return if gzip {
            finish(msgpack(&value), true, true)
        } else {
            finish(value.to_string().into_bytes(), false, false)
        };
    }
    let updates: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap_or(serde_json::Value::Null))
        .collect();
    let value = serde_json::json!({
        "type": "batch_update",
        "seq": events.last().map_or(0, |e| e.seq),
        "count": updates.len(),
        "updates": updates,
    });
    match encoding {
        Encoding::Msgpack => finish(msgpack(&value), true, gzip),
        Encoding::Json | Encoding::Socketio => finish(value.to_string().into_bytes(), false, gzip),
    }
}

fn msgpack(value: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

fn finish(bytes: Vec<u8>, binary: bool, gzip: bool) -> Frame {
    if gzip && bytes.len() > GZIP_THRESHOLD {
        let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 2), Compression::fast());
        if enc.write_all(&bytes).is_ok() {
            if let Ok(compressed) = enc.finish() {
                return Frame {
                    bytes: compressed,
                    gzip: true,
                    binary: true,
                };
            }
        }
    }
    Frame {
        bytes,
        gzip: false,
        binary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::event;
    use std::io::Read;

    #[test]
    fn json_is_the_envelope_as_is() {
        let ev = event(3, "t1", None);
        let f = event_frame(&ev, Encoding::Json, true);
        assert_eq!(f.bytes, ev.json.as_bytes());
        assert!(!f.gzip && !f.binary);
    }

    fn event_frame(ev: &Event, enc: Encoding, gzip: bool) -> Frame {
        super::event(ev, enc, gzip)
    }

    #[test]
    fn msgpack_decodes_to_the_same_value() {
        let ev = event(3, "t1", Some("q"));
        let f = event_frame(&ev, Encoding::Msgpack, false);
        assert!(f.binary);
        let back: serde_json::Value = rmp_serde::from_slice(&f.bytes).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(&ev.json).unwrap()
        );
    }

    #[test]
    fn large_frames_are_gzipped_only_when_asked() {
        let mut ev = event(3, "t1", None);
        ev.json = serde_json::json!({ "seq": 3, "data": "x".repeat(4000) }).to_string();
        let plain = event_frame(&ev, Encoding::Json, false);
        assert!(!plain.gzip);
        let small = event_frame(&event(1, "a", None), Encoding::Json, true);
        assert!(!small.gzip, "under 1 KiB stays plain");
        let z = event_frame(&ev, Encoding::Json, true);
        assert!(z.gzip && z.bytes.len() < 1000);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z.bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, ev.json);
    }

    #[test]
    fn socketio_is_seed_000s_payload_with_the_sequence() {
        let ev = event(7, "t1", Some("q"));
        let f = event_frame(&ev, Encoding::Socketio, false);
        assert!(!f.binary);
        let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "type": "task_update", "seq": 7, "data": { "id": "t1", "queue": "q" } })
        );
    }

    #[test]
    fn seed_003_events_carry_their_payload_itself() {
        let mut ev = event(9, "j1", None);
        ev.kind = "job-progress".into();
        ev.json =
            serde_json::json!({ "seq": 9, "data": { "jobId": "j1", "progress": 40 } }).to_string();
        let f = event_frame(&ev, Encoding::Socketio, false);
        let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "jobId": "j1", "progress": 40, "seq": 9 })
        );
    }

    #[test]
    fn socketio_batch_is_seed_001s_shape() {
        let evs = [event(4, "a", None), event(5, "b", None)];
        let f = batch(&evs, Encoding::Socketio, false);
        let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
        assert_eq!(v["count"], 2);
        assert_eq!(v["seq"], 5);
        assert_eq!(v["updates"][0]["event"], "task_update");
        assert_eq!(v["updates"][1]["data"]["type"], "task_update");
        assert_eq!(v["updates"][1]["data"]["seq"], 5);
        assert_eq!(v["updates"][1]["data"]["data"]["id"], "b");
    }

    #[test]
    fn socketio_batch_for_binary_clients_is_msgpack_gzipped_when_large() {
        let evs: Vec<Event> = (1..=30)
            .map(|i| event(i, &format!("task-{i}"), None))
            .collect();
        let f = batch(&evs, Encoding::Socketio, true);
        assert!(f.binary && f.gzip, "30 updates are over 1 KiB");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&f.bytes[..])
            .read_to_end(&mut raw)
            .unwrap();
        let v: serde_json::Value = rmp_serde::from_slice(&raw).unwrap();
        assert_eq!(v["count"], 30);
        assert_eq!(v["updates"][29]["data"]["data"]["id"], "task-30");
        let small = batch(&evs[..1], Encoding::Socketio, true);
        assert!(small.binary && !small.gzip);
        let v: serde_json::Value = rmp_serde::from_slice(&small.bytes).unwrap();
        assert_eq!(v["count"], 1);
    }

    #[test]
    fn batch_lists_updates_in_order() {
        let evs = [event(4, "a", None), event(5, "b", None)];
        let f = batch(&evs, Encoding::Json, false);
        let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
        assert_eq!(v["type"], "batch_update");
        assert_eq!(v["count"], 2);
        assert_eq!(v["seq"], 5);
        assert_eq!(v["updates"][1]["seq"], 5);
    }
}
