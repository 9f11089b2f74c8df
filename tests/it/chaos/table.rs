//! The report: a table phase x durability x fault kind -> runs, acknowledged messages, messages
//! of unknown outcome, deliveries checked, write-behind losses, anomalies; then how often each
//! fault kind struck; then every anomaly, one line each. A run with several fault kinds counts
//! in each of their rows, and once in its phase and durability's `(all)` row.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::plan::FaultKind;
use super::run::Outcome;

#[derive(Default, Clone, Copy)]
struct Row {
    runs: usize,
    acked: usize,
    unknown: usize,
    deliveries: usize,
    losses: usize,
    anomalies: usize,
}

impl Row {
    fn add(&mut self, outcome: &Outcome) {
        self.runs += 1;
        self.acked += outcome.findings.acked;
        self.unknown += outcome.findings.unknown;
        self.deliveries += outcome.findings.deliveries;
        self.losses += outcome.findings.losses;
        self.anomalies += anomalies(outcome);
    }
}

/// Anomalies of a run, a fault left unhealed counting as one.
pub fn anomalies(outcome: &Outcome) -> usize {
    outcome.findings.anomalies.len() + usize::from(outcome.trouble.is_some())
}

/// The whole report; see the module docs.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut rows: BTreeMap<(u8, &str, String), Row> = BTreeMap::new();
    let mut struck: BTreeMap<FaultKind, usize> = BTreeMap::new();
    let mut total = Row::default();
    for outcome in outcomes {
        let plan = &outcome.plan;
        let key = |kind: &str| (plan.phase.number(), plan.durability(), kind.to_string());
        rows.entry(key("(all)")).or_default().add(outcome);
        for kind in plan.kinds() {
            rows.entry(key(kind.name())).or_default().add(outcome);
        }
        for fault in &plan.faults {
            *struck.entry(fault.kind).or_default() += 1;
        }
        total.add(outcome);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| phase | durability | fault | runs | acked | unknown outcome | deliveries checked | write-behind losses | anomalies |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    for ((phase, durability, kind), row) in &rows {
        let _ = writeln!(
            out,
            "| {phase} | {durability} | {kind} | {} | {} | {} | {} | {} | {} |",
            row.runs, row.acked, row.unknown, row.deliveries, row.losses, row.anomalies
        );
    }
    let _ = writeln!(
        out,
        "| all | all | all | {} | {} | {} | {} | {} | {} |",
        total.runs, total.acked, total.unknown, total.deliveries, total.losses, total.anomalies
    );
    let _ = writeln!(out);
    let kinds: Vec<String> = FaultKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), struck.get(k).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(out, "faults struck: {}", kinds.join(", "));
    let took: f64 = outcomes.iter().map(|o| o.took.as_secs_f64()).sum();
    let _ = writeln!(out, "wall time of the runs: {took:.0} s");
    let _ = writeln!(out);
    let _ = writeln!(out, "anomalies: {}", total.anomalies);
    for outcome in outcomes {
        let plan = &outcome.plan;
        let run = format!(
            "phase {} {} seed {}",
            plan.phase.number(),
            plan.durability(),
            plan.seed
        );
        if let Some(trouble) = &outcome.trouble {
            let _ = writeln!(out, "{run}: {trouble}");
        }
        for anomaly in &outcome.findings.anomalies {
            let _ = writeln!(out, "{run}: {anomaly}");
        }
    }
    out
}
