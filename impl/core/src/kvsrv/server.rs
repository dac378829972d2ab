//! The kvsrv server: one [`Store`], answering every request to its sender. It keeps nothing
//! per client — no dedup table, no session — because versioned puts make a duplicate harmless:
//! a put applies only at the version it names, and versions only grow.

use super::invariants;
use super::message::Message;
use super::store::{OpResult, Store};
use super::{Never, ServerReady};
use crate::contract::{Core, NodeId, Violation};

/// The server core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Server {
    store: Store,
    ready: ServerReady,
    /// The first violated step invariant (KVSRV-1), if any.
    violation: Option<Violation>,
}

impl Server {
    /// A server with an empty store.
    pub fn new() -> Server {
        Server::default()
    }

    /// The store (for checkers and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The first step invariant this server saw violated (KVSRV-1), if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Executes a request and answers it.
    fn on_request(&mut self, from: NodeId, msg: Message) {
        let seq = msg.seq();
        let reply = match msg {
            Message::Get { key, .. } => Message::GetReply {
                seq,
                result: self.store.get(&key),
            },
            Message::Put {
                key,
                value,
                version,
                ..
            } => {
                let before = self.store.entry(&key).cloned();
                let result = self.store.put(&key, &value, version);
                let after = self.store.entry(&key);
                let step = invariants::version_step(&key, before.as_ref(), after, &value, result);
                if let Err(v) = step {
                    self.violation.get_or_insert(v);
                }
                Message::PutReply { seq, result }
            }
            _ => unreachable!("on_request gets requests only"),
        };
        self.ready.messages.push((from, reply));
    }

    /// Applies one operation directly (for the rsm-style services that reuse this store, and
    /// for tests); the same code path as a request.
    pub fn apply(&mut self, op: &super::store::Op) -> OpResult {
        self.store.apply(op)
    }
}

impl Core for Server {
    type Persist = Never;
    type Msg = Message;
    type Apply = Never;
    type Timer = Never;

    /// Requests are executed and answered; a reply sent to the server is ignored.
    fn on_message(&mut self, from: NodeId, msg: Message) {
        if msg.is_request() {
            self.on_request(from, msg);
        }
    }

    fn on_timeout(&mut self, timer: Never) {
        match timer {}
    }

    fn take_ready(&mut self) -> ServerReady {
        std::mem::take(&mut self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvsrv::message::Seq;
    use crate::kvsrv::store::{GetResult, PutResult, Version};

    #[test]
    fn answers_each_request_to_its_sender() {
        let mut s = Server::new();
        let put = Message::Put {
            seq: Seq(1),
            key: "k".into(),
            value: "a".into(),
            version: Version(0),
        };
        s.on_message(NodeId(7), put.clone());
        s.on_message(NodeId(8), put);
        s.on_message(
            NodeId(7),
            Message::Get {
                seq: Seq(2),
                key: "k".into(),
            },
        );
        let sent = s.take_ready().messages;
        let found = GetResult::Value {
            value: "a".into(),
            version: Version(1),
        };
        assert_eq!(
            sent,
            vec![
                (
                    NodeId(7),
                    Message::PutReply {
                        seq: Seq(1),
                        result: PutResult::Ok
                    }
                ),
                (
                    NodeId(8),
                    Message::PutReply {
                        seq: Seq(1),
                        result: PutResult::Version
                    }
                ),
                (
                    NodeId(7),
                    Message::GetReply {
                        seq: Seq(2),
                        result: found
                    }
                ),
            ]
        );
        assert!(s.violation().is_none());
    }
}
