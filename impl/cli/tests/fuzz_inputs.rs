//! Bad input never panics: the history parsers (`aver lin`'s JSON Lines, Porcupine and Jepsen
//! formats, decoded for every model) and the runtime's frame decoder, WAL reader and trace
//! reader are fed arbitrary bytes and mutations of valid inputs. Every input yields a value or
//! an error that says what and where; the frame decoder never allocates past its limit.
//!
//! The same entry points have cargo-fuzz targets in `fuzz/` (nightly): `cargo +nightly fuzz
//! run frame_decoder` (or `wal_reader`, `history_parsers`).

use aver_checker::PowerSet;
use aver_checker::formats::{self, Format};
use aver_checker::models::{CasRegister, Kv, Register, VersionedKv};
use proptest::prelude::*;

const VALID: &[&str] = &[
    "{\"client\": 1, \"call\": 100, \"return\": 130, \"f\": \"put\", \"key\": \"x\", \"value\": \"1\", \"output\": \"ok\"}\n\
     {\"client\": 2, \"call\": 110, \"return\": 120, \"f\": \"get\", \"key\": \"x\", \"output\": \"\"}\n\
     {\"client\": 3, \"call\": 115, \"f\": \"append\", \"key\": \"x\", \"value\": \"2\"}\n",
    "{\"event\": \"call\", \"client\": 1, \"id\": 7, \"f\": \"write\", \"value\": 3}\n\
     {\"event\": \"return\", \"client\": 1, \"id\": 7, \"output\": \"ok\"}\n",
    "{:process 4, :type :invoke, :f :get, :key \"3\", :value nil}\n\
     {:process 4, :type :ok, :f :get, :key \"3\", :value \"x\"}\n",
    "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 3\t:fail\t:cas\t[1 2]\n",
    "{\"client\": 1, \"call\": 1, \"return\": 2, \"f\": \"put\", \"key\": \"k\", \"value\": \"v\", \"version\": 0, \"output\": \"OK\"}\n",
];

/// Parses `text` in every format and decodes it for every model: no panic, whatever happens.
fn parse_everything(text: &str) {
    let formats = [
        None,
        Some(Format::Jsonl),
        Some(Format::PorcupineKv),
        Some(Format::Jepsen),
    ];
    for format in formats {
        let Ok(records) = formats::parse_records("fuzz", text, format) else {
            continue;
        };
        let _ = formats::decode::<Kv>("fuzz", &records);
        let _ = formats::decode::<Register>("fuzz", &records);
        let _ = formats::decode::<CasRegister>("fuzz", &records);
        let _ = formats::decode::<PowerSet<VersionedKv>>("fuzz", &records);
    }
}

/// Byte-level mutations of a valid input: overwrite, delete or duplicate a span.
fn mutate(base: &str, edits: &[(usize, usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = base.as_bytes().to_vec();
    for &(at, len, byte, kind) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        let end = (at + len % 8).min(bytes.len());
        match kind % 3 {
            0 => bytes[at] = byte,
            1 => {
                bytes.drain(at..end);
            }
            _ => {
                let span = bytes[at..end].to_vec();
                bytes.splice(at..at, span);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn history_parsers_never_panic_on_arbitrary_text(text in ".{0,400}") {
        parse_everything(&text);
    }

    #[test]
    fn history_parsers_never_panic_on_mutated_histories(
        which in 0usize..VALID.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let bytes = mutate(VALID[which], &edits);
        parse_everything(&String::from_utf8_lossy(&bytes));
    }

    /// A client request frame of any bytes: the node's decoder answers with an error, never
    /// a panic (the node then closes the session and counts the frame).
    #[test]
    fn request_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        use aver_runtime::frame;
        use aver_runtime::kv::{Entry, Op};
        use aver_runtime::wire::Request;
        if let Ok(Some((body, _))) = frame::split_frame(&bytes, 1 << 20) {
            let _ = frame::decode_body::<Request<Op>>(body);
        }
        // The same bytes as the body of a valid frame: only the decoder stands between them
        // and the node.
        let framed = [&(bytes.len() as u32).to_le_bytes()[..], &crc32(&bytes).to_le_bytes(), &bytes].concat();
        let (body, _) = frame::split_frame(&framed, 1 << 20).unwrap().unwrap();
        let _ = frame::decode_body::<Request<Op>>(body);
        let _ = frame::decode_body::<aver_runtime::wire::Hello>(body);
        let _ = frame::decode_body::<aver_runtime::wire::PeerFrame<Entry>>(body);
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: the test must not trust the code under test for its framing.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
