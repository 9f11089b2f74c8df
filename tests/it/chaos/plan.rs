//! A run's schedule, drawn from its seed: how many instances, which rooms, who sends and reads
//! where, when joiners arrive, which faults strike when and for how long. The same (phase,
//! durability, seed) always draws the same schedule; what the servers then do with it is, of
//! course, up to the servers.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The names instances get, in order: a run has 1 to 6 of them.
pub const INSTANCES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// The three deployment shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// One instance, SQLite (`phase1-single.toml`, `phase1-sync.toml`).
    One,
    /// 2 or 3 instances, PostgreSQL polling (`phase2-poll.toml`).
    Two,
    /// 2 or 3 instances, Valkey and PostgreSQL (`phase3-valkey.toml`).
    Three,
}

impl Phase {
    /// 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Phase::One => 1,
            Phase::Two => 2,
            Phase::Three => 3,
        }
    }

    /// From 1, 2 or 3.
    pub fn from_number(n: u8) -> Option<Phase> {
        [Phase::One, Phase::Two, Phase::Three]
            .into_iter()
            .find(|p| p.number() == n)
    }

    /// The fault kinds that make sense for this shape.
    pub fn faults(self) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|kind| match self {
                Phase::One => matches!(
                    kind,
                    FaultKind::Kill9 | FaultKind::Sigterm | FaultKind::DiskFull | FaultKind::Pause
                ),
                // Their instances write no data files: PostgreSQL holds the data.
                Phase::Two => !kind.needs_valkey() && *kind != FaultKind::DiskFull,
                // A read-only PostgreSQL refuses numbering as in phase 2; left out here, it
                // would leave too few runs for the kinds that are phase 3's own (and the
                // schedules phase 3's seeds drew before it came would all change).
                Phase::Three => !matches!(kind, FaultKind::DiskFull | FaultKind::PgReadOnly),
            })
            .collect()
    }
}

/// What can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `kill -9` of an instance, restarted after the hold.
    Kill9,
    /// SIGTERM of an instance, restarted after the hold.
    Sigterm,
    /// A new room kept busy on one instance and opened for the first time on another.
    ColdRoom,
    /// Valkey killed and restarted empty.
    ValkeyEmpty,
    /// Valkey restarted from a snapshot taken a moment earlier.
    ValkeySnapshot,
    /// PostgreSQL stopped (fast) and started again.
    PgRestart,
    /// PostgreSQL frozen (SIGSTOP) for the hold.
    PgPause,
    /// PostgreSQL read-only for the hold (`default_transaction_read_only`, reloaded): it
    /// answers reads and refuses every write.
    PgReadOnly,
    /// Valkey frozen (SIGSTOP) for the hold.
    ValkeyPause,
    /// 200 ms each way on one instance's link to PostgreSQL or Valkey.
    ProxySlow,
    /// One instance's link to PostgreSQL or Valkey reset and refused.
    ProxyCut,
    /// One instance's link to PostgreSQL or Valkey silent (held, nothing forwarded).
    ProxyBlackhole,
    /// The instance's disk full: every write it makes to a file fails (its file-size limit at
    /// 0, see `Chatd::limit_file_size`), its SQLite file's included, until space comes back.
    DiskFull,
    /// The instance frozen (SIGSTOP) for the hold, then let go (SIGCONT): its clients and the
    /// other instances wait, or give up waiting, for a process that is neither up nor down.
    Pause,
}

impl FaultKind {
    /// Every kind, in table order.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Kill9,
        FaultKind::Sigterm,
        FaultKind::ColdRoom,
        FaultKind::ValkeyEmpty,
        FaultKind::ValkeySnapshot,
        FaultKind::PgRestart,
        FaultKind::PgPause,
        FaultKind::PgReadOnly,
        FaultKind::ValkeyPause,
        FaultKind::ProxySlow,
        FaultKind::ProxyCut,
        FaultKind::ProxyBlackhole,
        FaultKind::DiskFull,
        FaultKind::Pause,
    ];

    /// The table's name for it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill9 => "kill-9",
            FaultKind::Sigterm => "sigterm",
            FaultKind::ColdRoom => "cold-room",
            FaultKind::ValkeyEmpty => "valkey-empty",
            FaultKind::ValkeySnapshot => "valkey-snapshot",
            FaultKind::PgRestart => "pg-restart",
            FaultKind::PgPause => "pg-pause",
            FaultKind::PgReadOnly => "pg-read-only",
            FaultKind::ValkeyPause => "valkey-pause",
            FaultKind::ProxySlow => "proxy-slow",
            FaultKind::ProxyCut => "proxy-cut",
            FaultKind::ProxyBlackhole => "proxy-blackhole",
            FaultKind::DiskFull => "disk-full",
            FaultKind::Pause => "pause",
        }
    }

    fn needs_valkey(self) -> bool {
        matches!(
            self,
            FaultKind::ValkeyEmpty | FaultKind::ValkeySnapshot | FaultKind::ValkeyPause
        )
    }
}

