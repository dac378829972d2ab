//! The 6.5840 shard controller (`shardctrler`): numbered configurations made by `Join`,
//! `Leave` and `Move`, read by `Query`.
//!
//! Configuration 0 has no groups and every shard on group 0. A valid `Join` (groups that are
//! not members, each with servers, gid 0 reserved, no server in two groups), `Leave` (member
//! groups) or `Move` (an existing shard to a member group) creates configuration `n + 1` and
//! returns its number; an invalid one is refused and creates nothing. `Query(k)` returns
//! configuration `k`, or the latest for −1 (`None`) or a number not reached yet.
//!
//! **What the model fixes and what it leaves open.** The groups of every configuration follow
//! from the order of the operations, and so does its number; which group holds which shard
//! is the implementation's choice (rebalancing), so the model does not compute it. It
//! requires instead what every correct controller satisfies whatever its choice:
//!
//! * every answer about configuration `k` shows the same shard assignment (the state
//!   *learns* it from the first `Query` that, in the order being tried, returns `k`, and
//!   later answers must agree — as if the assignment had been chosen when `k` was made);
//! * configuration 0 assigns every shard to group 0;
//! * a `Join` or `Leave` configuration assigns every shard to a member (to group 0 when none
//!   is left) and is balanced (max − min ≤ 1 shards per member);
//! * a `Move(s, g)` configuration is its predecessor with shard `s` on `g`.
//!
//! Learning keeps the model deterministic (the output decides the next state), so it runs
//! on the plain search. Equal states behave the same from then on, as the search requires.

use crate::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A group id (0: no group).
pub type CtrlGid = u64;
/// Groups and their servers.
pub type CtrlGroups = BTreeMap<CtrlGid, Vec<u64>>;

/// A controller operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CtrlInput {
    /// Add groups (gid → servers).
    Join(CtrlGroups),
    /// Remove groups.
    Leave(BTreeSet<CtrlGid>),
    /// Put one shard on one member group.
    Move {
        /// The shard.
        shard: u64,
        /// Its group.
        gid: CtrlGid,
    },
    /// Read configuration `k` (`None`: the latest).
    Query(Option<u64>),
}

/// One configuration as a `Query` returned it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CtrlConfig {
    /// Its number.
    pub num: u64,
    /// `shards[s]` holds shard `s`.
    pub shards: Vec<CtrlGid>,
    /// Member groups and their servers.
    pub groups: CtrlGroups,
}

/// A controller operation's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CtrlOutput {
    /// `Join`, `Leave` or `Move` made configuration number `n`.
    Done(u64),
    /// The operation was refused (it made no configuration).
    Err,
    /// What a `Query` returned.
    Config(CtrlConfig),
}

/// How a configuration was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Made {
    Initial,
    Rebalance,
    Move(u64, CtrlGid),
}

/// One configuration as far as the history has shown it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    groups: Arc<CtrlGroups>,
    made: Made,
    /// Its shard assignment, once a `Query` showed it.
    shards: Option<Arc<Vec<CtrlGid>>>,
}

/// Every configuration made so far, in order.
pub type CtrlState = Vec<Slot>;

/// The controller model over `shards` shards (the lab's `NShards = 10` by default).
#[derive(Clone, Copy, Debug)]
pub struct ShardCtrl {
    /// Number of shards.
    pub shards: usize,
}

impl Default for ShardCtrl {
    fn default() -> Self {
        ShardCtrl { shards: 10 }
    }
}

impl ShardCtrl {
    /// The configuration `input` makes from `latest`, or `None` if it is refused.
    fn next(&self, latest: &Slot, input: &CtrlInput) -> Option<Slot> {
        let groups = &*latest.groups;
        let (groups, made) = match input {
            CtrlInput::Join(joining) => {
                if !valid_join(groups, joining) {
                    return None;
                }
                let mut next = groups.clone();
                next.extend(joining.iter().map(|(g, s)| (*g, s.clone())));
                (Arc::new(next), Made::Rebalance)
            }
            CtrlInput::Leave(leaving) => {
                if leaving.is_empty() || !leaving.iter().all(|g| groups.contains_key(g)) {
                    return None;
                }
                let mut next = groups.clone();
                next.retain(|g, _| !leaving.contains(g));
                (Arc::new(next), Made::Rebalance)
            }
            CtrlInput::Move { shard, gid } => {
                if *shard as usize >= self.shards || !groups.contains_key(gid) {
                    return None;
                }
                (latest.groups.clone(), Made::Move(*shard, *gid))
            }
            CtrlInput::Query(_) => unreachable!("a query makes no configuration"),
        };
        Some(Slot {
            groups,
            made,
            shards: None,
        })
    }

