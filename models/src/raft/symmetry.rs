//! Symmetry reduction over server ids: one representative per class of states that differ
//! only in how the servers are named.
//!
//! Every server runs the same code with the same configuration but its id, and the core uses
//! ids as names only (`aver_core::raft::rename`), so renaming every id in a state — servers'
//! cores, disks, timers and services, the messages in flight, and the commands, which carry
//! their proposer's id — by one permutation gives a state whose behaviours are exactly the
//! renamed behaviours of the original. The model's actions and properties treat all servers
//! alike (every property quantifies over all servers). So a checker may visit one state per
//! class ("orbit"): every state it skips has a renamed twin it visits, with the same verdict
//! on every property.
//!
//! The representative is canonical — every member of a class maps to the same state: servers
//! are ordered by a signature that no renaming changes (their term, role, log terms, commit
//! index, ...), and among the orderings the signatures allow (servers with equal signatures
//! can go either way) the one whose renamed state has the least hash wins. A hash collision
//! between two candidates can only cost reduction (two representatives for one class), never
//! soundness.
//!
//! The search needs only the representative's key, not the representative: [`canonical_key`]
//! assembles each candidate's key from the hashes of the renamed servers and envelopes, which
//! each shared server and envelope caches per permutation (a step changes one server and adds
//! a few envelopes, so nearly every renamed hash is already known), and writes them into the
//! hasher exactly as hashing the renamed state would. The key is bit for bit that of
//! [`canonical`] (tested on every reachable state of small configurations), so the reduction
//! and every pinned state count are unchanged; only the renaming and rehashing of whole
//! states per candidate is gone.

use super::config::NetworkKind;
use super::state::{Env, Envelope, Hashed, RaftState, Server, stable_hash, stable_hasher};
use super::{Cmd, RaftModel};
use crate::search::{Hooks, Key};
use aver_core::NodeId;
use aver_core::raft::{DeliveryClass, Renaming, Role};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A signature of `s` that no renaming changes: it looks at ids only to ask "is this the
/// server itself?".
fn signature(s: &Server) -> u64 {
    let r = &s.raft;
    let me = r.id();
    let mut h = stable_hasher();
    (
        s.down,
        s.crashed_leading,
        s.timers,
        s.disk.is_some(),
        s.service.len(),
    )
        .hash(&mut h);
    (r.term(), r.role_kind(), r.commit_index(), r.applied_index()).hash(&mut h);
    (
        r.voted_for().map(|v| v == me),
        r.leader_hint().map(|l| l == me),
    )
        .hash(&mut h);
    r.log().base().hash(&mut h);
    for e in r.log().entries() {
        e.term.hash(&mut h);
    }
    match r.role() {
        Role::Follower => {}
        Role::Candidate { votes } => votes.count_ones().hash(&mut h),
        Role::Leader { progress, .. } => {
            let mut p = progress.clone();
            p.sort();
            p.hash(&mut h);
        }
    }
    h.finish()
}

/// A command under the permutation `perm` (old id → new id): its proposer is renamed.
pub fn rename_cmd(perm: &[u32], c: Cmd) -> Cmd {
    (c & 0xF0) | perm[(c & 0xF) as usize] as u8
}

