//! The dedup table: for each client, the sequence number of its latest applied write and the
//! reply it got (Raft thesis §6.3, "linearizable semantics"). It is part of the replicated
//! state: every replica applies the same commands in the same order, so every replica builds
//! the same table, and it is saved in (and restored from) every snapshot — a table that
//! forgot a client after a restart would let that client's retried write execute twice.

use super::types::{ClientId, Seq};
use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::raft::LogIndex;
use std::collections::BTreeMap;

/// Most sessions a table holds by default. Beyond it, the session whose latest write is
/// oldest in the log is evicted (the same one on every replica); an evicted client loses
/// exactly-once for a write it is still retrying. Far above any lab scenario's clients.
pub const SESSIONS_MAX: usize = 1 << 20;

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Session<R> {
    /// Sequence number of the client's latest applied write.
    pub seq: Seq,
    /// The reply that write got.
    pub reply: R,
    /// Log index where it was applied (for eviction order).
    pub index: LogIndex,
}

/// What the table says about a request `(client, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a, R> {
    /// Not applied yet: execute it.
    New,
    /// The client's latest write, already applied: answer with its reply, do not execute.
    Duplicate(&'a R),
    /// Older than the client's latest write: the client has moved on; nobody waits for it.
    Stale,
}

/// The dedup table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sessions<R> {
    table: BTreeMap<ClientId, Session<R>>,
    max: usize,
}

impl<R> Default for Sessions<R> {
    fn default() -> Self {
        Sessions::with_max(SESSIONS_MAX)
    }
}

impl<R> Sessions<R> {
    /// An empty table holding at most `max` sessions.
    pub fn with_max(max: usize) -> Self {
        assert!(max >= 1, "a session table holds at least one session");
        Sessions {
            table: BTreeMap::new(),
            max,
        }
    }

    /// Classifies a request.
    pub fn lookup(&self, client: ClientId, seq: Seq) -> Lookup<'_, R> {
        match self.table.get(&client) {
            Some(s) if seq == s.seq => Lookup::Duplicate(&s.reply),
            Some(s) if seq < s.seq => Lookup::Stale,
            _ => Lookup::New,
        }
    }

    /// Records that `(client, seq)` was applied at `index` with `reply`.
    pub fn record(&mut self, client: ClientId, seq: Seq, reply: R, index: LogIndex) {
        if !self.table.contains_key(&client) && self.table.len() >= self.max {
            self.evict_oldest();
        }
        self.table.insert(client, Session { seq, reply, index });
        debug_assert!(self.table.len() <= self.max);
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .table
            .iter()
            .min_by_key(|(client, s)| (s.index, **client))
            .map(|(client, _)| *client);
        if let Some(client) = oldest {
            self.table.remove(&client);
        }
    }

    /// One client's session.
    pub fn get(&self, client: ClientId) -> Option<&Session<R>> {
        self.table.get(&client)
    }

    /// Every session, by client.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &Session<R>)> {
        self.table.iter().map(|(c, s)| (*c, s))
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no client has a session.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Forgets every session (only the seeded bug `dedup-not-in-snapshot` does, by restoring
    /// from a snapshot that lacks them).
    pub fn clear(&mut self) {
        self.table.clear();
    }
}

impl<R: Encode> Encode for Sessions<R> {
    fn encode(&self, out: &mut Vec<u8>) {
        crate::codec::put_varint(out, self.table.len() as u64);
        for (client, s) in &self.table {
            client.0.encode(out);
            s.seq.0.encode(out);
            s.index.0.encode(out);
            s.reply.encode(out);
        }
    }
}

impl<R: Decode> Sessions<R> {
    /// Reads a table encoded by [`Encode`], keeping `self`'s limit.
    pub fn decode_into(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let n = r.len("session count")?;
        let mut table = BTreeMap::new();
        for _ in 0..n {
            let client = ClientId(r.varint("session client")?);
            let seq = Seq(r.varint("session seq")?);
            let index = LogIndex(r.varint("session index")?);
            let reply = R::decode(r)?;
            if table
                .last_key_value()
                .is_some_and(|(last, _)| *last >= client)
            {
                return Err(r.error("sessions: clients out of order or repeated"));
            }
            table.insert(client, Session { seq, reply, index });
        }
        if table.len() > self.max {
            return Err(r.error(format!(
                "sessions: {} sessions exceed the limit {}",
                table.len(),
                self.max
            )));
        }
        self.table = table;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_classifies_and_eviction_takes_the_oldest_write() {
        let mut t = Sessions::with_max(2);
        let (a, b, c) = (ClientId(1), ClientId(2), ClientId(3));
        assert_eq!(t.lookup(a, Seq(1)), Lookup::New);
        t.record(a, Seq(1), 10u64, LogIndex(5));
        t.record(b, Seq(4), 20, LogIndex(3));
        assert_eq!(t.lookup(a, Seq(1)), Lookup::Duplicate(&10));
        assert_eq!(t.lookup(a, Seq(0)), Lookup::Stale);
        assert_eq!(t.lookup(a, Seq(2)), Lookup::New);
        t.record(c, Seq(1), 30, LogIndex(6));
        assert!(t.get(b).is_none(), "b's write at index 3 was the oldest");
        let mut back = Sessions::with_max(2);
        let bytes = t.to_bytes();
        back.decode_into(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back, t);
        let mut small = Sessions::<u64>::with_max(1);
        assert!(small.decode_into(&mut Reader::new(&bytes)).is_err());
    }
}
