//! HTTP long-polling: `GET` opens a session (the open packet is the answer) or waits for
//! what the session's queue has, `POST` carries the client's packets. A session's
//! heartbeat runs on its own task while it polls; a WebSocket upgrade takes it over.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use super::packet::{self, NOOP};
use super::server::Refused;
use super::session::{Session, Transport};
use super::sio;
use super::{Handler, Server};
use crate::conn::Outgoing;

/// Most queued messages one polling response carries.
const MAX_PER_RESPONSE: usize = 256;

fn text(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=UTF-8")
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

/// `GET` without `sid`: a new session on long-polling.
pub fn open<H: Handler>(server: &Arc<Server<H>>) -> Response<Full<Bytes>> {
    let session = server.create(Transport::Polling);
    let c = &server.config;
    let open = packet::open(
        &session.sid,
        true,
        c.ping_interval.as_millis() as u64,
        c.ping_timeout.as_millis() as u64,
        c.max_payload,
    );
    tokio::spawn(heartbeat(server.clone(), session));
    text(open)
}

/// Pings a polling session every interval (or every timeout, if that is longer: the
/// pong of one ping is checked before the next); closes it when a pong does not come
/// in time. Ends once the session is on WebSocket (its driver pings) or closed.
async fn heartbeat<H: Handler>(server: Arc<Server<H>>, session: Arc<Session<H>>) {
    let c = &server.config;
    let mut next = tokio::time::Instant::now() + c.ping_interval;
    loop {
        tokio::time::sleep_until(next).await;
        if !matches!(
            session.transport(),
            Transport::Polling | Transport::Upgrading
        ) {
            return;
        }
        let pinged = tokio::time::Instant::now();
        next = tokio::time::Instant::now() + c.ping_interval;
        let _ = session
            .queue
            .push_control(Outgoing::Text(Bytes::from_static(packet::PING)));
        tokio::time::sleep(c.ping_timeout).await;
        match session.transport() {
            Transport::Polling | Transport::Upgrading if session.seen() < pinged => {
                return session.close(&server, "ping timeout");
            }
            Transport::Polling | Transport::Upgrading => {}
            _ => return,
        }
    }
}

/// `GET` with `sid`: waits for something to send, and sends all of it.
pub async fn poll<H: Handler>(
    server: &Arc<Server<H>>,
    session: &Arc<Session<H>>,
) -> Response<Full<Bytes>> {
    match session.transport() {
        Transport::Polling => {}
        Transport::Upgrading => return text(NOOP),
        _ => return Refused::BadRequest.response(),
    }
    if session.polling.swap(true, Ordering::AcqRel) {
        // Two polls at once: the protocol says the session is broken.
        session.close(server, "multiple long-polling requests");
        return Refused::BadRequest.response();
    }
    let upgrading = std::future::poll_fn(|cx| match session.transport() {
        Transport::Polling => session.queue.poll_ready(cx).map(|()| false),
        // A session closed while this poll waited: the poll still carries what was
        // queued before the close (the reason, the DISCONNECTs), or the close itself.
        Transport::Closed => std::task::Poll::Ready(false),
        Transport::Upgrading | Transport::WebSocket => std::task::Poll::Ready(true),
    })
    .await;
    let body = if upgrading {
        Bytes::from_static(NOOP)
    } else {
        drain(server, session)
    };
    session.polling.store(false, Ordering::Release);
    text(body)
}

/// Everything queued, as one body; a closed queue ends the session with the client
/// told so: a DISCONNECT per namespace (the client then closes the session itself), or
/// Engine.IO's close when no namespace is joined. Not both: the client handles a
/// Socket.IO packet a tick after the Engine.IO packet that carried it, so a close in
/// the same body would overtake the DISCONNECTs.
fn drain<H: Handler>(server: &Server<H>, session: &Session<H>) -> Bytes {
    let mut items = Vec::new();
    let mut body = Vec::new();
    if session.queue.try_drain(&mut items, MAX_PER_RESPONSE) == Some(0) {
        for packet in session.farewell() {
            packet::append(&mut body, &packet);
        }
        if body.is_empty() {
            packet::append(&mut body, b"1");
        }
        let reason = session.queue.closed().unwrap_or_default();
        session.close(server, &reason);
        return body.into();
    }
    let prefixes = session.prefixes();
    for item in &items {
        encode(&mut body, item, &prefixes);
    }
    for item in &items {
        if let Outgoing::End { ns, reason, .. } = item {
            session.leave_slot(server, *ns, reason);
        }
    }
    body.into()
}

/// Appends one queued message as Engine.IO packets.
fn encode(body: &mut Vec<u8>, item: &Outgoing, prefixes: &[Arc<str>]) {
    match item {
        Outgoing::Payload { ns, payload } => {
            let prefix = prefixes.get(usize::from(*ns)).map_or("", |p| p);
            if payload.binary {
                let head = sio::binary_event_head(prefix, &payload.kind);
                packet::append(body, head.as_bytes());
                packet::append_binary(body, &payload.bytes);
            } else if payload.is_json() {
                let mut packet = sio::event_head(prefix, &payload.kind).into_bytes();
                packet.extend_from_slice(&payload.bytes);
                packet.push(b']');
                packet::append(body, &packet);
            }
        }
        Outgoing::Text(t) => packet::append(body, t),
        Outgoing::Binary(b) => packet::append_binary(body, b),
        Outgoing::End { ns, .. } => {
            let prefix = prefixes.get(usize::from(*ns)).map_or("", |p| p);
            packet::append(body, format!("41{prefix}").as_bytes());
        }
        // WebSocket-only bytes; Engine.IO pings on its own.
        Outgoing::Raw(_) | Outgoing::Heartbeat => {}
    }
}

/// `POST` with `sid`: the client's packets.
pub async fn post<H, B>(
    server: &Arc<Server<H>>,
    session: &Arc<Session<H>>,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    H: Handler,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !matches!(
        session.transport(),
        Transport::Polling | Transport::Upgrading
    ) {
        return Refused::BadRequest.response();
    }
    let body = match Limited::new(req.into_body(), server.config.max_payload)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            session.close(server, "a long-polling body over the size limit");
            return Refused::BadRequest.response();
        }
    };
    let packets = match packet::decode_body(body) {
        Ok(p) => p,
        Err(e) => {
            session.close(server, &format!("parse error: {}", e.0));
            return Refused::BadRequest.response();
        }
    };
    for p in packets {
        if let Err(reason) = session.receive(server, p) {
            session.close(server, &reason);
            break;
        }
    }
    text("ok")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::payload::Payload;

    #[test]
    fn queued_messages_become_packets_of_one_body() {
        let prefixes: Vec<Arc<str>> = vec!["".into(), "/a,".into()];
        let json = Arc::new(Payload::new(
            "task_update".into(),
            1,
            Bytes::from_static(b"{\"x\":1}"),
            false,
        ));
        let binary = Arc::new(Payload::new(
            "batch_update".into(),
            2,
            Bytes::from_static(b"\x01\x02\x03"),
            true,
        ));
        let mut body = Vec::new();
        encode(
            &mut body,
            &Outgoing::Text(Bytes::from_static(b"40{\"sid\":\"s\"}")),
            &prefixes,
        );
        encode(
            &mut body,
            &Outgoing::Payload {
                ns: 1,
                payload: json,
            },
            &prefixes,
        );
        encode(
            &mut body,
            &Outgoing::Payload {
                ns: 0,
                payload: binary,
            },
            &prefixes,
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "40{\"sid\":\"s\"}\x1e42/a,[\"task_update\",{\"x\":1}]\x1e451-[\"batch_update\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID"
        );
    }
}