/// One scheduled fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// When, from the start of the traffic.
    pub at: Duration,
    /// How long it lasts before it is healed (or the instance restarted).
    pub hold: Duration,
    /// The instance it strikes (the busy one for a cold room).
    pub instance: usize,
    /// The other instance (the one that opens a cold room).
    pub other: usize,
    /// For proxy faults: Valkey's link rather than PostgreSQL's.
    pub valkey_link: bool,
}

impl Fault {
    /// What it strikes, in words: two faults that strike at once never strike the same thing.
    pub fn target(&self) -> String {
        let instance = self.instance;
        match self.kind {
            FaultKind::Kill9 | FaultKind::Sigterm | FaultKind::Pause => {
                format!("instance {instance}")
            }
            FaultKind::DiskFull => format!("instance {instance}'s disk"),
            FaultKind::ColdRoom => "a cold room".to_string(),
            FaultKind::PgRestart | FaultKind::PgPause | FaultKind::PgReadOnly => {
                "PostgreSQL".to_string()
            }
            FaultKind::ValkeyEmpty | FaultKind::ValkeySnapshot | FaultKind::ValkeyPause => {
                "Valkey".to_string()
            }
            FaultKind::ProxySlow | FaultKind::ProxyCut | FaultKind::ProxyBlackhole => {
                let service = if self.valkey_link {
                    "Valkey"
                } else {
                    "PostgreSQL"
                };
                format!("instance {instance}'s link to {service}")
            }
        }
    }
}

/// A reader or joiner arriving mid-run.
#[derive(Debug, Clone)]
pub struct Joiner {
    /// When.
    pub at: Duration,
    /// Where.
    pub instance: usize,
    /// Which room.
    pub room: usize,
    /// Over the line protocol rather than SSE.
    pub tcp: bool,
}

/// Everything a run does; see the module docs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// The shape.
    pub phase: Phase,
    /// Write-ahead (`sync`) or write-behind (`async`).
    pub ahead: bool,
    /// Seconds of traffic.
    pub seconds: u64,
    /// Messages per second over all senders.
    pub rate: f64,
    /// Instance names.
    pub instances: Vec<&'static str>,
    /// Room names.
    pub rooms: Vec<String>,
    /// Resumers: (home instance, room).
    pub resumers: Vec<(usize, usize)>,
    /// Readers and joiners arriving mid-run.
    pub joiners: Vec<Joiner>,
    /// The faults, in time order; they overlap only in an [`Plan::overlapping`] plan.
    pub faults: Vec<Fault>,
    /// Whether the faults strike at once (each begins while the one before it holds).
    pub overlap: bool,
    /// A `timeout` layer above `route` gives up on every user request that takes longer than
    /// this many milliseconds (`None`: no such layer, as in the shipped pipelines).
    pub timeout_ms: Option<u64>,
}

impl Plan {
    /// Draws the schedule of (`phase`, `ahead`, `seed`).
    pub fn draw(seed: u64, phase: Phase, ahead: bool, seconds: u64, rate: f64) -> Plan {
        Plan::draw_with(seed, phase, ahead, seconds, rate, None)
    }

    /// [`Plan::draw`], with `instances` instances (at most [`INSTANCES`]'s count) in phases 2
    /// and 3 instead of 2 or 3 drawn from the seed; phase 1 has one.
    pub fn draw_with(
        seed: u64,
        phase: Phase,
        ahead: bool,
        seconds: u64,
        rate: f64,
        instances: Option<usize>,
    ) -> Plan {
        let mix = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(u64::from(phase.number()) * 2 + u64::from(ahead));
        let mut rng = StdRng::seed_from_u64(mix);
        // Phase 1 draws nothing here; phases 2 and 3 draw their count even when `instances`
        // overrides it, so that a plan without the override is the one this seed always drew.
        let count = match phase {
            Phase::One => 1,
            _ => {
                let drawn = if rng.random_bool(0.5) { 2 } else { 3 };
                instances.unwrap_or(drawn).clamp(2, INSTANCES.len())
            }
        };
        let instances = INSTANCES[..count].to_vec();
        let n = instances.len();
        let rooms = (1..=4).map(|r| format!("room{r}")).collect();
        let resumers = (0..3)
            .map(|_| (rng.random_range(0..n), rng.random_range(0..4)))
            .collect();
        let span = seconds.max(2) as f64;
        let joiners = (0..6)
            .map(|_| Joiner {
                at: Duration::from_secs_f64(rng.random_range(0.5..span * 0.9)),
                instance: rng.random_range(0..n),
                room: rng.random_range(0..4),
                tcp: rng.random_bool(0.5),
            })
            .collect();
        let kinds = phase.faults();
        // Every kind comes round in turn (so that 20 seeds strike each kind at least ten times
        // over the phases and durabilities), and a random one joins now and then.
        let count = match phase {
            Phase::One => 1 + usize::from(rng.random_bool(0.5)),
            Phase::Two | Phase::Three => 3,
        };
        let turn = (seed as usize).wrapping_mul(count) + usize::from(ahead) * 5;
        let window = (span * 0.75 - 1.0).max(1.0);
        let slot = window / count as f64;
        let faults = (0..count)
            .map(|i| {
                let kind = match i {
                    0 | 1 => kinds[(turn + i) % kinds.len()],
                    // Phases 2 and 3 have kinds of their own (phase 3 three, phase 2 one):
                    // all three in turn.
                    2 if phase != Phase::One => kinds[(turn + i) % kinds.len()],
                    _ => kinds[rng.random_range(0..kinds.len())],
                };
                let instance = rng.random_range(0..n);
                Fault {
                    kind,
                    at: Duration::from_secs_f64(1.0 + slot * i as f64 + rng.random_range(0.0..0.2)),
                    hold: Duration::from_secs_f64(
                        rng.random_range(0.5..(slot * 0.6).clamp(0.6, 2.0)),
                    ),
                    instance,
                    other: (instance + rng.random_range(1..n.max(2))) % n,
                    valkey_link: phase == Phase::Three && rng.random_bool(0.5),
                }
            })
            .collect();
        Plan {
            seed,
            phase,
            ahead,
            seconds,
            rate,
            instances,
            rooms,
            resumers,
            joiners,
            faults,
            overlap: false,
            timeout_ms: None,
        }
    }