    /// Whether `shards` can be configuration `k`'s assignment, given what is known of its
    /// neighbours.
    fn fits(&self, state: &CtrlState, k: usize, shards: &[CtrlGid]) -> bool {
        if shards.len() != self.shards {
            return false;
        }
        let slot = &state[k];
        let own = match slot.made {
            Made::Initial => shards.iter().all(|g| *g == 0),
            Made::Rebalance => balanced(&slot.groups, shards),
            Made::Move(s, g) => {
                let before = state[k - 1].shards.as_deref();
                shards[s as usize] == g && before.is_none_or(|b| same_but(b, shards, s))
            }
        };
        let after = state.get(k + 1).and_then(|next| match next.made {
            Made::Move(s, _) => next.shards.as_deref().map(|n| same_but(shards, n, s)),
            _ => None,
        });
        own && after.unwrap_or(true)
    }
}

fn valid_join(groups: &CtrlGroups, joining: &CtrlGroups) -> bool {
    if joining.is_empty() {
        return false;
    }
    let mut in_use: BTreeMap<u64, CtrlGid> = groups
        .iter()
        .flat_map(|(g, servers)| servers.iter().map(move |s| (*s, *g)))
        .collect();
    for (gid, servers) in joining {
        if *gid == 0 || groups.contains_key(gid) || servers.is_empty() {
            return false;
        }
        for s in servers {
            if in_use.insert(*s, *gid).is_some_and(|other| other != *gid) {
                return false;
            }
        }
    }
    true
}

/// Every shard on a member (on 0 when there is none), and max − min ≤ 1 per member.
fn balanced(groups: &CtrlGroups, shards: &[CtrlGid]) -> bool {
    if groups.is_empty() {
        return shards.iter().all(|g| *g == 0);
    }
    let mut load: BTreeMap<CtrlGid, usize> = groups.keys().map(|g| (*g, 0)).collect();
    for g in shards {
        match load.get_mut(g) {
            Some(n) => *n += 1,
            None => return false,
        }
    }
    let min = load.values().min().copied().unwrap_or(0);
    let max = load.values().max().copied().unwrap_or(0);
    max - min <= 1
}

/// `a` and `b` agree on every shard but `except`.
fn same_but(a: &[CtrlGid], b: &[CtrlGid], except: u64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .enumerate()
            .all(|(s, (x, y))| s as u64 == except || x == y)
}

impl Model for ShardCtrl {
    type State = CtrlState;
    type Input = CtrlInput;
    type Output = CtrlOutput;

    fn init(&self) -> CtrlState {
        vec![Slot {
            groups: Arc::new(CtrlGroups::new()),
            made: Made::Initial,
            shards: None,
        }]
    }

    fn step(
        &self,
        state: &CtrlState,
        input: &CtrlInput,
        output: Option<&CtrlOutput>,
    ) -> Option<CtrlState> {
        let latest = state.last().expect("configuration 0 always exists");
        if let CtrlInput::Query(num) = input {
            let k = num
                .filter(|k| (*k as usize) < state.len())
                .map_or(state.len() - 1, |k| k as usize);
            return match output {
                None => Some(state.clone()),
                Some(CtrlOutput::Config(c)) => self.learn(state, k, c),
                Some(_) => None,
            };
        }
        match (self.next(latest, input), output) {
            (Some(slot), None) => Some(with(state, slot)),
            (Some(slot), Some(CtrlOutput::Done(n))) if *n as usize == state.len() => {
                Some(with(state, slot))
            }
            (None, None | Some(CtrlOutput::Err)) => Some(state.clone()),
            _ => None,
        }
    }

    fn is_read_only(&self, input: &CtrlInput, output: Option<&CtrlOutput>) -> bool {
        matches!(input, CtrlInput::Query(_)) && output.is_none()
    }

    fn describe_operation(&self, input: &CtrlInput, output: Option<&CtrlOutput>) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(CtrlOutput::Done(n)) => format!("cfg{n}"),
            Some(CtrlOutput::Err) => "refused".to_string(),
            Some(CtrlOutput::Config(c)) => format!(
                "cfg{} shards {:?} groups {:?}",
                c.num,
                c.shards,
                c.groups.keys().collect::<Vec<_>>()
            ),
        };
        let call = match input {
            CtrlInput::Join(groups) => format!("join({:?})", groups.keys().collect::<Vec<_>>()),
            CtrlInput::Leave(gids) => format!("leave({gids:?})"),
            CtrlInput::Move { shard, gid } => format!("move(s{shard} -> g{gid})"),
            CtrlInput::Query(None) => "query(-1)".to_string(),
            CtrlInput::Query(Some(k)) => format!("query({k})"),
        };
        format!("{call} -> {out}")
    }

    fn describe_state(&self, state: &CtrlState) -> String {
        let latest = state.last().expect("configuration 0 always exists");
        let known = state.iter().filter(|s| s.shards.is_some()).count();
        format!(
            "latest cfg{} groups {:?} ({known} assignments seen)",
            state.len() - 1,
            latest.groups.keys().collect::<Vec<_>>()
        )
    }
}

