//! The kvsrv message type on the simulated network: the [`Wire`] glue for
//! `aver_core::kvsrv::Message` (it must live here or in the core: the trait is this crate's).
//! The node kinds (server, clerk, lock client) and the 6.5840 kvsrv/lock tester are in the
//! `aver-tests` crate.

use crate::sim::{TraceHash, Wire, postcard_size};
use aver_core::kvsrv::Message;

impl Wire for Message {
    fn is_request(&self) -> bool {
        Message::is_request(self)
    }

    fn size(&self) -> u64 {
        postcard_size(self)
    }

    fn fingerprint(&self, hash: &mut TraceHash) {
        let kind = match self {
            Message::Get { .. } => 1,
            Message::Put { .. } => 2,
            Message::GetReply { .. } => 3,
            Message::PutReply { .. } => 4,
        };
        hash.word(kind);
        hash.word(self.seq().0);
    }

    fn label(&self) -> &'static str {
        self.kind()
    }

    /// One line; values longer than 16 bytes are shown by their length.
    fn describe(&self) -> String {
        match self {
            Message::Put {
                seq,
                key,
                value,
                version,
            } if value.len() > 16 => {
                format!("Put{seq}({key:?}, <{} bytes>, {version})", value.len())
            }
            Message::GetReply {
                seq,
                result: aver_core::kvsrv::GetResult::Value { value, version },
            } if value.len() > 16 => {
                format!("GetReply{seq}((<{} bytes>, {version}))", value.len())
            }
            other => other.to_string(),
        }
    }
}
