//! Command-line arguments of `aver check`, `aver explore` and `aver bench check`.

use aver_core::raft::{Bug, Bugs};
use aver_models::raft::{NetworkKind, RaftModelCfg};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `aver check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Protocol to check (`raft`, `mr`, `shard`). Omitted: every registered model at its CI bounds.
    pub protocol: Option<String>,
    #[command(flatten)]
    pub bounds: Bounds,
    /// Depth-first search (the default; honours the bounds exactly, little memory).
    #[arg(long, conflicts_with_all = ["bfs", "simulate"])]
    pub dfs: bool,
    /// Breadth-first search (more memory; shorter counterexamples, though 0.31 does not
    /// guarantee the shortest).
    #[arg(long, conflicts_with = "simulate")]
    pub bfs: bool,
    /// Random walks instead of exhaustive search: RUNS walks from the initial state.
    #[arg(long, value_name = "RUNS")]
    pub simulate: Option<u64>,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Directory for counterexample JSON files.
    #[arg(long, default_value = "target/aver-check")]
    pub out: PathBuf,
    /// Print a JSON summary on stdout (per configuration: bounds, counts, each property's
    /// verdict; per counterexample: its file and the Explorer command); the human output goes
    /// to stderr. Exit codes are unchanged.
    #[arg(long)]
    pub json: bool,
    /// Raft: keep the first counterexample a depth-first search finds instead of searching
    /// breadth-first again for the shortest one (with --max-campaigns and the other behaviour
    /// limits: instead of shrinking it by dropping steps).
    #[arg(long)]
    pub no_shortest: bool,
    /// kv-dedup, kv-raft: check this named configuration (kv-dedup: `ci`, `ci_two_clerks`,
    /// `deep`; kv-raft: its CI ones, `hunt`) instead of the default one, e.g. a seeded bug
    /// searched exhaustively with `--dfs` at the two-clerk bounds.
    #[arg(long)]
    pub config: Option<String>,
}

/// The model bounds shared by `check`, `explore` and `bench check`.
#[derive(Args, Debug, Clone)]
pub struct Bounds {
    /// Servers.
    #[arg(long)]
    pub servers: Option<usize>,
    /// Largest term a server may reach.
    #[arg(long)]
    pub max_term: Option<u64>,
    /// Longest log a leader appends to.
    #[arg(long)]
    pub max_log: Option<u64>,
    /// Crashes, each with recovery from storage. raft: 0 for none; from 1, any server may
    /// crash and restart at any step (with --no-restart-at-crash: how many may be down at
    /// once). kv-dedup: restarts in a run.
    #[arg(long)]
    pub crashes: Option<usize>,
    /// Network. raft: reliable, lossy, duplicating, lossy-duplicating, ordered. kvsrv, lock:
    /// rpc (the default), async, duplicating.
    #[arg(long)]
    pub network: Option<String>,
    /// Whether servers take snapshots (the `Compact` timer): true or false.
    #[arg(long)]
    pub compaction: Option<bool>,
    /// Same as `--compaction false`.
    #[arg(long, conflicts_with = "compaction")]
    pub no_compaction: bool,
    /// Seed a historical bug into the core (see specs/bugs.md); repeatable. The names are the
    /// protocol's: Raft's for `raft`, the KV service's for `kv-dedup`, `kv-raft`, `kvsrv` and
    /// `lock`. Without --dfs/--bfs/--simulate this searches by random walks at the deep bounds
    /// (raft, kv-dedup, kv-raft) or breadth-first at the CI bounds (kvsrv, lock).
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
    /// kvsrv: the clerks' scripts: `two` (the CI one), `three`, `blind-put` (shows the network
    /// assumptions of ErrMaybe with `--network async|duplicating`). lock: unused.
    #[arg(long)]
    pub workload: Option<String>,
    /// lock: lock clients (default 2).
    #[arg(long)]
    pub clients: Option<usize>,
    /// lock: acquire/release rounds per client (default 2).
    #[arg(long)]
    pub rounds: Option<u8>,
    /// Keep messages the receiver will ignore forever on the duplicating network (turns
    /// off a sound reduction; for comparing state counts).
    #[arg(long)]
    pub keep_dead_messages: bool,
    /// raft: keep requests that can have no effect within the term bound (a stale request
    /// from a server at the bound, a RequestVote at the bound to a server that voted for
    /// another); turns off a sound reduction of the bounded model, for comparing state counts.
    #[arg(long)]
    pub keep_stale_requests: bool,
    /// Keep every message in flight distinct, even those whose deliveries have the same
    /// effect forever (stale requests of one kind from one sender, replies that can only
    /// announce a term their receiver will never lead, acknowledgments a leader already
    /// has, AppendEntries a follower already holds); turns off a sound reduction, for
    /// comparing state counts.
    #[arg(long)]
    pub keep_equivalent_messages: bool,
    /// Visit every state, not one per renaming of the servers (turns off symmetry
    /// reduction; for comparing state counts).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Visit states whose messages in flight are a subset of a visited state's with the same
    /// servers (turns off covering; for comparing state counts).
    #[arg(long)]
    pub no_covering: bool,
    /// Keep a crashed server's last memory until it recovers, instead of replacing it at the
    /// crash by the state it restarts with (turns off a sound reduction; for comparing
    /// state counts).
    #[arg(long)]
    pub no_forget_on_crash: bool,
    /// Model a crash and the recovery as two steps with the server down in between, instead
    /// of one step that restarts it from its disk (turns off a sound reduction; for
    /// comparing state counts). `--no-forget-on-crash` implies it.
    #[arg(long)]
    pub no_restart_at_crash: bool,
    /// Keep each server's leader hint (whom it last heard from as leader) in the state,
    /// instead of forgetting it after every input: the model's clients ask only leaders, so
    /// the hint is never read (turns off a sound reduction; for comparing state counts).
    #[arg(long)]
    pub keep_leader_hint: bool,
    /// Turn off the servers' own step and node checks (RAFT-2, 6, 8, 9, 10), so only what a
    /// user would lose can fail: RAFT-1, 3, 4, 5, 7 and the apply stream's RAFT-A1, A2.
    #[arg(long)]
    pub no_step_checks: bool,
    /// raft: at most N election campaigns (election timeouts) in a run, all servers together.
    /// A bound on behaviour, not on state: it cuts runs that stay within the state bounds, so
    /// the search is an under-approximation — a violation it finds is real, but a pass says
    /// nothing about the runs it cut (never a complete search of the unrestricted model).
    #[arg(long, value_name = "N")]
    pub max_campaigns: Option<u8>,
    /// raft: at most N heartbeat timeouts in a run, all servers together (leaders still send
    /// AppendEntries when elected, when appending and when answered). A bound on behaviour:
    /// an under-approximation, like --max-campaigns.
    #[arg(long, value_name = "N")]
    pub max_heartbeats: Option<u8>,
    /// raft: at most N client proposals in a run (besides --max-log per log). A bound on
    /// behaviour: an under-approximation, like --max-campaigns.
    #[arg(long, value_name = "N")]
    pub max_proposals: Option<u8>,
    /// raft: an election timer fires only while no other server is a candidate (campaigns
    /// never overlap, so no split votes). A bound on behaviour: an under-approximation, like
    /// --max-campaigns.
    #[arg(long)]
    pub one_candidate: bool,
}

impl CheckArgs {
    /// The search the flags name, if any.
    pub fn search(&self) -> Option<super::Search> {
        match (self.dfs, self.bfs, self.simulate) {
            (_, true, _) => Some(super::Search::Bfs),
            (_, _, Some(runs)) => Some(super::Search::Simulate(runs)),
            (true, _, _) => Some(super::Search::Dfs),
            _ => None,
        }
    }
}

impl Bounds {
    /// The flags given on the command line, as they would be typed again (each with a
    /// leading space): what `aver explore` needs to rebuild the same model.
    pub(crate) fn flags(&self) -> String {
        let mut out = String::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!(" --{name} {v}"));
            }
        };
        put("servers", self.servers.map(|v| v.to_string()));
        put("max-term", self.max_term.map(|v| v.to_string()));
        put("max-log", self.max_log.map(|v| v.to_string()));
        put("crashes", self.crashes.map(|v| v.to_string()));
        put("network", self.network.clone());
        put("compaction", self.compaction.map(|v| v.to_string()));
        put("workload", self.workload.clone());
        put("clients", self.clients.map(|v| v.to_string()));
        put("rounds", self.rounds.map(|v| v.to_string()));
        put("max-campaigns", self.max_campaigns.map(|v| v.to_string()));
        put("max-heartbeats", self.max_heartbeats.map(|v| v.to_string()));
        put("max-proposals", self.max_proposals.map(|v| v.to_string()));
        for bug in &self.bugs {
            put("bug", Some(bug.clone()));
        }
        let switches = [
            (self.no_compaction, " --no-compaction"),
            (self.keep_dead_messages, " --keep-dead-messages"),
            (self.keep_stale_requests, " --keep-stale-requests"),
            (self.keep_equivalent_messages, " --keep-equivalent-messages"),
            (self.no_symmetry, " --no-symmetry"),
            (self.no_covering, " --no-covering"),
            (self.no_forget_on_crash, " --no-forget-on-crash"),
            (self.no_restart_at_crash, " --no-restart-at-crash"),
            (self.keep_leader_hint, " --keep-leader-hint"),
            (self.no_step_checks, " --no-step-checks"),
            (self.one_candidate, " --one-candidate"),
        ];
        for (on, flag) in switches {
            if on {
                out.push_str(flag);
            }
        }
        out
    }

    /// Whether a Raft behaviour limit was given (`--max-campaigns` and the like).
    pub(crate) fn limits_given(&self) -> bool {
        self.max_campaigns.is_some()
            || self.max_heartbeats.is_some()
            || self.max_proposals.is_some()
            || self.one_candidate
    }

    /// The `--bug` names as Raft bugs (an unknown name is an error listing the known ones).
    pub(crate) fn raft_bugs(&self) -> anyhow::Result<Bugs> {
        self.bugs.iter().try_fold(Bugs::NONE, |bugs, name| {
            let bug: Bug = name.parse().map_err(anyhow::Error::msg)?;
            Ok(bugs.with(bug))
        })
    }

    pub(crate) fn cfg(&self) -> anyhow::Result<RaftModelCfg> {
        self.cfg_from(RaftModelCfg::ci())
    }

    /// `base` with every bound given on the command line applied.
    pub(crate) fn cfg_from(&self, base: RaftModelCfg) -> anyhow::Result<RaftModelCfg> {
        let mut cfg = base;
        if let Some(n) = self.servers {
            anyhow::ensure!((1..=9).contains(&n), "--servers must be 1..=9");
            cfg.servers = n;
        }
        if let Some(t) = self.max_term {
            cfg.max_term = t;
        }
        if let Some(l) = self.max_log {
            cfg.max_log = l;
        }
        if let Some(c) = self.crashes {
            cfg.max_crashes = c;
        }
        if let Some(n) = &self.network {
            cfg.network = n.parse::<NetworkKind>().map_err(anyhow::Error::msg)?;
        }
        if let Some(c) = self.compaction {
            cfg.compaction = c;
        }
        cfg.compaction &= !self.no_compaction;
        cfg.bugs = self.raft_bugs()?;
        cfg.collect_dead_messages &= !self.keep_dead_messages;
        cfg.collect_stale_requests &= !self.keep_stale_requests;
        cfg.merge_equivalent_messages &= !self.keep_equivalent_messages;
        cfg.symmetry &= !self.no_symmetry;
        cfg.covering &= !self.no_covering;
        cfg.forget_on_crash &= !self.no_forget_on_crash;
        cfg.restart_at_crash &= !self.no_restart_at_crash && !self.no_forget_on_crash;
        cfg.forget_leader_hint &= !self.keep_leader_hint;
        cfg.step_checks &= !self.no_step_checks;
        let limits = &mut cfg.limits;
        limits.campaigns = self.max_campaigns.or(limits.campaigns);
        limits.heartbeats = self.max_heartbeats.or(limits.heartbeats);
        limits.proposals = self.max_proposals.or(limits.proposals);
        limits.one_candidate |= self.one_candidate;
        Ok(cfg)
    }
}

/// Arguments of `aver bench check`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Run the configuration once with every reduction and once with each reduction switched
    /// off (each run in its own process, so peak memory is per run), and print a table.
    #[arg(long)]
    pub compare: bool,
}

/// Arguments of `aver explore`.
#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Protocol to explore (`raft`, `kvsrv`, `lock`, `mr`, `kv-dedup`, `kv-raft`, `shard`).
    pub protocol: String,
    #[command(flatten)]
    pub bounds: Bounds,
    /// The model's named configuration the bounds apply to (raft: `ci`, the other CI
    /// configurations, `deep`; kv-dedup: its CI ones, `deep`; kv-raft: its CI ones, `hunt`;
    /// kvsrv, lock: `ci`, `three`; shard, mr: their CI ones). Default: the one `aver check
    /// NAME` uses.
    #[arg(long)]
    pub config: Option<String>,
    /// An Explorer path (`0/3/1/...`: the initial state's index, then each action's index),
    /// as `aver check` prints it for a counterexample: checked against the model, and printed
    /// as the link that opens it.
    #[arg(long)]
    pub path: Option<String>,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}
