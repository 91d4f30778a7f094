//! How a long-poll waits when it has nothing to answer yet. Under a host that parks
//! long-polls (`vigil-park: park`, see [`vigil_rules::park`]) it answers at once with a
//! park answer and holds no instance while the host waits; told `vigil-park: now`, its
//! wait is over. Without the header (`spin up`) it waits here, looking again every
//! [`POLL_EVERY`] until its timeout.

use std::time::{Duration, Instant};

use spin_sdk::http::Response;
use vigil_core::auth::Claims;
use vigil_rules::park::{Interest, Mode, Park, PARK_STATUS};

use crate::request::Req;

/// How often a long-poll looks again when it waits by itself: the answer is at most
/// this late (seed 000 polled every second; the issue asks for ≤ 100 ms).
pub const POLL_EVERY: Duration = Duration::from_millis(50);
/// Longest a client may ask a long-poll to wait, seconds.
pub const MAX_WAIT_SECS: u64 = 300;

/// A long-poll's wait.
pub struct Wait {
    mode: Option<Mode>,
    timeout: Duration,
    deadline: Instant,
}

/// What a long-poll with nothing to answer does next.
pub enum Next {
    /// Give the timeout answer now.
    Answer,
    /// Answer this (a park answer) and let the host wait.
    Park(Response),
    /// Look again (it has slept [`POLL_EVERY`]).
    LookAgain,
}

impl Wait {
    /// The wait `req` asks for: `timeout_secs` from now.
    pub fn new(req: &Req, timeout_secs: u64) -> Self {
        let timeout = Duration::from_secs(timeout_secs);
        Self {
            mode: req.park,
            timeout,
            deadline: Instant::now() + timeout,
        }
    }

    /// Nothing to answer after the events up to `after`: the timeout answer, a park
    /// answer for `claims` woken by `interest`, or a look again after a sleep.
    pub fn next(&self, after: u64, interest: Interest, claims: &Claims) -> Next {
        if self.mode == Some(Mode::AnswerNow) || Instant::now() >= self.deadline {
            return Next::Answer;
        }
        if self.mode == Some(Mode::MayPark) {
            return Next::Park(park_answer(&Park {
                after,
                timeout_ms: self.timeout.as_millis() as u64,
                principal: vigil_rules::park::principal(claims.role.as_str(), &claims.sub),
                interest,
            }));
        }
        std::thread::sleep(POLL_EVERY);
        Next::LookAgain
    }
}

fn park_answer(park: &Park) -> Response {
    let mut answer = Response::builder();
    answer.status(PARK_STATUS);
    for (name, value) in park.headers() {
        answer.header(name, value);
    }
    answer.build()
}
