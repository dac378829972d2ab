//! Replaying node traces ([`crate::trace`]) into the node's core — the kvraft server on Raft:
//! the conformance check that the thing that ran is the thing that was verified.
//!
//! For each incarnation of a node, a fresh core is built from the recorded durable state and
//! driven, through the same [`Driver`] the node used, with the recorded inputs. After every
//! input the replay checks:
//!
//! * **outputs** — the digest of what the core asked for (persists, syncs, messages,
//!   applies, timers, return value) equals the one the node recorded;
//! * **step and node invariants** — the cores' own checks (RAFT-2, 6, 8, 9, 10 and the rsm's
//!   KV-3; a recorded violation fails the replay), the full RAFT-9 and RAFT-11 (the core's durable state
//!   equals the fold of every persist operation it emitted) after inputs that persisted;
//! * **the apply stream** — RAFT-A1: the rsm's applied index never moves back.
//!
//! Across incarnations: the durable state a restart recovered must be the fold of a prefix of
//! the previous incarnation's persist operations that includes every one known durable —
//! what survived the crash is what was synced, and nothing else.
//!
//! Across nodes ([`replay_cluster`]): RAFT-1 (one leader per term), RAFT-5/RAFT-A2 (one
//! entry per index, on every node that applied it) and RAFT-4 in its term form (every leader
//! of term `L`, when elected, holds every entry some node knew committed in a term `< L`).
//! Cluster invariants that need simultaneous states (RAFT-3, RAFT-7) are the simulator's and
//! the model checker's job: traces of separate processes share no clock.

use crate::driver::{Driver, Environment};
use crate::kv::{Entry, Server, ServerMessage};
use crate::trace::{
    Digest, Item, TraceError, TraceInput, TraceRecord, event_digest, read_trace, trace_files,
};
use aver_core::contract::{NodeId, Violation};
use aver_core::kvraft::KvEvent;
use aver_core::raft::{Durable, LogIndex, PersistOp, Raft, SnapshotMeta, Term, Timer, invariants};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A trace file is unreadable or damaged.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The core did something other than what the node recorded, or a check failed.
    #[error("{path} record {record} ({input}): {what}", path = .path.display())]
    Diverged {
        /// The trace file.
        path: PathBuf,
        /// Index of the record in the file.
        record: usize,
        /// The input at that record.
        input: String,
        /// What differs or which invariant failed.
        what: String,
    },
    /// A cluster invariant failed across nodes.
    #[error("across nodes: {0}")]
    Cluster(Violation),
    /// No trace to replay.
    #[error("{path}: no trace files", path = .0.display())]
    Empty(PathBuf),
}

/// What one node's replay covered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReplay {
    /// The node.
    pub node: NodeId,
    /// Incarnations (trace files) replayed.
    pub incarnations: usize,
    /// Inputs replayed.
    pub inputs: u64,
    /// Restarts whose recovered state was checked against the previous incarnation.
    pub restarts_checked: usize,
    /// Bytes of incomplete last records ignored (a process killed inside a write).
    pub torn_bytes: usize,
    /// Highest term seen.
    pub term: u64,
    /// Highest commit index seen.
    pub commit: u64,
}

/// The log a leader held when it was elected: its base and the term of each entry after it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LogView {
    base: SnapshotMeta,
    terms: Vec<Term>,
}

impl LogView {
    fn holds(&self, index: LogIndex, term: Term) -> bool {
        if index <= self.base.index {
            return true; // covered by a snapshot, which holds only committed entries
        }
        let k = (index.0 - self.base.index.0 - 1) as usize;
        self.terms.get(k) == Some(&term)
    }
}

/// Facts one node's replay contributes to the cross-node checks.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    node: NodeId,
    /// Terms this node led, with its log at election.
    leaders: Vec<(Term, LogView)>,
    /// `(term the node was in, commit index, term of that entry)`.
    commits: BTreeSet<(Term, LogIndex, Term)>,
    /// Index → (term, digest of the command) of every entry it applied.
    applied: BTreeMap<LogIndex, (Term, u64)>,
}

