//! A WAL segment and a trace file of arbitrary bytes: scanned, decoded, never a panic.
#![no_main]
use aver_runtime::kv::{Entry, ServerMessage};
use aver_runtime::storage::wal;
use aver_runtime::trace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scan = wal::scan(data);
    for b in &scan.batches {
        let _ = wal::decode_records::<Entry>(b.body);
    }
    let _ = trace::parse_trace::<Entry, ServerMessage>(std::path::Path::new("fuzz.trace"), data);
});
