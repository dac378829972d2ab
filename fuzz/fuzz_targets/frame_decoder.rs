//! Frames from a peer or a client: split, check, decode as every frame type a node reads.
#![no_main]
use aver_runtime::frame;
use aver_runtime::kv::{Entry, Op};
use aver_runtime::wire::{Hello, PeerFrame, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((body, used))) = frame::split_frame(rest, 1 << 16) {
        assert!(body.len() <= 1 << 16);
        let _ = frame::decode_body::<Hello>(body);
        let _ = frame::decode_body::<PeerFrame<Entry>>(body);
        let _ = frame::decode_body::<Request<Op>>(body);
        rest = &rest[used..];
    }
    // The raw bytes as an already-checked body.
    let _ = frame::decode_body::<PeerFrame<Entry>>(data);
    let _ = frame::decode_body::<Request<Op>>(data);
});
