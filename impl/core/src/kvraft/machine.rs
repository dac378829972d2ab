//! The replicated state machine of a kvraft server: the store plus the dedup table.

use super::sessions::{Lookup, Sessions};
use super::store::Store;
use super::types::{ClientId, KvCommand, Seq};
use crate::codec::{DecodeError, Encode, Reader};
use crate::raft::LogIndex;
use crate::rsm::StateMachine;

/// What applying a command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// A read (served without touching the dedup table; reads are idempotent).
    Read,
    /// A write executed for the first time.
    Executed,
    /// A retried write already applied: answered from the dedup table, not executed.
    Duplicate,
    /// A write older than its client's latest: not executed, and nobody waits for it.
    Stale,
}

/// The output of applying one command (or answering one query).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvOutcome<R> {
    /// The reply for the client (`None` for a stale write).
    pub reply: Option<R>,
    /// What happened.
    pub effect: Effect,
    /// The command's client and sequence number (`None` for a ReadIndex query).
    pub id: Option<(ClientId, Seq)>,
}

/// Store + sessions. Replicas that apply the same commands hold equal machines (KV-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvMachine<St: Store> {
    store: St,
    sessions: Sessions<St::Reply>,
    /// Seeded bug `dedup-not-in-snapshot`: snapshots leave the sessions out.
    omit_sessions: bool,
}

impl<St: Store> KvMachine<St> {
    /// An empty machine whose dedup table holds at most `sessions_max` sessions.
    pub fn new(sessions_max: usize, omit_sessions: bool) -> Self {
        KvMachine {
            store: St::default(),
            sessions: Sessions::with_max(sessions_max),
            omit_sessions,
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The dedup table.
    pub fn sessions(&self) -> &Sessions<St::Reply> {
        &self.sessions
    }
}

impl<St: Store> StateMachine for KvMachine<St> {
    type Command = KvCommand<St::Op>;
    type Query = St::Op;
    type Output = KvOutcome<St::Reply>;

    fn apply(&mut self, index: LogIndex, c: &KvCommand<St::Op>) -> KvOutcome<St::Reply> {
        let id = Some((c.client, c.seq));
        if St::is_read(&c.op) {
            return KvOutcome {
                id,
                ..self.query(&c.op)
            };
        }
        let (reply, effect) = match self.sessions.lookup(c.client, c.seq) {
            Lookup::Duplicate(reply) => (Some(reply.clone()), Effect::Duplicate),
            Lookup::Stale => (None, Effect::Stale),
            Lookup::New => {
                let reply = self.store.apply(&c.op);
                self.sessions.record(c.client, c.seq, reply.clone(), index);
                (Some(reply), Effect::Executed)
            }
        };
        KvOutcome { reply, effect, id }
    }

    fn query(&self, op: &St::Op) -> KvOutcome<St::Reply> {
        KvOutcome {
            reply: Some(self.store.read(op)),
            effect: Effect::Read,
            id: None,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = self.store.to_bytes();
        if self.omit_sessions {
            Sessions::<St::Reply>::default().encode(&mut out);
        } else {
            self.sessions.encode(&mut out);
        }
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let store = St::decode(&mut r)?;
        let mut sessions = self.sessions.clone();
        sessions.decode_into(&mut r)?;
        r.finish()?;
        self.store = store;
        self.sessions = sessions;
        Ok(())
    }
}
