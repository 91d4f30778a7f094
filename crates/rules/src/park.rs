//! Parked long-polls: what the host and a component say to each other so that a
//! waiting long-poll holds no component instance (issue 14).
//!
//! The host that can park sends [`PARK_HEADER`] with every long-poll it hands a
//! component (after removing any copy the client sent): [`Mode::MayPark`] while the
//! client's wait lasts, [`Mode::AnswerNow`] once it is over. A component that would wait
//! answers [`MayPark`](Mode::MayPark) at once with a *park answer* ([`Park`]: status
//! [`PARK_STATUS`] and the `vigil-park-*` headers) instead of sleeping; the host keeps
//! the request, with no instance, until an event it could care about is published
//! ([`Park::after`], [`Interest`]) or the wait ends, then asks again. Without the
//! header (`spin up`), the component waits by itself as before.

use alloc::format;
use alloc::string::String;

/// Request header the host sets on long-polls it can park (value: a [`Mode`]).
pub const PARK_HEADER: &str = "vigil-park";
/// Request header the host sets when it asks again about a parked request: the
/// [`Park::after`] of its first park answer. A request that named no cursor (the feed
/// without `since`: "from now") reads from there, so an event published while it was
/// parked is not skipped for having become part of "now".
pub const SINCE_HEADER: &str = "vigil-park-since";
/// Status of a park answer (never sent to a client).
pub const PARK_STATUS: u16 = 204;
/// Park answer header: wake when an event numbered above this is published.
pub const AFTER_HEADER: &str = "vigil-park-after";
/// Park answer header: how long the client asked to wait, milliseconds.
pub const TIMEOUT_HEADER: &str = "vigil-park-timeout-ms";
/// Park answer header: the verified principal ([`principal`]); requests with the same
/// method, path, query and principal get the same answer, so one call serves them all.
pub const PRINCIPAL_HEADER: &str = "vigil-park-principal";
/// Park answer header, optional: the [`Interest`] narrowing what wakes the request.
pub const INTEREST_HEADER: &str = "vigil-park-interest";

/// What the host allows a component to do with a long-poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer if there is something to answer, else park.
    MayPark,
    /// The wait is over: answer now (the timeout answer if nothing came).
    AnswerNow,
}

impl Mode {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::MayPark => "park",
            Mode::AnswerNow => "now",
        }
    }

    /// Reads a header value; anything else is no mode (wait as without a host).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "park" => Some(Mode::MayPark),
            "now" => Some(Mode::AnswerNow),
            _ => None,
        }
    }
}

/// A park answer: wake me for an event after `after` that matches `interest`, or when
/// `timeout_ms` have passed since the request came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    /// The last sequence number the answer took into account.
    pub after: u64,
    /// The client's wait, milliseconds.
    pub timeout_ms: u64,
    /// Who asked, verified ([`principal`]).
    pub principal: String,
    /// Which events may change the answer.
    pub interest: Interest,
}

impl Park {
    /// The answer's headers, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (AFTER_HEADER, format!("{}", self.after)),
            (TIMEOUT_HEADER, format!("{}", self.timeout_ms)),
            (PRINCIPAL_HEADER, self.principal.clone()),
            (INTEREST_HEADER, self.interest.to_header()),
        ]
    }

    /// Reads a park answer from a response's status and headers (`header` looks one up
    /// by name); `None` when it is not one (an answer for the client).
    pub fn read<'a>(status: u16, header: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        if status != PARK_STATUS {
            return None;
        }
        Some(Self {
            after: header(AFTER_HEADER)?.parse().ok()?,
            timeout_ms: header(TIMEOUT_HEADER)?.parse().ok()?,
            principal: String::from(header(PRINCIPAL_HEADER)?),
            interest: Interest::parse(header(INTEREST_HEADER).unwrap_or("")),
        })
    }
}

/// Which published events may change a parked long-poll's answer. Only a narrowing:
/// the component decides when it is asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Any event.
    Any,
    /// Events about this subject (the event's conflation key: a task or job id).
    Subject(String),
    /// Events on these topics (comma-separated, as the feed's `topics`).
    Topics(String),
}

impl Interest {
    /// The header value: empty, `subject:<id>` or `topics:<a,b>`.
    pub fn to_header(&self) -> String {
        match self {
            Interest::Any => String::new(),
            Interest::Subject(s) => format!("subject:{s}"),
            Interest::Topics(t) => format!("topics:{t}"),
        }
    }

    /// Reads a header value; anything unknown is [`Interest::Any`] (wake more, never
    /// less).
    pub fn parse(value: &str) -> Self {
        if let Some(s) = value.strip_prefix("subject:") {
            Interest::Subject(String::from(s))
        } else if let Some(t) = value.strip_prefix("topics:").filter(|t| !t.is_empty()) {
            Interest::Topics(String::from(t))
        } else {
            Interest::Any
        }
    }

    /// Whether an event on `topic`, about subject `key`, may change the answer.
    pub fn matches(&self, topic: &str, key: Option<&str>) -> bool {
        match self {
            Interest::Any => true,
            Interest::Subject(s) => key == Some(s.as_str()),
            Interest::Topics(t) => t.split(',').any(|t| t == topic),
        }
    }
}

/// The principal key of a verified caller: its role and subject, escaped so that it is
/// a header value and two callers never share one.
pub fn principal(role: &str, sub: &str) -> String {
    let mut key = format!("{role}:");
    for b in sub.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'@' | b'-' => {
                key.push(b as char)
            }
            _ => key.push_str(&format!("%{b:02X}")),
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn park(interest: Interest) -> Park {
        Park {
            after: 41,
            timeout_ms: 60_000,
            principal: principal("admin", "alice"),
            interest,
        }
    }

    #[test]
    fn a_park_answer_reads_back_from_its_headers() {
        for interest in [
            Interest::Any,
            Interest::Subject("job-1".into()),
            Interest::Topics("commands,jobs".into()),
        ] {
            let p = park(interest);
            let headers = p.headers();
            let get = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| &**v);
            assert_eq!(Park::read(PARK_STATUS, get), Some(p.clone()));
            assert_eq!(Park::read(200, get), None, "only a 204 parks");
        }
        assert_eq!(Park::read(PARK_STATUS, |_| None), None, "headers missing");
    }

    #[test]
    fn interests_narrow_by_subject_or_topic() {
        assert!(Interest::Any.matches("x", None));
        let job = Interest::Subject("j".into());
        assert!(job.matches("celery:tasks", Some("j")));
        assert!(!job.matches("celery:tasks", Some("k")) && !job.matches("t", None));
        let topics = Interest::parse("topics:commands,jobs");
        assert!(topics.matches("jobs", None) && !topics.matches("celery:tasks", None));
        assert_eq!(Interest::parse("topics:"), Interest::Any);
        assert_eq!(Interest::parse("what"), Interest::Any);
    }

    #[test]
    fn principals_are_escaped_and_distinct() {
        assert_eq!(principal("admin", "alice"), "admin:alice");
        assert_eq!(principal("viewer", "a:b c"), "viewer:a%3Ab%20c");
        assert_ne!(principal("viewer", "a:b"), principal("viewer:a", "b"));
        assert_eq!(Mode::parse(Mode::MayPark.as_str()), Some(Mode::MayPark));
        assert_eq!(Mode::parse("1"), None);
    }
}