/// The environment of a replayed core: it digests outputs exactly as the node's environment
/// did, folds persist operations, and follows the apply stream.
struct ReplayEnv {
    digest: Digest,
    ops: Vec<PersistOp<Entry>>,
    folded: Durable<Entry>,
    last_applied: LogIndex,
    applied_entries: Vec<(LogIndex, Term, u64)>,
    /// Operations folded when the O(log) checks last ran.
    checked_ops: usize,
}

impl Environment<Server> for ReplayEnv {
    fn persist(&mut self, ops: &[PersistOp<Entry>]) {
        for op in ops {
            self.digest.item(Item::Persist, op);
            self.folded.apply(op);
            self.ops.push(op.clone());
        }
    }
    fn sync(&mut self) {
        self.digest.item(Item::Sync, &());
    }
    fn send(&mut self, to: NodeId, msg: ServerMessage) {
        self.digest.item(Item::Send, &(to, &msg));
    }
    fn apply(&mut self, event: KvEvent) {
        self.digest.item(Item::Apply, &event_digest(&event));
    }
    fn set_timer(&mut self, timer: Timer) {
        self.digest.item(Item::SetTimer, &timer);
    }
    fn cancel_timer(&mut self, timer: Timer) {
        self.digest.item(Item::CancelTimer, &timer);
    }
}

impl ReplayEnv {
    /// Follows the rsm's applied index after an input: RAFT-A1 (it never moves back), and
    /// the entries newly applied that the log still holds, for RAFT-A2 across nodes.
    fn follow_applies(&mut self, server: &Server) -> Result<(), String> {
        let applied = server.rsm().applied_index();
        if applied < self.last_applied {
            return Err(format!(
                "RAFT-A1 violated: applied index moved back from {} to {}",
                self.last_applied.0, applied.0
            ));
        }
        let log = server.engine().log();
        let mut index = self.last_applied.next();
        while index <= applied {
            if let Some(e) = log.entry(index) {
                let mut d = Digest::default();
                d.item(Item::Apply, &e.command);
                self.applied_entries.push((index, e.term, d.finish()));
            }
            index = index.next();
        }
        self.last_applied = applied;
        Ok(())
    }
}

/// The end of one incarnation, for checking the next one's recovery.
struct Ending {
    start: Durable<Entry>,
    ops: Vec<PersistOp<Entry>>,
    durable_ops: u64,
}

/// Replays every incarnation of the node whose traces are in `trace_dir`.
pub fn replay_node(trace_dir: &Path) -> Result<(NodeReplay, NodeFacts), ReplayError> {
    let files = trace_files(trace_dir).map_err(|e| TraceError {
        path: trace_dir.to_path_buf(),
        offset: 0,
        what: e.to_string(),
    })?;
    if files.is_empty() {
        return Err(ReplayError::Empty(trace_dir.to_path_buf()));
    }
    let mut summary = NodeReplay::default();
    let mut facts = NodeFacts::default();
    let mut previous: Option<Ending> = None;
    for path in &files {
        let file = read_trace::<Entry, ServerMessage>(path)?;
        summary.torn_bytes += file.torn_bytes;
        let ending = Incarnation::replay(
            path,
            file.records,
            previous.as_ref(),
            &mut summary,
            &mut facts,
        )?;
        previous = Some(ending);
        summary.incarnations += 1;
    }
    Ok((summary, facts))
}

struct Incarnation<'a> {
    path: &'a Path,
    driver: Driver<Server>,
    env: ReplayEnv,
    durable_ops: u64,
}