    /// This plan with its faults striking at once: each begins while the one before it still
    /// holds, and no two strike the same thing ([`Fault::target`]: one instance's process, one
    /// instance's link to a service, PostgreSQL, Valkey, a cold room); a fault that would is
    /// moved to another instance, or replaced by the next kind in turn. Phase 1 has one
    /// instance and nothing but its process to strike: its faults stay apart.
    pub fn overlapping(mut self) -> Plan {
        if self.phase == Phase::One {
            return self;
        }
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(0x0E7E_11A9) ^ 0x5EED);
        let (kinds, n) = (self.phase.faults(), self.instances.len());
        let mut at = 1.0 + rng.random_range(0.0..0.5);
        for i in 0..self.faults.len() {
            let (earlier, rest) = self.faults.split_at_mut(i);
            let fault = &mut rest[0];
            fault.at = Duration::from_secs_f64(at);
            fault.hold = Duration::from_secs_f64(rng.random_range(1.5..3.0));
            let first = kinds.iter().position(|k| *k == fault.kind).unwrap_or(0);
            let instance = fault.instance;
            let mut tries = (0..kinds.len()).flat_map(|k| (0..n).map(move |m| (k, m)));
            let free = tries.any(|(k, m)| {
                fault.kind = kinds[(first + k) % kinds.len()];
                fault.instance = (instance + m) % n;
                if fault.other == fault.instance {
                    fault.other = (fault.instance + 1) % n;
                }
                earlier.iter().all(|other| other.target() != fault.target())
            });
            assert!(free, "nothing left to strike at once in {earlier:?}");
            at += fault.hold.as_secs_f64() * rng.random_range(0.2..0.8);
        }
        self.overlap = true;
        self
    }

    /// The same plan, run with a `timeout` layer of `ms` above `route`: under faults, requests
    /// are then given up on half-way, wherever they wait (a room's open, a seq's reservation,
    /// a write-ahead wait, a publish).
    pub fn given_up_after(mut self, ms: Option<u64>) -> Plan {
        self.timeout_ms = ms;
        self
    }

    /// `sync` or `async`.
    pub fn durability(&self) -> &'static str {
        if self.ahead { "sync" } else { "async" }
    }

    /// The fault kinds of this run, each once.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds: Vec<FaultKind> = self.faults.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "phase {} {} seed {}: {} instance(s), {} s at {} msg/s{}; faults{}:",
            self.phase.number(),
            self.durability(),
            self.seed,
            self.instances.len(),
            self.seconds,
            self.rate,
            match self.timeout_ms {
                Some(ms) => format!(", requests given up on after {ms} ms"),
                None => String::new(),
            },
            if self.overlap { " at once" } else { "" }
        )?;
        for fault in &self.faults {
            let link = if fault.valkey_link { "valkey" } else { "pg" };
            write!(
                f,
                " {}@{:.1}s+{:.1}s on {}",
                fault.kind.name(),
                fault.at.as_secs_f64(),
                fault.hold.as_secs_f64(),
                self.instances[fault.instance]
            )?;
            match fault.kind {
                FaultKind::ColdRoom => write!(f, " (opened on {})", self.instances[fault.other])?,
                FaultKind::ProxySlow | FaultKind::ProxyCut | FaultKind::ProxyBlackhole => {
                    write!(f, " ({link} link)")?
                }
                _ => {}
            }
            write!(f, ";")?;
        }
        Ok(())
    }
}
