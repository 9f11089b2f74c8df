//! The checks of one reader's view: (c) order, duplicates and holes, each hole either signalled
//! or a seq nobody was acknowledged, shown or stored; (e) a TCP join's history against the
//! store; and [`against_store`], one stream held against the store's tail.

use std::collections::{BTreeSet, HashSet};

use super::{Findings, RoomCheck};
use crate::support::record::{Seen, View};

impl RoomCheck<'_> {
    /// (c)
    pub(super) fn view_order(&self, view: &View, findings: &mut Findings) {
        let (mut last, mut instance) = (None::<u64>, "");
        let mut covered: Vec<(u64, u64)> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        // Seqs shown again, reported as runs (one resume can repeat many).
        let mut twice: Vec<(u64, String)> = Vec::new();
        for item in &view.items {
            match item {
                Seen::Open { instance: i, after } => {
                    instance = i;
                    if after.is_none() {
                        (last, covered) = (None, Vec::new());
                        seen.clear();
                    } else {
                        last = *after;
                    }
                }
                Seen::Reset { .. } => {
                    (last, covered) = (None, Vec::new());
                    seen.clear();
                }
                Seen::Truncated { first } => {
                    covered.push((last.map_or(1, |l| l + 1), first.saturating_sub(1)));
                }
                Seen::Gap { from, to } => covered.push((*from, *to)),
                Seen::HistoryEnd => {}
                Seen::Message { seq, text } => {
                    let Some(seq) = seq.or_else(|| self.seq_of(text)) else {
                        continue;
                    };
                    let who = format!("{} on {instance}", view.reader);
                    if let Some(l) = last {
                        if seq <= l && seen.contains(&seq) {
                            twice.push((seq, who));
                            continue;
                        }
                        if seq <= l {
                            let what = format!("out of order: {seq} after {l} ({text:?})");
                            self.anomaly(findings, Some(seq), &who, what);
                            continue;
                        }
                        let holes: Vec<u64> = (l + 1..seq)
                            .filter(|h| !covered.iter().any(|(a, b)| a <= h && h <= b))
                            .filter(|h| self.by_seq.contains_key(h))
                            .collect();
                        for (from, to) in ranges(&holes) {
                            let what = format!(
                                "skipped {} silently (saw {l}, then {seq}); {}",
                                span(from, to),
                                self.known_as(from)
                            );
                            self.anomaly(findings, Some(from), &who, what);
                        }
                    }
                    seen.insert(seq);
                    last = Some(seq);
                }
            }
        }
        let mut at = 0;
        while at < twice.len() {
            let (from, who) = &twice[at];
            let mut to = *from;
            while at + 1 < twice.len() && twice[at + 1].0 == to + 1 && twice[at + 1].1 == *who {
                at += 1;
                to += 1;
            }
            let what = format!("{} shown twice", span(*from, to));
            self.anomaly(findings, Some(*from), who, what);
            at += 1;
        }
    }

    /// Why a skipped seq is a real message: where it is known from.
    fn known_as(&self, seq: u64) -> String {
        match self.by_seq.get(&seq).and_then(|texts| texts.iter().next()) {
            Some((text, source)) => format!("{seq} is {text:?} per {source}"),
            None => String::new(),
        }
    }

    /// (e)
    pub(super) fn join_history(&self, view: &View, findings: &mut Findings) {
        let (mut history, mut instance, mut open) = (Vec::new(), "", false);
        // Holes the history itself tells of (a seq given up on before it arrived, written
        // behind): not among the last messages the reader can be shown, as in check (c).
        let mut told = Vec::new();
        for item in &view.items {
            match item {
                Seen::Open { instance: i, .. } => (instance, open) = (i, true),
                Seen::Message { text, .. } if open => history.push(text.as_str()),
                Seen::Gap { from, to } if open => told.push(*from..=*to),
                Seen::HistoryEnd => break,
                _ => {}
            }
        }
        let Some(seqs) = history
            .iter()
            .map(|t| self.stored.get(t).copied())
            .collect::<Option<Vec<u64>>>()
        else {
            return; // a message not stored: (d) reported it, or it is a write-behind loss
        };
        let Some(&upto) = seqs.last() else {
            return;
        };
        let before: Vec<u64> = self
            .rows
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s <= upto && !told.iter().any(|hole| hole.contains(s)))
            .collect();
        let want = &before[before.len().saturating_sub(self.capacity)..];
        if want != seqs.as_slice() {
            let missing: Vec<u64> = want.iter().filter(|s| !seqs.contains(s)).copied().collect();
            let extra: Vec<u64> = seqs.iter().filter(|s| !want.contains(s)).copied().collect();
            let what = format!(
                "join history ({} messages up to {upto}) differs from the store's last {}: \
                 missing {missing:?}, not in the store's last {extra:?}",
                seqs.len(),
                want.len()
            );
            let who = format!("{} on {instance}", view.reader);
            self.anomaly(findings, seqs.first().copied(), &who, what);
        }
    }
}

/// Consecutive runs of `seqs` as (first, last).
pub(super) fn ranges(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some((_, to)) if *to + 1 == s => *to = s,
            _ => out.push((s, s)),
        }
    }
    out
}

pub(super) fn span(from: u64, to: u64) -> String {
    if from == to {
        format!("seq {from}")
    } else {
        format!("seqs {from}..={to}")
    }
}

/// What is wrong with one stream's seqs (`seqs`, in the order shown) against the store's `rows`
/// from the stream's first seq to the store's last: holes, duplicates, steps back, and seqs the
/// store does not hold. Empty when the stream is exactly the store's tail.
pub fn against_store(seqs: &[u64], rows: &[(u64, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(&first) = seqs.first() else {
        return problems;
    };
    let stored: BTreeSet<u64> = rows.iter().map(|(s, _)| *s).collect();
    let shown: BTreeSet<u64> = seqs.iter().copied().collect();
    let holes: Vec<u64> = stored
        .range(first..)
        .filter(|s| !shown.contains(s))
        .copied()
        .collect();
    for (from, to) in ranges(&holes) {
        problems.push(format!("skipped {} (stored)", span(from, to)));
    }
    for pair in seqs.windows(2) {
        if pair[1] == pair[0] {
            problems.push(format!("seq {} shown twice", pair[0]));
        } else if pair[1] < pair[0] {
            problems.push(format!("seq {} shown after {}", pair[1], pair[0]));
        }
    }
    let unstored: Vec<u64> = shown
        .iter()
        .filter(|s| !stored.contains(s))
        .copied()
        .collect();
    if !unstored.is_empty() {
        problems.push(format!("shown but not stored: {unstored:?}"));
    }
    problems
}
