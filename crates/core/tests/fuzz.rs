//! Fuzz targets for the parsers in core that take untrusted bytes: producers' Celery
//! event bodies, tokens, and URL path segments. Each runs for a bounded time (see
//! `vigil_fuzz`) and checks invariants beyond "does not panic".

use vigil_core::auth::{self, Claims, Role, Verifier};
use vigil_core::ids;
use vigil_core::ingest;
use vigil_fuzz::{fuzz, Target};

#[test]
fn celery_event_bodies() {
    let target = Target {
        name: "celery_events",
        seeds: &[
            br#"{"type":"task-received","uuid":"u1","name":"app.add","args":"(1, 2)","kwargs":"{}","retries":0,"eta":null,"hostname":"celery@w1","timestamp":1700000000.5,"root_id":"u1","parent_id":null}"#,
            br#"[{"type":"task-started","uuid":"a","pid":42},{"type":"task-succeeded","uuid":"a","result":"3","runtime":0.01}]"#,
            br#"{"type":"task-progress","uuid":"j","progress":40,"totalBatches":10,"completedBatches":4,"estimatedTimeRemaining":12.5}"#,
            br#"{"type":"worker-heartbeat","hostname":"celery@w1","freq":2.0,"active":1,"processed":10,"loadavg":[0.1,0.2,0.3],"sw_ident":"py-celery"}"#,
            br#"{"type":"queue-stats","queue":"celery","messages":3,"consumers":1}"#,
            br#"{"type":"task-failed","uuid":"b","exception":"ValueError('x')","traceback":"Traceback..."}"#,
            br#"{"type":"task-custom-thing","uuid":"c","extra":{"nested":[1,2,{"k":"v"}]}}"#,
        ],
        dictionary: &[
            b"\"type\":",
            b"\"uuid\":",
            b"\"hostname\":",
            b"\"timestamp\":",
            b"\"progress\":",
            b"\"retries\":",
            b"null",
            b"true",
            b"-1",
            b"1e308",
            b"1e999",
            b"-0",
            b"\"\"",
            b"\"\\u0000\"",
            b"\"\\ud800\"",
            b"[]",
            b"{}",
            b"\"task-sent\"",
            b"\"worker-offline\"",
            b"\"system-metrics\"",
            b"18446744073709551616",
            b"\"..\"",
            b"\"\xc3\x28\"",
        ],
    };
    fuzz(&target, |body| {
        if let Err(e) = ingest::parse_body(body) {
            assert!((400..500).contains(&e.status), "{e:?}");
            let rendered: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(rendered["error"]["status"], e.status);
        }
    });
}

#[test]
fn tokens() {
    const SECRET: &str = "fuzz-secret";
    let claims = Claims::new("alice", Role::Admin, 1_000, 1_000_000);
    let good = auth::sign(&claims, SECRET.as_bytes());
    let verifier = Verifier::hs256(SECRET).unwrap();
    let target = Target {
        name: "jwt",
        seeds: &[good.as_bytes(), b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."],
        dictionary: &[
            b".",
            b"eyJ",
            b"==",
            b"-",
            b"_",
            b"AAAA",
            b"eyJhbGciOiJIUzI1NiJ9",
        ],
    };
    fuzz(&target, |bytes| {
        let Ok(token) = std::str::from_utf8(bytes) else {
            return;
        };
        // Nobody without the secret can make a token that verifies: whatever verifies
        // carries exactly the signed claims (only the signature's encoding may vary).
        if let Ok(c) = verifier.verify(token, 2_000) {
            assert_eq!(c, claims, "{token}");
        }
        let _ = auth::bearer(Some(token));
    });
}

#[test]
fn path_segments() {
    let target = Target {
        name: "path_segments",
        seeds: &[
            b"a%2Fb",
            b"%E4%BB%BB%20x",
            b"celery%40w1",
            b"plain-id",
            b"..%2Fup",
        ],
        dictionary: &[
            b"%", b"%2", b"%2F", b"%25", b"%FF", b"%C3%A9", b"+", b"..", b"%00",
        ],
    };
    fuzz(&target, |bytes| {
        let Ok(segment) = std::str::from_utf8(bytes) else {
            return;
        };
        if let Some(id) = ids::decode_segment(segment) {
            // What decodes encodes back to a segment that decodes to the same id.
            let again = ids::encode_segment(&id);
            assert_eq!(ids::decode_segment(&again).as_deref(), Some(id.as_str()));
            let _ = ids::check(&id);
        }
    });
}