impl ShardCtrl {
    /// A query answered `c` for configuration `k`.
    fn learn(&self, state: &CtrlState, k: usize, c: &CtrlConfig) -> Option<CtrlState> {
        if c.num as usize != k || c.groups != *state[k].groups {
            return None;
        }
        match &state[k].shards {
            Some(known) => (**known == c.shards).then(|| state.clone()),
            None if self.fits(state, k, &c.shards) => {
                let mut next = state.clone();
                next[k].shards = Some(Arc::new(c.shards.clone()));
                Some(next)
            }
            None => None,
        }
    }
}

fn with(state: &CtrlState, slot: Slot) -> CtrlState {
    let mut next = Vec::with_capacity(state.len() + 1);
    next.extend(state.iter().cloned());
    next.push(slot);
    next
}

// ---- reading histories -----------------------------------------------------------------------

type Field = (String, String);

fn bad<T>(field: &str, message: impl Into<String>) -> Result<T, Field> {
    Err((field.to_string(), message.into()))
}

fn number(v: &serde_json::Value, field: &str) -> Result<u64, Field> {
    v.as_u64().map_or_else(
        || bad(field, format!("expected a non-negative integer, found {v}")),
        Ok,
    )
}

/// `{"gid": [server, …], …}`.
fn groups(v: &serde_json::Value, field: &str) -> Result<CtrlGroups, Field> {
    let Some(map) = v.as_object() else {
        return bad(field, format!("expected {{\"gid\": [servers]}}, found {v}"));
    };
    let mut out = CtrlGroups::new();
    for (gid, servers) in map {
        let Ok(gid) = gid.parse::<u64>() else {
            return bad(
                field,
                format!("group id {gid:?} is not a non-negative integer"),
            );
        };
        let Some(list) = servers.as_array() else {
            return bad(field, format!("servers of group {gid}: expected a list"));
        };
        let list = list.iter().map(|s| number(s, field));
        out.insert(gid, list.collect::<Result<_, _>>()?);
    }
    Ok(out)
}

fn config(v: &serde_json::Value) -> Result<CtrlConfig, Field> {
    let get = |name: &str| v.get(name).unwrap_or(&serde_json::Value::Null);
    let Some(shards) = get("shards").as_array() else {
        return bad("output", "expected {\"num\", \"shards\", \"groups\"}");
    };
    Ok(CtrlConfig {
        num: number(get("num"), "output")?,
        shards: shards
            .iter()
            .map(|g| number(g, "output"))
            .collect::<Result<_, _>>()?,
        groups: groups(get("groups"), "output")?,
    })
}

/// `{"num": n}` or `{"err": "why"}`.
fn change(v: &serde_json::Value) -> Result<CtrlOutput, Field> {
    if v.get("err").is_some() {
        return Ok(CtrlOutput::Err);
    }
    match v.get("num") {
        Some(n) => Ok(CtrlOutput::Done(number(n, "output")?)),
        None => bad(
            "output",
            format!("expected {{\"num\"}} or {{\"err\"}}, found {v}"),
        ),
    }
}

impl crate::formats::Decode for ShardCtrl {
    /// `f` is `join` (value `{"gid": [servers]}`), `leave` (value `[gids]`), `move` (value
    /// `{"shard", "gid"}`) or `query` (value a configuration number, or −1 / `null` for the
    /// latest). Outputs: `{"num": n}` or `{"err": "why"}` for the first three, and
    /// `{"num", "shards", "groups"}` for a query.
    fn decode(record: &crate::formats::Record) -> Result<(CtrlInput, Option<CtrlOutput>), Field> {
        let v = &record.value;
        let input = match record.f.as_str() {
            "join" => CtrlInput::Join(groups(v, "value")?),
            "leave" => {
                let Some(list) = v.as_array() else {
                    return bad("value", format!("expected a list of gids, found {v}"));
                };
                let gids = list.iter().map(|g| number(g, "value"));
                CtrlInput::Leave(gids.collect::<Result<_, _>>()?)
            }
            "move" => CtrlInput::Move {
                shard: number(v.get("shard").unwrap_or(v), "value")?,
                gid: number(v.get("gid").unwrap_or(v), "value")?,
            },
            "query" => match v.as_i64() {
                _ if v.is_null() => CtrlInput::Query(None),
                Some(-1) => CtrlInput::Query(None),
                _ => CtrlInput::Query(Some(number(v, "value")?)),
            },
            other => {
                return bad(
                    "f",
                    format!("unknown operation {other:?} (expected join, leave, move or query)"),
                );
            }
        };
        let output = match (&input, &record.output) {
            (_, None) => None,
            (CtrlInput::Query(_), Some(o)) => Some(CtrlOutput::Config(config(o)?)),
            (_, Some(o)) => Some(change(o)?),
        };
        Ok((input, output))
    }
}
