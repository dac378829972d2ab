//! History files in every format `aver lin` reads, decoded for every model.
#![no_main]
use aver_checker::formats::{self, Format};
use aver_checker::models::{CasRegister, Kv, Register, VersionedKv};
use aver_checker::PowerSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [None, Some(Format::Jsonl), Some(Format::PorcupineKv), Some(Format::Jepsen)] {
        let Ok(records) = formats::parse_records("fuzz", &text, format) else { continue };
        let _ = formats::decode::<Kv>("fuzz", &records);
        let _ = formats::decode::<Register>("fuzz", &records);
        let _ = formats::decode::<CasRegister>("fuzz", &records);
        let _ = formats::decode::<PowerSet<VersionedKv>>("fuzz", &records);
    }
});
