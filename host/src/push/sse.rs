//! `GET /events`: Server-Sent Events. Each message carries `id: <seq>` and
//! `event: <name>`; heartbeats are comment lines. A client that reconnects with
//! `Last-Event-ID` (or `?since=`) first gets what it missed (see [`super::resume`]).

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use http::HeaderMap;
use vigil_core::error::ApiError;

use super::resume::{self, Catchup};
use super::PushQuery;
use crate::error::HttpError;
use crate::hub::{Outgoing, Subscription};
use crate::server::AppState;

/// Opens an SSE stream for a reader.
pub async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
) -> Result<Response, HttpError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = super::authenticate(header, &query, app.secret())?;
    let spec = super::spec(&claims, &query, false)?;
    let sub = app
        .hub()
        .subscribe(spec)
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    let hello = SseEvent::default()
        .event("connected")
        .data(serde_json::json!({ "subscriber": sub.id, "user": claims.sub }).to_string());
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let mut first = vec![hello];
    let mut upto = 0;
    if let Some(since) = resume::cursor(last_event_id, query.since) {
        match resume::catch_up(app.kv(), app.hub(), &sub, since).await {
            Ok(Catchup::Replay { frames, upto: head }) => {
                first.extend(frames.iter().map(to_sse));
                upto = head;
            }
            Ok(Catchup::Reset { seq }) => first.push(
                SseEvent::default()
                    .event("reset")
                    .data(serde_json::json!({ "seq": seq }).to_string()),
            ),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
                return Err(ApiError::unavailable("the event log is unavailable").into());
            }
        }
    }
    let stream = stream::iter(first.into_iter().map(Ok)).chain(messages(sub, upto));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(app.push().heartbeat))
        .into_response())
}

/// The subscription's messages (skipping those up to `upto`, already replayed), then a
/// `disconnect` event if the hub closed it.
fn messages(sub: Subscription, upto: u64) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(Some(sub), move |sub| async move {
        let mut sub = sub?;
        let mut next = sub.rx.recv().await;
        while next.as_ref().is_some_and(|m| m.seq <= upto) {
            next = sub.rx.recv().await;
        }
        match next {
            Some(msg) => Some((Ok(to_sse(&msg)), Some(sub))),
            None => {
                let reason = sub
                    .closed
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "server closed".into());
                let bye = SseEvent::default()
                    .event("disconnect")
                    .data(serde_json::json!({ "reason": reason }).to_string());
                Some((Ok(bye), None))
            }
        }
    })
}

fn to_sse(msg: &Outgoing) -> SseEvent {
    SseEvent::default()
        .id(msg.seq.to_string())
        .event(&*msg.kind)
        .data(String::from_utf8_lossy(&msg.frame.bytes))
}