impl<'a> Incarnation<'a> {
    fn replay(
        path: &'a Path,
        records: Vec<TraceRecord<Entry, ServerMessage>>,
        previous: Option<&Ending>,
        summary: &mut NodeReplay,
        facts: &mut NodeFacts,
    ) -> Result<Ending, ReplayError> {
        let mut records = records.into_iter().enumerate();
        let fail = |record: usize, input: &str, what: String| ReplayError::Diverged {
            path: path.to_path_buf(),
            record,
            input: input.to_string(),
            what,
        };
        let Some((
            _,
            TraceRecord::Start {
                config,
                kv,
                durable,
                digest,
                ..
            },
        )) = records.next()
        else {
            return Err(fail(
                0,
                "start",
                "the trace does not begin with a start record".into(),
            ));
        };
        if let Some(prev) = previous {
            check_recovery(prev, &durable).map_err(|w| fail(0, "restart", w))?;
            summary.restarts_checked += 1;
        }
        summary.node = config.id;
        facts.node = config.id;
        let start = durable.clone();
        let mut inc = Incarnation {
            path,
            driver: Driver::new(Server::new(kv, Raft::new(config, durable.clone()))),
            env: ReplayEnv {
                digest: Digest::default(),
                ops: Vec::new(),
                folded: durable,
                last_applied: LogIndex(0),
                applied_entries: Vec::new(),
                checked_ops: usize::MAX,
            },
            durable_ops: 0,
        };
        inc.driver.flush(&mut inc.env);
        inc.check(0, "start", digest, facts)?;
        for (k, record) in records {
            match record {
                TraceRecord::Start { .. } => {
                    return Err(fail(k, "start", "a second start record in one file".into()));
                }
                TraceRecord::Durable { ops } => inc.durable_ops = inc.durable_ops.max(ops),
                TraceRecord::Input { input, digest } => {
                    let name = input.kind();
                    inc.feed(input);
                    inc.check(k, &name, digest, facts)?;
                    summary.inputs += 1;
                }
            }
        }
        let core = inc.driver.core().engine();
        summary.term = summary.term.max(core.term().0);
        summary.commit = summary.commit.max(core.commit_index().0);
        Ok(Ending {
            start,
            ops: inc.env.ops,
            durable_ops: inc.durable_ops,
        })
    }

    fn feed(&mut self, input: TraceInput<ServerMessage>) {
        let (driver, env) = (&mut self.driver, &mut self.env);
        match input {
            TraceInput::Message { from, msg } => driver.on_message(env, from, msg),
            TraceInput::Timeout(t) => driver.on_timeout(env, t),
            TraceInput::Persisted { index, term } => {
                driver.input(env, |server| {
                    server.engine_input(|raft| raft.on_persisted(index, term))
                });
            }
        }
    }

    fn check(
        &mut self,
        record: usize,
        input: &str,
        recorded: u64,
        facts: &mut NodeFacts,
    ) -> Result<(), ReplayError> {
        let fail = |what: String| ReplayError::Diverged {
            path: self.path.to_path_buf(),
            record,
            input: input.to_string(),
            what,
        };
        let replayed = self.env.digest.finish();
        if replayed != recorded {
            return Err(fail(format!(
                "the core's outputs differ from what the node did (digest {replayed:016x}, \
                 recorded {recorded:016x})"
            )));
        }
        let server = self.driver.core();
        if let Some(v) = server.violation() {
            return Err(fail(v.to_string()));
        }
        self.env.follow_applies(server).map_err(fail)?;
        let core = server.engine();
        if self.env.ops.len() != self.env.checked_ops {
            self.env.checked_ops = self.env.ops.len();
            invariants::snapshot_consistency(core).map_err(|v| fail(v.to_string()))?;
            invariants::persisted_state(core, &self.env.folded).map_err(|v| fail(v.to_string()))?;
        }
        collect_facts(core, &mut self.env, facts).map_err(fail)
    }
}

fn collect_facts(
    core: &Raft<Entry>,
    env: &mut ReplayEnv,
    facts: &mut NodeFacts,
) -> Result<(), String> {
    if core.is_leader() && facts.leaders.last().is_none_or(|(t, _)| *t != core.term()) {
        let log = core.log();
        let terms = log.entries().iter().map(|e| e.term).collect();
        facts.leaders.push((
            core.term(),
            LogView {
                base: log.base(),
                terms,
            },
        ));
    }
    let commit = core.commit_index();
    if let Some(t) = core.log().term_at(commit) {
        facts.commits.insert((core.term(), commit, t));
    }
    for (index, term, digest) in env.applied_entries.drain(..) {
        if let Some(&(t, d)) = facts.applied.get(&index)
            && (t, d) != (term, digest)
        {
            return Err(format!(
                "RAFT-A2 violated: index {} applied twice, differently",
                index.0
            ));
        }
        facts.applied.insert(index, (term, digest));
    }
    Ok(())
}

