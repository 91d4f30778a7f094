//! The dispatch component's view of events, and its frames as shared payloads.

use std::sync::Arc;

use super::{Payload, Published};
use crate::dispatch::{self, Frame};

pub(super) fn wit_event(p: &Published) -> dispatch::Event {
    let e = &p.event;
    dispatch::Event {
        seq: e.seq,
        kind: e.kind.clone(),
        topic: e.topic.clone(),
        key: e.key.clone(),
        owner: e.owner.clone(),
        queue: e.queue.clone(),
        state: e.state.clone(),
        json: p.json.clone(),
    }
}

/// The plan's frames, each made a shared payload on its first delivery (a frame is
/// one event in one encoding: its kind and seq are that event's).
pub(super) struct Frames {
    frames: Vec<(bytes::Bytes, bool)>,
    made: Vec<Option<Arc<Payload>>>,
}

impl Frames {
    pub(super) fn new(frames: Vec<Frame>) -> Self {
        Self {
            made: vec![None; frames.len()],
            frames: frames
                .into_iter()
                .map(|f| (f.bytes.into(), f.binary))
                .collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Each frame's size in bytes.
    pub(super) fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.frames.iter().map(|(b, _)| b.len())
    }

    /// Frame `i` as the payload of an event `kind` numbered `seq`.
    pub(super) fn payload(&mut self, i: usize, kind: &Arc<str>, seq: u64) -> Option<Arc<Payload>> {
        let (bytes, binary) = self.frames.get(i)?;
        let made = self.made[i].get_or_insert_with(|| {
            Arc::new(Payload::new(kind.clone(), seq, bytes.clone(), *binary))
        });
        Some(made.clone())
    }
}

/// The dispatch component's conflation identity of an event: held updates are matched
/// by it when the component says `conflate`.
pub(super) fn conflation_key(e: &vigil_core::event::Event) -> Option<String> {
    vigil_rules::conflation_key(&e.kind, e.key.as_deref())
}
