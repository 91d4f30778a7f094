//! `GET /events`: Server-Sent Events. Each message carries `id: <seq>` and
//! `event: <name>`; heartbeats are comment lines.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use http::HeaderMap;
use vigil_core::error::ApiError;

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
    let stream = stream::once(async move { Ok(hello) }).chain(messages(sub));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(app.push().heartbeat))
        .into_response())
}

/// The subscription's messages, then a `disconnect` event if the hub closed it.
fn messages(sub: Subscription) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(Some(sub), |sub| async move {
        let mut sub = sub?;
        match sub.rx.recv().await {
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
