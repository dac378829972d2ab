//! Raft's cluster invariants (`aver_core::raft::invariants`), checked after every event of a
//! simulated cluster at a cost proportional to what the event changed. Any simulation whose
//! servers run Raft — the Raft lab, or a service whose server core wraps Raft, with clerks
//! beside it — gets them by implementing [`RaftHost`] for its node kind.
//!
//! # What each server contributes
//!
//! * A running server: its core (memory). The driver syncs every `Ready` before acting on
//!   it, so what it holds in memory as durable is on its disk too.
//! * A crashed server: *its disk*, as a core booted from what was synced
//!   ([`NodeKind::boot`], the very state a restart will have). A crash that tore a write
//!   leaves the disk behind the memory the server had; only the disk is stored state.
//! * RAFT-7 Commit Quorum reads every server's disk for *who stores an entry*, and takes
//!   *claims* of commitment from running servers, from the last memory of crashed ones (a
//!   commit that happened stays committed after the crash), and from the highest claim ever
//!   made in the run (a ghost that survives every crash and restart).
//!
//! # Incremental, and why that is sound
//!
//! Every invariant here is a conjunction over single servers (RAFT-9) and over pairs of
//! servers (RAFT-1, 3, 4, 5), plus RAFT-7, which is cheap (O(servers²) log-term lookups). A
//! server's contribution changes only when its fingerprint changes: it crashed or restarted
//! (incarnation), it synced a write (every change to its log or hard state is a persist
//! operation, `aver_core::raft::log`), or its term, vote, role, commit or applied index moved
//! (`StepSummary`). After each event the checker compares fingerprints, and re-checks each
//! changed server alone and paired with every other one; unchanged pairs held before and
//! still hold. A full check from scratch runs at the end of every scenario.
//!
//! Cost: O(servers) fingerprint comparisons per event; for each server the event changed,
//! O(servers × log n) digest comparisons (a binary search over n entries per pair); and the
//! catalogue functions, linear in the log, only for a suspect pair. `aver bench sim --seeds 3`,
//! interleaved runs on a heavily loaded 2-core machine (load average 15–20): the full check
//! from scratch every 128 events ran the Raft suite at 270 000–370 000 events/s; the
//! catalogue functions on every changed pair after every event at ≈36 000; this checker,
//! after every event, at 320 000–435 000 (it skips unchanged servers, which the periodic
//! full check did not).

use crate::pair::Pair;
use crate::raft::{Cmd, RaftDisk, RaftKind};
use crate::sim::{NodeKind, Sim};
use aver_core::contract::{Core, Violation};
use aver_core::raft::invariants::{self, CommitClaim, StepSummary};
use aver_core::raft::{Command, Log, LogIndex, Raft};

/// A node kind whose servers run Raft — Raft itself ([`RaftKind`]) or a service core that
/// wraps it — so that [`ClusterCheck`] finds each server's Raft core and Raft disk. Nodes
/// for which both return `None` (clerks) are not part of the Raft cluster.
///
/// A kind whose nodes run Raft clusters of different command types (a shard controller's
/// servers and shard groups' servers in one simulation) implements it once per command
/// type, each tagged by a marker type `Of` of its own; `ClusterCheck<K, Of>` checks that
/// cluster. A kind with one cluster uses the default tag `()`.
pub trait RaftHost<Of = ()>: NodeKind {
    /// The command type of the Raft log.
    type Command: Command;
    /// The Raft server inside node `node`'s core, if it runs one.
    fn raft<'a>(&self, node: usize, core: &'a Self::Core) -> Option<&'a Raft<Self::Command>>;
    /// The Raft part of node `node`'s disk, if it runs Raft.
    fn raft_disk<'a>(
        &self,
        node: usize,
        disk: &'a Self::Disk,
    ) -> Option<&'a RaftDisk<Self::Command>>;
}

impl RaftHost for RaftKind {
    type Command = Cmd;
    fn raft<'a>(&self, _node: usize, core: &'a Raft<Cmd>) -> Option<&'a Raft<Cmd>> {
        Some(core)
    }
    fn raft_disk<'a>(&self, _node: usize, disk: &'a RaftDisk) -> Option<&'a RaftDisk> {
        Some(disk)
    }
}

impl<S, C> RaftHost for Pair<S, C>
where
    S: RaftHost,
    C: NodeKind,
    C::Core: Core<Msg = <S::Core as Core>::Msg>,
{
    type Command = S::Command;
    fn raft<'a>(&self, node: usize, core: &'a Self::Core) -> Option<&'a Raft<S::Command>> {
        core.server().and_then(|s| self.server.raft(node, s))
    }
    fn raft_disk<'a>(&self, node: usize, disk: &'a Self::Disk) -> Option<&'a RaftDisk<S::Command>> {
        if node < self.servers {
            self.server.raft_disk(node, &disk.0)
        } else {
            None
        }
    }
}

/// What a server looked like at the last check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    incarnation: u64,
    syncs: u64,
    /// `None` while crashed.
    summary: Option<StepSummary>,
}

