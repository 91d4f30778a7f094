//! The benchmark's event ids: event `n` is published as task `lg<n>`, and every
//! transport's client finds the ids in what it receives.

/// Every benchmark event id in `body`: the numbers `n` of `"id":"lg<n>"` (any spacing
/// after the colon, as Python's JSON writes it). One Vigil `batch_update` carries many.
pub fn event_ids(body: &str) -> impl Iterator<Item = u64> + '_ {
    body.match_indices("\"id\":").filter_map(move |(i, m)| {
        let rest = body[i + m.len()..].trim_start();
        let digits = rest.strip_prefix("\"lg")?;
        let end = digits.find('"')?;
        digits[..end].parse().ok()
    })
}

/// The id of event `n`, as published.
pub fn id_of(n: u64) -> String {
    format!("lg{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_single_events_and_batches() {
        let one = r#"["task_update",{"type":"task_update","seq":3,"data":{"id":"lg42","root_id":"lg1","uuid":"lg9"}}]"#;
        assert_eq!(event_ids(one).collect::<Vec<_>>(), [42]);
        let python = r#"["task_update", {"id": "lg5", "name": "x"}]"#;
        assert_eq!(event_ids(python).collect::<Vec<_>>(), [5]);
        let batch = r#"["batch_update",{"updates":[{"data":{"data":{"id":"lg1"}}},{"data":{"data":{"id":"lg2"}}}],"count":2}]"#;
        assert_eq!(event_ids(batch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(event_ids(r#"{"id":"other"}"#).count(), 0);
    }

    #[test]
    fn ids_are_numbered() {
        assert_eq!(id_of(3), "lg3");
    }
}
