//! A long-poll served with parking ([`crate::park`]): the component is asked with
//! `vigil-park: park`; while it answers "park", the request waits in the lot holding
//! no instance, and is asked again (once for its whole group) when an event may
//! concern it, or with `vigil-park: now` when its wait is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::{BodyExt, Limited};
use vigil_core::error::ApiError;
use vigil_rules::park::{Mode, Park, PARK_HEADER, SINCE_HEADER};

use super::HttpComponents;
use crate::park::{Answer, ParkingLot};

/// Largest answer body shared among a group's members (the feed's largest page is a
/// few MiB).
const MAX_SHARED_BODY: usize = 64 << 20;

impl HttpComponents {
    /// Serves long-poll `req` with component `component`, parking it while it waits.
    pub(super) async fn serve_parked(
        &self,
        lot: &Arc<ParkingLot>,
        req: http::Request<Body>,
        component: usize,
    ) -> Result<axum::response::Response, ApiError> {
        let arrived = Instant::now();
        // A long-poll is a GET: its body, if any, means nothing and is not kept.
        let parts = compact(req.into_parts().0)?;
        // Boxed: a parked request's future then holds no room for a component call.
        let ask = |mode, since| {
            lot.count_call();
            Box::pin(self.ask(&parts, component, mode, since))
        };
        let mut answer = ask(Mode::MayPark, None).await?;
        // Where the request reads from when asked again: its first park answer's head.
        let mut since = None;
        let mut deadline = None;
        // Whether parking checks for events the component may have missed: not right
        // after an answer asked for that reason (no loop if the log went back).
        let mut stale_check = true;
        loop {
            let park = match answer {
                Answer::Final(status, headers, body) => return Ok(response(status, headers, body)),
                Answer::Park(park) => park,
            };
            let since = *since.get_or_insert(park.after);
            if lot.is_closed() {
                return answer_now(ask(Mode::AnswerNow, Some(since)).await?);
            }
            // The component's wait, never past the longest the API allows.
            let wait = Duration::from_millis(park.timeout_ms).min(super::LONGEST_WAIT);
            let deadline = *deadline.get_or_insert(arrived + wait);
            // One answer serves requests that ask the same from the same place.
            let group = format!("{} {} {} {since}", parts.method, parts.uri, park.principal);
            let ticket = lot.park(&group, &park, stale_check)?;
            answer = tokio::select! {
                wake = ticket.woken() => {
                    stale_check = !wake.was_stale();
                    wake.answer.get_or_try_init(|| ask(Mode::MayPark, Some(since))).await?.clone()
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    drop(ticket);
                    let shared = lot.timeouts.cell(&group, deadline);
                    return answer_now(shared.get_or_try_init(|| ask(Mode::AnswerNow, Some(since))).await?.clone());
                }
            };
        }
    }

    /// Asks the component, allowing it `mode`, reading from `since` if the request
    /// names no cursor; reads a park answer or the whole answer.
    async fn ask(
        &self,
        parts: &http::request::Parts,
        component: usize,
        mode: Mode,
        since: Option<u64>,
    ) -> Result<Answer, ApiError> {
        let mut req = http::Request::from_parts(parts.clone(), Body::empty());
        let headers = req.headers_mut();
        headers.insert(PARK_HEADER, http::HeaderValue::from_static(mode.as_str()));
        if let Some(since) = since {
            headers.insert(SINCE_HEADER, http::HeaderValue::from(since));
        }
        let (head, body) = self.invoke(req, component, true).await?.into_parts();
        let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(park) = Park::read(head.status.as_u16(), header) {
            return Ok(Answer::Park(park));
        }
        let body = Limited::new(body, MAX_SHARED_BODY)
            .collect()
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading a long-poll's answer failed");
                ApiError::internal("the component failed to handle the request")
            })?
            .to_bytes();
        Ok(Answer::Final(head.status, head.headers, body))
    }
}

/// What a parked request keeps of its head: method, URI and headers in allocations of
/// their own. hyper's parsed values are slices of the connection's read buffer, which
/// they would keep alive next to the one hyper takes for its next read (8 KiB each).
fn compact(parts: http::request::Parts) -> Result<http::request::Parts, ApiError> {
    let uri = http::Uri::try_from(parts.uri.to_string())
        .map_err(|_| ApiError::bad_request("the request's URI does not parse"))?;
    let mut req = http::Request::builder()
        .method(parts.method)
        .uri(uri)
        .version(parts.version)
        .body(())
        .map_err(|_| ApiError::bad_request("the request's head does not parse"))?;
    let headers = req.headers_mut();
    headers.reserve(parts.headers.len());
    for (name, value) in &parts.headers {
        let name = http::HeaderName::from_bytes(name.as_str().as_bytes());
        let value = http::HeaderValue::from_bytes(value.as_bytes());
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    Ok(req.into_parts().0)
}

/// The answer to a call with `vigil-park: now`, which must not park.
fn answer_now(answer: Answer) -> Result<axum::response::Response, ApiError> {
    match answer {
        Answer::Final(status, headers, body) => Ok(response(status, headers, body)),
        Answer::Park(_) => Err(ApiError::internal(
            "the component parked a long-poll whose wait is over",
        )),
    }
}

fn response(
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    let mut resp = axum::response::Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
