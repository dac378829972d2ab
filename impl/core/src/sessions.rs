//! Client sessions: the duplicate-detection table of a replicated service.
//!
//! A clerk numbers its requests `1, 2, 3, …` (`Seq`) under its own [`ClientId`] and has at most
//! one request outstanding; it retries a request, with the same number, until it gets an
//! answer. The service remembers, per client, the highest sequence number it has executed and
//! that request's reply. A request with that number again is a retry: it gets the remembered
//! reply and is not executed a second time. A lower number is a stale copy that the client no
//! longer waits for. So each request takes effect at most once, however often the network
//! duplicates it and however many servers it reaches.
//!
//! The table is part of the service's state: it goes into snapshots, and in the sharded KV it
//! moves with each shard (a retried request may reach the shard's new owner).
//!
//! This module is the sharding code's own copy of the table, kept separate so that it can be
//! replaced by the replicated KV's one (same idea: client id, sequence number → last reply)
//! without touching the shard logic.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Identity of a clerk, unique among the clerks of one service.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

/// A clerk's request number: 1 for its first request, one more for each next one.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the table says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dedup<'a, R> {
    /// Never executed: execute it, then [`Sessions::record`] the reply.
    New,
    /// Already executed: answer with this reply, do not execute again.
    Duplicate(&'a R),
    /// Older than the client's latest executed request: the client has its answer already.
    Stale,
}

/// The last executed request of one client and its reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Session<R> {
    /// The client's highest executed sequence number.
    pub seq: Seq,
    /// The reply that request got.
    pub reply: R,
}

/// The duplicate-detection table: per client, its last executed request and that reply.
/// One entry per client (a limit by construction: a clerk has one request outstanding).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sessions<R> {
    table: BTreeMap<ClientId, Session<R>>,
}

impl<R> Default for Sessions<R> {
    fn default() -> Self {
        Sessions {
            table: BTreeMap::new(),
        }
    }
}

impl<R> Sessions<R> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies request `seq` of `client`.
    pub fn check(&self, client: ClientId, seq: Seq) -> Dedup<'_, R> {
        match self.table.get(&client) {
            Some(s) if s.seq == seq => Dedup::Duplicate(&s.reply),
            Some(s) if s.seq > seq => Dedup::Stale,
            _ => Dedup::New,
        }
    }

    /// Records that request `seq` of `client` was executed with `reply`. Sequence numbers of
    /// one client only grow: recording an older one is a caller bug.
    pub fn record(&mut self, client: ClientId, seq: Seq, reply: R) {
        if let Some(s) = self.table.get(&client) {
            assert!(s.seq < seq, "{client}: {seq} recorded after {}", s.seq);
        }
        self.table.insert(client, Session { seq, reply });
    }

    /// The last executed request of `client`, if any.
    pub fn get(&self, client: ClientId) -> Option<&Session<R>> {
        self.table.get(&client)
    }

    /// Number of clients with a session.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no client has a session.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every session, by client.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &Session<R>)> {
        self.table.iter().map(|(c, s)| (*c, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_gets_the_recorded_reply_and_older_is_stale() {
        let mut s: Sessions<u8> = Sessions::new();
        let c = ClientId(7);
        assert_eq!(s.check(c, Seq(1)), Dedup::New);
        s.record(c, Seq(1), 10);
        assert_eq!(s.check(c, Seq(1)), Dedup::Duplicate(&10));
        assert_eq!(s.check(c, Seq(2)), Dedup::New);
        s.record(c, Seq(2), 20);
        assert_eq!(s.check(c, Seq(1)), Dedup::Stale);
        assert_eq!(s.check(ClientId(8), Seq(1)), Dedup::New);
        assert_eq!(s.len(), 1);
    }
}