/// A restart recovered `got`; it must be the fold of a prefix of the previous incarnation's
/// operations that includes every operation known durable. Hard state and log are written
/// separately (hard state first), so each is checked against its own prefix.
fn check_recovery(prev: &Ending, got: &Durable<Entry>) -> Result<(), String> {
    let known = (prev.durable_ops as usize).min(prev.ops.len());
    let mut state = prev.start.clone();
    state.apply_all(&prev.ops[..known]);
    let (mut hard_ok, mut log_ok) = (false, false);
    for k in known..=prev.ops.len() {
        if k > known {
            state.apply(&prev.ops[k - 1]);
        }
        hard_ok |= state.hard == got.hard;
        log_ok |= state.log == got.log && state.snapshot == got.snapshot;
    }
    match (hard_ok, log_ok) {
        (true, true) => Ok(()),
        (false, _) => Err(format!(
            "recovered hard state {:?} is not one the previous incarnation persisted after its \
             {known} durable operations",
            got.hard
        )),
        (_, false) => Err(format!(
            "recovered log (base {}, last {}) is not one the previous incarnation persisted \
             after its {known} durable operations",
            got.log.base().index.0,
            got.log.last_index().0
        )),
    }
}

/// What a cluster replay covered.
#[derive(Clone, Debug, Default)]
pub struct ClusterReplay {
    /// Per node.
    pub nodes: Vec<NodeReplay>,
    /// Elections (leader, term) checked for RAFT-1 and RAFT-4.
    pub elections: usize,
    /// Log indices whose applied entries were compared across nodes.
    pub indices_compared: usize,
}

/// Replays every node's traces and checks the cross-node invariants.
pub fn replay_cluster(trace_dirs: &[PathBuf]) -> Result<ClusterReplay, ReplayError> {
    let mut out = ClusterReplay::default();
    let mut all = Vec::new();
    for dir in trace_dirs {
        let (summary, facts) = replay_node(dir)?;
        out.nodes.push(summary);
        all.push(facts);
    }
    out.elections = election_safety(&all)?;
    out.indices_compared = apply_agreement(&all)?;
    leader_completeness(&all)?;
    Ok(out)
}

fn election_safety(all: &[NodeFacts]) -> Result<usize, ReplayError> {
    let mut leader_of: BTreeMap<Term, NodeId> = BTreeMap::new();
    for f in all {
        for (term, _) in &f.leaders {
            if let Some(other) = leader_of.insert(*term, f.node).filter(|o| *o != f.node) {
                return Err(ReplayError::Cluster(Violation::new(
                    invariants::ELECTION_SAFETY,
                    format!("{other} and {} both led term {}", f.node, term.0),
                )));
            }
        }
    }
    Ok(leader_of.len())
}

fn apply_agreement(all: &[NodeFacts]) -> Result<usize, ReplayError> {
    let mut seen: BTreeMap<LogIndex, (NodeId, Term, u64)> = BTreeMap::new();
    for f in all {
        for (&index, &(term, digest)) in &f.applied {
            match seen.get(&index) {
                Some(&(other, t, d)) if (t, d) != (term, digest) => {
                    return Err(ReplayError::Cluster(Violation::new(
                        invariants::STATE_MACHINE_SAFETY,
                        format!(
                            "index {}: {other} applied an entry of term {}, {} one of term {}",
                            index.0, t.0, f.node, term.0
                        ),
                    )));
                }
                Some(_) => {}
                None => {
                    seen.insert(index, (f.node, term, digest));
                }
            }
        }
    }
    Ok(seen.len())
}

fn leader_completeness(all: &[NodeFacts]) -> Result<(), ReplayError> {
    for f in all {
        for &(term, index, entry_term) in &f.commits {
            for g in all {
                for (lead_term, log) in g.leaders.iter().filter(|(l, _)| *l > term) {
                    if !log.holds(index, entry_term) {
                        return Err(ReplayError::Cluster(Violation::new(
                            invariants::LEADER_COMPLETENESS,
                            format!(
                                "{} knew index {} (term {}) committed in term {}, but {} was \
                                 elected in term {} without it",
                                f.node, index.0, entry_term.0, term.0, g.node, lead_term.0
                            ),
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