/// The renaming of ids, commands and snapshot data by `perm`, handed to `body`.
fn with_renaming<R>(perm: &[u32], body: impl FnOnce(&Renaming<'_, Cmd>) -> R) -> R {
    let ids = |n: NodeId| NodeId(perm[n.0 as usize]);
    let command = |c: &Cmd| rename_cmd(perm, *c);
    let data = |d: &[u8]| -> Arc<[u8]> { d.iter().map(|&c| rename_cmd(perm, c)).collect() };
    body(&Renaming {
        ids: &ids,
        command: &command,
        snapshot_data: &data,
    })
}

/// Server `i` of `state` renamed by `perm` (it becomes server `perm[i]`).
fn renamed_server(state: &RaftState, i: usize, s: &Server, perm: &[u32]) -> Server {
    let to = perm[i] as usize;
    with_renaming(perm, |renaming| Server {
        raft: s
            .raft
            .renamed(Arc::clone(&state.shared.configs[to]), renaming),
        disk: s.disk.as_ref().map(|d| renaming.durable(d)),
        timers: s.timers,
        down: s.down,
        crashed_leading: s.crashed_leading,
        service: s.service.iter().map(|&c| rename_cmd(perm, c)).collect(),
    })
}

/// An envelope renamed by `perm`.
fn renamed_envelope(e: &Envelope, perm: &[u32]) -> Envelope {
    let ids = |n: NodeId| NodeId(perm[n.0 as usize]);
    with_renaming(perm, |renaming| Envelope {
        src: ids(e.src),
        dst: ids(e.dst),
        msg: renaming.message(&e.msg),
    })
}

/// `state` with every id renamed by `perm` (server `i` becomes server `perm[i]`).
pub fn renamed(state: &RaftState, perm: &[u32]) -> RaftState {
    let mut servers = state.servers.clone();
    for (i, s) in state.servers.iter().enumerate() {
        servers[perm[i] as usize] = Arc::new(Hashed::new(renamed_server(state, i, s, perm)));
    }
    let mut network: Vec<Env> = state
        .network
        .iter()
        .map(|e| Arc::new(Hashed::new(renamed_envelope(e, perm))))
        .collect();
    if state.shared.network == NetworkKind::Ordered {
        network.sort_by_key(|e| (e.src, e.dst));
    } else {
        network.sort();
    }
    RaftState {
        servers,
        network: Arc::new(network),
        applied: state.applied.iter().map(|&c| rename_cmd(perm, c)).collect(),
        fault: state.fault.clone(),
        events: state.events,
        spent: state.spent,
        leaders: state.leaders,
        shared: Arc::clone(&state.shared),
    }
}

/// Every permutation that orders servers by signature: `order` lists server indices sorted
/// by signature; servers with equal signatures may be placed in any order among themselves.
fn candidates(sigs: &[u64]) -> Vec<Vec<u32>> {
    let n = sigs.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| sigs[i]);
    // Placements: position -> server; extend group by group with every arrangement.
    let mut placements: Vec<Vec<usize>> = vec![Vec::new()];
    let mut k = 0;
    while k < n {
        let mut end = k + 1;
        while end < n && sigs[order[end]] == sigs[order[k]] {
            end += 1;
        }
        let group = &order[k..end];
        let mut next = Vec::new();
        for p in &placements {
            for arrangement in permutations(group) {
                let mut q = p.clone();
                q.extend(arrangement);
                next.push(q);
            }
        }
        placements = next;
        k = end;
    }
    // A placement puts server `placement[pos]` at position `pos`: perm[server] = pos.
    placements
        .into_iter()
        .map(|placement| {
            let mut perm = vec![0u32; n];
            for (pos, &server) in placement.iter().enumerate() {
                perm[server] = pos as u32;
            }
            perm
        })
        .collect()
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for k in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(k);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

/// The canonical representative of `state`'s class (see the module docs), with its key.
/// Among candidates the least (core, pool) hash pair wins, so that states whose servers are
/// equal up to renaming get their servers named alike, whatever their pools (which lets
/// covering compare their pools).
pub fn canonical(state: &RaftState, covering: bool) -> (RaftState, Key) {
    let sigs: Vec<u64> = state.servers.iter().map(|s| signature(s)).collect();
    let mut best: Option<(RaftState, Key)> = None;
    for perm in candidates(&sigs) {
        let identity = perm.iter().enumerate().all(|(i, &p)| p as usize == i);
        // On the ordered network only each channel's order matters; renaming sorts messages
        // by channel, so the identity is renamed too, to compare like with like.
        let candidate = if identity && state.shared.network != NetworkKind::Ordered {
            state.clone()
        } else {
            renamed(state, &perm)
        };
        let key = key_of(&candidate, covering);
        let better = best
            .as_ref()
            .is_none_or(|(_, b)| (key.core, pool_hash(&key)) < (b.core, pool_hash(b)));
        if better {
            best = Some((candidate, key));
        }
    }
    best.expect("at least one candidate")
}

fn pool_hash(key: &Key) -> u64 {
    stable_hash(&key.pool)
}

/// The canonical representative of `state`'s class.
pub fn representative(state: &RaftState) -> RaftState {
    canonical(state, false).0
}

/// The key of `state` as it is named: with covering, the servers, the apply record and the
/// budgets spent form the core and the messages in flight the pool; without, the whole state
/// is the core.
fn key_of(state: &RaftState, covering: bool) -> Key {
    if !covering {
        return Key {
            core: stable_hash(state),
            pool: Vec::new(),
        };
    }
    let pool = merged_pool(state);
    Key {
        core: stable_hash(&(
            &state.servers,
            &state.applied,
            &state.fault,
            &state.spent,
            &state.leaders,
        )),
        pool,
    }
}

/// The hashes of `state`'s messages in flight as the search sees them, sorted and without
/// repeats: a message's own hash, or for a message in a class of equivalent deliveries
/// ([`RaftState::delivery_classes`]) its class's, so all members of a class count as one.
fn merged_pool(state: &RaftState) -> Vec<u64> {
    let classes = state.delivery_classes();
    let mut pool: Vec<u64> = state
        .network
        .iter()
        .enumerate()
        .map(|(k, e)| match classes.as_ref().and_then(|c| c[k]) {
            Some(class) => class_hash(e.dst, class, None),
            None => e.hash_value(),
        })
        .collect();
    pool.sort_unstable();
    pool.dedup();
    pool
}

/// The hash that stands for class `class` of deliveries to `dst`, renamed by `perm` (if any).
fn class_hash(dst: NodeId, class: DeliveryClass, perm: Option<&[u32]>) -> u64 {
    let id = |n: NodeId| perm.map_or(n, |p| NodeId(p[n.0 as usize]));
    let class = match class {
        DeliveryClass::StaleRequest(src, kind) => DeliveryClass::StaleRequest(id(src), kind),
        DeliveryClass::StaleAck(src, round) => DeliveryClass::StaleAck(id(src), round),
        DeliveryClass::HeldAppend {
            from,
            end,
            commit,
            read_ctx,
        } => DeliveryClass::HeldAppend {
            from: id(from),
            end,
            commit,
            read_ctx,
        },
        notice @ DeliveryClass::TermNotice(_) => notice,
    };
    stable_hash(&("delivery class", id(dst), class))
}

/// Covering applies: the network keeps every message sent (see [`crate::search`]).
pub fn covering(model: &RaftModel) -> bool {
    model.cfg.covering && model.cfg.network.duplicating()
}

/// A part's hash as [`Hashed`] writes it, so that a state's hash can be assembled from the
/// hashes of its parts exactly as hashing the state itself would write them.
struct PartHash(u64);

impl Hash for PartHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The lexicographic rank of `perm` among the permutations of its length (0: identity).
fn rank(perm: &[u32]) -> usize {
    let n = perm.len();
    (0..n).fold(0, |r, i| {
        let smaller_after = perm[i + 1..].iter().filter(|&&q| q < perm[i]).count();
        r * (n - i) + smaller_after
    })
}

/// `key_of(&renamed(state, perm), covering)`, assembled from the renamed hashes of the
/// servers and envelopes (cached in them, see [`Hashed::renamed_hash`]) without building the
/// renamed state: the same writes reach the same hasher in the same order — the servers in
/// their new positions, the envelopes sorted by hash (the order `renamed` sorts them in, by
/// hash first), the renamed apply record and the fault — so the key is bit for bit the one
/// the renamed state has (tested against [`canonical`]). Unordered networks only.
fn assembled_key(
    state: &RaftState,
    classes: &Option<Vec<Option<DeliveryClass>>>,
    perm: &[u32],
    covering: bool,
) -> Key {
    let r = rank(perm);
    let mut servers: Vec<PartHash> = (0..perm.len()).map(|_| PartHash(0)).collect();
    for (i, s) in state.servers.iter().enumerate() {
        let h = s.renamed_hash(r, |v| stable_hash(&renamed_server(state, i, v, perm)));
        servers[perm[i] as usize] = PartHash(h);
    }
    let mut pool: Vec<u64> = state
        .network
        .iter()
        .enumerate()
        .map(|(k, e)| match classes.as_ref().and_then(|c| c[k]) {
            Some(class) => class_hash(e.dst, class, Some(perm)),
            None => e.renamed_hash(r, |v| stable_hash(&renamed_envelope(v, perm))),
        })
        .collect();
    pool.sort_unstable();
    let applied: Vec<Cmd> = state.applied.iter().map(|&c| rename_cmd(perm, c)).collect();
    if covering {
        pool.dedup();
        let core = stable_hash(&(
            &servers,
            &applied,
            &state.fault,
            &state.spent,
            &state.leaders,
        ));
        return Key { core, pool };
    }
    let network: Vec<PartHash> = pool.into_iter().map(PartHash).collect();
    Key {
        core: stable_hash(&(
            &servers,
            &network,
            &applied,
            &state.fault,
            &state.spent,
            &state.leaders,
        )),
        pool: Vec::new(),
    }
}

/// The key of `state`'s canonical representative, as `canonical(state, covering).1` computes
/// it, but assembled from cached hashes (see [`assembled_key`]): the canonical key is the
/// least (core, pool hash) over the candidate namings, so only the candidates' keys are
/// needed, never the renamed states.
pub fn canonical_key(state: &RaftState, covering: bool) -> Key {
    if state.shared.network == NetworkKind::Ordered {
        return canonical(state, covering).1;
    }
    let sigs: Vec<u64> = state.servers.iter().map(|s| signature(s)).collect();
    let classes = if covering {
        state.delivery_classes()
    } else {
        None
    };
    candidates(&sigs)
        .iter()
        .map(|perm| assembled_key(state, &classes, perm, covering))
        .min_by_key(|k| (k.core, pool_hash(k)))
        .expect("at least one candidate")
}

/// The search key of `state` (see [`crate::search::Key`]): canonical under renaming when the
/// model's `symmetry` is on; split into servers and pool when covering applies.
pub fn key(model: &RaftModel, state: &RaftState) -> Key {
    let covering = covering(model);
    if model.cfg.symmetry {
        canonical_key(state, covering)
    } else {
        key_of(state, covering)
    }
}

/// `next` equals `last` but for more messages in flight (a step that only grew the pool).
/// With equivalent messages merged, only a message of a new class counts as growth.
pub fn pool_growth(_: &RaftModel, last: &RaftState, next: &RaftState) -> bool {
    next.network.len() > last.network.len()
        && next.servers == last.servers
        && next.applied == last.applied
        && next.leaders == last.leaders
        && next.fault == last.fault
        && next.spent == last.spent
        && (!next.shared.merge_equivalent || merged_pool(next).len() > merged_pool(last).len())
}

/// The search hooks of `model`: its key, and pool growth when covering applies.
pub fn hooks(model: &RaftModel) -> Hooks<'static, RaftModel> {
    Hooks {
        key: &key,
        pool_growth: if covering(model) {
            Some(&pool_growth)
        } else {
            None
        },
        on_state: None,
    }
}
