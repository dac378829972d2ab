//! The service a real node runs: the kvraft server core on the Raft core, over the
//! Put/Append/Get store ([`AppendStore`]). The runtime adds no protocol of its own: requests,
//! the dedup table, snapshots and replies are the cores' (specs/kv.md).

use aver_core::kvraft::{
    AppendOp, AppendReply, AppendStore, ClientMsg, KvEntry, KvMsg, RaftKvServer,
};
use aver_core::raft::Message;

/// The store a node replicates.
pub type Store = AppendStore;
/// An operation on it.
pub type Op = AppendOp;
/// Its answer.
pub type OpReply = AppendReply;
/// What the Raft log holds.
pub type Entry = KvEntry<Store>;
/// The core a node runs.
pub type Server = RaftKvServer<Store>;
/// A Raft message between servers.
pub type PeerMessage = Message<Entry>;
/// Every message the server core takes or emits.
pub type ServerMessage = KvMsg<PeerMessage, Op, OpReply>;
/// What clerks and servers say to each other.
pub type ClientMessage = ClientMsg<Op, OpReply>;
