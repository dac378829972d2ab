//! A compact, deterministic binary encoding for what the services persist: snapshots of a
//! state machine and the size of log entries.
//!
//! Integers are LEB128 varints, strings and sequences are length-prefixed, maps are encoded
//! in key order. This is as compact as Go's gob for the lab's payloads (small integers, short
//! strings), which matters because the lab's limits are in bytes (a KV snapshot ≤ 500 bytes,
//! persisted Raft state ≤ 8 × `maxraftstate`). It lives in the core, not in a serde format,
//! because the cores depend on nothing but `std` and serde's derives, and because the rsm
//! computes sizes from it to decide when to snapshot.
//!
//! Decoding never panics: truncated or malformed bytes give a [`DecodeError`] that says what
//! was expected and at which byte offset.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Bytes that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// What was being decoded, and what was wrong.
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for DecodeError {}

/// A value with a binary encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The number of bytes [`Encode::encode`] appends.
    fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }

    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value that can be read back from its encoding.
pub trait Decode: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes `bytes`, which must hold exactly one value.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// A cursor over bytes being decoded.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    /// An error at the current offset.
    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.offset,
            what: what.into(),
        }
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                self.error(format!(
                    "{what}: needs {n} bytes, {} left",
                    self.bytes.len() - self.offset
                ))
            })?;
        let out = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(out)
    }

    /// Reads one varint.
    pub fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1, what)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if shift == 63 && byte > 1 {
                    return Err(self.error(format!("{what}: varint overflows 64 bits")));
                }
                return Ok(value);
            }
        }
        Err(self.error(format!("{what}: varint longer than 10 bytes")))
    }

    /// Reads a length prefix, refusing lengths beyond the remaining bytes (each element takes
    /// at least one byte), so that a corrupt length cannot make the decoder allocate wildly.
    pub fn len(&mut self, what: &str) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        let left = (self.bytes.len() - self.offset) as u64;
        if n > left {
            return Err(self.error(format!("{what}: length {n} but {left} bytes left")));
        }
        Ok(n as usize)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.offset == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error(format!("{} trailing bytes", self.bytes.len() - self.offset)))
        }
    }
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

impl Encode for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, *self);
    }
    fn encoded_len(&self) -> usize {
        varint_len(*self)
    }
}

impl Decode for u64 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.varint("integer")
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn encoded_len(&self) -> usize {
        1
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.take(1, "bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(r.error(format!("bool: byte {b} is neither 0 nor 1"))),
        }
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out)
    }
    fn encoded_len(&self) -> usize {
        self.as_str().encoded_len()
    }
}

impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.len("string length")?;
        let at = r.offset;
        let bytes = r.take(n, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError {
            offset: at,
            what: format!("string: not UTF-8 ({e})"),
        })
    }
}

impl Encode for Arc<str> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out)
    }
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

impl Decode for Arc<str> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        String::decode(r).map(Arc::from)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Encode::encoded_len)
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.take(1, "option tag")?[0] {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            b => Err(r.error(format!("option: tag {b} is neither 0 nor 1"))),
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        for v in self {
            v.encode(out);
        }
    }
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.iter().map(Encode::encoded_len).sum::<usize>()
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.len("sequence length")?;
        (0..n).map(|_| T::decode(r)).collect()
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        for (k, v) in self {
            k.encode(out);
            v.encode(out);
        }
    }
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64)
            + self
                .iter()
                .map(|(k, v)| k.encoded_len() + v.encoded_len())
                .sum::<usize>()
    }
}

impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    /// Keys must arrive in strictly increasing order (as [`Encode`] writes them), so that one
    /// map has exactly one encoding.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.len("map length")?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let at = r.offset;
            let k = K::decode(r)?;
            if map.last_key_value().is_some_and(|(last, _)| *last >= k) {
                return Err(DecodeError {
                    offset: at,
                    what: "map: keys out of order or repeated".into(),
                });
            }
            let v = V::decode(r)?;
            map.insert(k, v);
        }
        Ok(map)
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len() + self.1.encoded_len()
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((A::decode(r)?, B::decode(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_are_minimal() {
        for (v, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(v.to_bytes().len(), len, "{v}");
            assert_eq!(v.encoded_len(), len, "{v}");
            assert_eq!(u64::from_bytes(&v.to_bytes()), Ok(v));
        }
    }

    #[test]
    fn bad_bytes_are_errors_with_offsets() {
        assert_eq!(u64::from_bytes(&[0x80]).unwrap_err().offset, 1);
        let e = String::from_bytes(&[5, b'a']).unwrap_err();
        assert!(e.what.contains("length 5"), "{e}");
        assert!(
            u64::from_bytes(&[1, 2])
                .unwrap_err()
                .what
                .contains("trailing")
        );
        assert!(bool::from_bytes(&[7]).is_err());
        let unordered = [2, 2, 0, 1, 0];
        assert!(BTreeMap::<u64, u64>::from_bytes(&unordered).is_err());
        assert!(u64::from_bytes(&[0xff; 11]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(map in proptest::collection::btree_map(any::<u64>(), ".{0,8}", 0..8),
                       v in proptest::collection::vec(proptest::option::of(any::<u64>()), 0..8)) {
            let bytes = map.to_bytes();
            prop_assert_eq!(bytes.len(), map.encoded_len());
            prop_assert_eq!(BTreeMap::<u64, String>::from_bytes(&bytes), Ok(map));
            prop_assert_eq!(Vec::<Option<u64>>::from_bytes(&v.to_bytes()), Ok(v));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BTreeMap::<String, (u64, Option<String>)>::from_bytes(&bytes);
        }
    }
}