/// The incremental cluster checker of the Raft servers of one simulation.
pub struct ClusterCheck<K: RaftHost<Of>, Of = ()> {
    /// The nodes that run Raft.
    servers: Vec<usize>,
    seen: Vec<Option<Fingerprint>>,
    /// Crashed servers' disks, booted: `(incarnation, core)`.
    disk_views: Vec<Option<(u64, K::Core)>>,
    /// The highest commit claim ever seen in the run.
    commit_max: Option<CommitClaim>,
    /// Servers re-checked so far (for statistics).
    rechecks: u64,
    /// Also run the catalogue functions on every pair and fail on any disagreement.
    exact: bool,
    of: std::marker::PhantomData<Of>,
}

thread_local! {
    static EXACT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Every [`ClusterCheck`] created on this thread from now on also runs the catalogue
/// functions on every pair it checks and fails the run if the digest comparison ever
/// disagrees with them (a test of the fast path; slow).
pub fn cross_check(on: bool) {
    EXACT.with(|e| e.set(on));
}

impl<K: RaftHost<Of>, Of> ClusterCheck<K, Of> {
    /// A checker for the nodes of `sim` that run Raft; the first
    /// [`ClusterCheck::after_event`] checks them all.
    pub fn new(sim: &Sim<K>) -> ClusterCheck<K, Of> {
        let n = sim.n();
        let kind = sim.kind();
        let servers = (0..n)
            .filter(|&i| kind.raft_disk(i, &sim.disk(i).synced).is_some())
            .collect();
        ClusterCheck {
            servers,
            seen: vec![None; n],
            disk_views: (0..n).map(|_| None).collect(),
            commit_max: None,
            rechecks: 0,
            exact: EXACT.with(|e| e.get()),
            of: std::marker::PhantomData,
        }
    }

    /// A checker for the Raft cluster made of nodes `servers` only (one of several Raft
    /// groups in one simulation: each group is its own cluster, with its own quorum).
    pub fn of_servers(sim: &Sim<K>, servers: Vec<usize>) -> ClusterCheck<K, Of> {
        let mut check = ClusterCheck::new(sim);
        check.servers = servers;
        check
    }

    /// Servers re-checked so far (one per changed server per event).
    pub fn rechecks(&self) -> u64 {
        self.rechecks
    }

    /// Re-checks every server whose fingerprint changed since the last call.
    pub fn after_event(&mut self, sim: &Sim<K>) -> Result<(), Violation> {
        let mut changed = Vec::new();
        for &i in &self.servers {
            let now = Some(fingerprint::<K, Of>(sim, i));
            if self.seen[i] != now {
                self.seen[i] = now;
                changed.push(i);
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.refresh_disk_views(sim);
        for &i in &changed {
            self.rechecks += 1;
            self.check_server(sim, i)?;
        }
        self.commit_quorum(sim)
    }

    /// Checks everything from scratch.
    pub fn full(&mut self, sim: &Sim<K>) -> Result<(), Violation> {
        self.seen.iter_mut().for_each(|s| *s = None);
        self.after_event(sim)
    }

    fn refresh_disk_views(&mut self, sim: &Sim<K>) {
        for &i in &self.servers {
            if sim.is_up(i) {
                self.disk_views[i] = None;
                continue;
            }
            let incarnation = sim.incarnation(i);
            if self.disk_views[i]
                .as_ref()
                .is_none_or(|(inc, _)| *inc != incarnation)
            {
                let view = sim.kind().boot(i, &sim.disk(i).synced);
                self.disk_views[i] = Some((incarnation, view));
            }
        }
    }

    /// Server `i` as the invariants see it: running core, or crashed server's disk.
    fn view<'a>(&'a self, sim: &'a Sim<K>, i: usize) -> &'a Raft<<K as RaftHost<Of>>::Command> {
        let core = match sim.node(i) {
            Some(core) => core,
            None => &self.disk_views[i].as_ref().expect("refreshed").1,
        };
        sim.kind().raft(i, core).expect("a Raft server")
    }

    fn disk<'a>(&self, sim: &'a Sim<K>, i: usize) -> &'a RaftDisk<<K as RaftHost<Of>>::Command> {
        let disk = &sim.disk(i).synced;
        sim.kind().raft_disk(i, disk).expect("a Raft server")
    }

    /// RAFT-9 for `i`, then RAFT-1, 3, 4, 5 for every pair that contains `i`.
    fn check_server(&self, sim: &Sim<K>, i: usize) -> Result<(), Violation> {
        let a = self.view(sim, i);
        let disk_a = self.disk(sim, i);
        let (held, stored) = (a.log(), &disk_a.log);
        let shape = |l: &Log<_>| (l.base(), l.last_index(), l.last_term());
        if shape(held) != shape(stored) {
            // The digests describe the disk; a running server's log must be that log.
            invariants::persisted_state(a, disk_a.durable())?;
        }
        if disk_a.descents() > 0 {
            invariants::snapshot_consistency(a)?;
        }
        invariants::check_node(a)?;
        for &j in self.servers.iter().filter(|&&j| j != i) {
            let b = self.view(sim, j);
            let pair = [a, b];
            invariants::election_safety(&pair)?;
            let fast = pair_suspect(a, disk_a, b, self.disk(sim, j));
            if fast || self.exact {
                let exact = exact_pair(&pair);
                if exact.is_ok() == fast {
                    let e = format!(
                        "cluster checker disagreement on n{i}, n{j}: digests say {}, the \
                         catalogue functions say {exact:?}",
                        if fast { "suspect" } else { "fine" }
                    );
                    return Err(Violation::new("SIM", e));
                }
                exact?;
            }
        }
        Ok(())
    }

    /// RAFT-7: claims from running servers, crashed servers' last memory and the run's
    /// highest claim; stores from every server's disk.
    fn commit_quorum(&mut self, sim: &Sim<K>) -> Result<(), Violation> {
        let kind = sim.kind();
        let mut claims: Vec<CommitClaim> = (self.servers.iter())
            .filter_map(|&i| sim.node_or_frozen(i).and_then(|c| kind.raft(i, c)))
            .map(CommitClaim::of)
            .collect();
        for claim in &claims {
            if self.commit_max.is_none_or(|max| claim.index > max.index) {
                self.commit_max = Some(*claim);
            }
        }
        claims.extend(self.commit_max);
        let stores: Vec<&Log<_>> = self
            .servers
            .iter()
            .map(|&i| &self.disk(sim, i).log)
            .collect();
        let quorum = self.servers.len() / 2 + 1;
        invariants::commit_quorum_stored(&claims, &stores, quorum)
    }
}

/// RAFT-3, 4, 5 on one pair, with the catalogue functions (O(log length)).
fn exact_pair<C: Command>(pair: &[&Raft<C>; 2]) -> Result<(), Violation> {
    invariants::log_matching(pair)?;
    invariants::state_machine_safety(pair)?;
    invariants::leader_completeness(pair)
}

/// The first index in the common range of two logs where they differ, as the catalogue's
/// comparison defines it (the term at the range's low end, then each entry), found by
/// binary search over the disks' prefix digests.
fn first_difference<C: Command>(
    a: &Raft<C>,
    da: &RaftDisk<C>,
    b: &Raft<C>,
    db: &RaftDisk<C>,
) -> Option<LogIndex> {
    let lo = a.log().base().index.max(b.log().base().index);
    let hi = a.log().last_index().min(b.log().last_index());
    if lo > hi {
        return None;
    }
    if a.log().term_at(lo) != b.log().term_at(lo) {
        return Some(lo);
    }
    let same = |k: LogIndex| da.range_digest(lo, k) == db.range_digest(lo, k);
    if same(hi) {
        return None;
    }
    // Invariant: same(low), !same(high).
    let (mut low, mut high) = (lo, hi);
    while high.0 - low.0 > 1 {
        let mid = LogIndex(low.0 + (high.0 - low.0) / 2);
        if same(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(high)
}

/// True when RAFT-3, 4 or 5 may fail on the pair `(a, b)`: the same predicates as the
/// catalogue functions, with the entry comparison done on digests. A digest difference is a
/// real difference; two different ranges with one digest (probability 2⁻⁶⁴) would hide one.
fn pair_suspect<C: Command>(a: &Raft<C>, da: &RaftDisk<C>, b: &Raft<C>, db: &RaftDisk<C>) -> bool {
    let diff = first_difference(a, da, b, db);
    let differs_by = |k: LogIndex| diff.is_some_and(|d| d <= k);
    // RAFT-3: the highest index of the common range where the terms agree.
    let lo = a.log().base().index.max(b.log().base().index);
    let mut top = a.log().last_index().min(b.log().last_index());
    while top > lo && a.log().term_at(top) != b.log().term_at(top) {
        top = top.prev();
    }
    let terms_agree = top >= lo && a.log().term_at(top) == b.log().term_at(top);
    if terms_agree && differs_by(top) {
        return true;
    }
    // RAFT-5: the part of the common range both committed.
    let hi = a.log().last_index().min(b.log().last_index());
    let committed = hi.min(a.commit_index()).min(b.commit_index());
    if lo <= committed && differs_by(committed) {
        return true;
    }
    // RAFT-4: a leader holds what a server of no later term committed.
    let incomplete = |leader: &Raft<C>, n: &Raft<C>| {
        leader.is_leader()
            && n.term() <= leader.term()
            && (n.commit_index() > leader.log().last_index()
                || (lo <= n.commit_index() && differs_by(n.commit_index())))
    };
    incomplete(a, b) || incomplete(b, a)
}

fn fingerprint<K: RaftHost<Of>, Of>(sim: &Sim<K>, i: usize) -> Fingerprint {
    Fingerprint {
        incarnation: sim.incarnation(i),
        syncs: sim.disk(i).syncs,
        summary: (sim.node(i)).and_then(|c| sim.kind().raft(i, c).map(StepSummary::of)),
    }
}
