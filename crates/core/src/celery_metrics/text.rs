//! Prometheus' text exposition format, for [`super::CeleryMetrics`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Labels, BUCKETS};

#[derive(Debug, Clone, Default)]
pub(super) struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub(super) fn observe(&mut self, v: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn line(out: &mut String, name: &str, labels: &[(&str, String)], value: &str) {
    let l: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", l.join(","));
}

pub(super) fn gauge<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl Iterator<Item = (&'a String, u64)>,
) {
    header(out, name, "gauge", help);
    for (k, v) in values {
        line(out, name, &[(label, k.clone())], &v.to_string());
    }
}

pub(super) fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    series: &BTreeMap<Labels, Histogram>,
) {
    header(out, name, "histogram", help);
    for (labels, h) in series {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let mut l = labels.clone();
            l.push(("le", bound.to_string()));
            line(out, &format!("{name}_bucket"), &l, &cumulative.to_string());
        }
        let mut l = labels.clone();
        l.push(("le", "+Inf".to_owned()));
        line(out, &format!("{name}_bucket"), &l, &h.count.to_string());
        line(out, &format!("{name}_sum"), labels, &h.sum.to_string());
        line(out, &format!("{name}_count"), labels, &h.count.to_string());
    }
}
