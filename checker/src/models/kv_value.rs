//! A KV value built by appends, shared between the states that extend it.
//!
//! The KV search creates one state per distinct value a key can take, and on 6.5840
//! histories those are long strings that differ by the order of their appends: copying each
//! one would cost O(length) per step and most of the memory. Here a value is its last chunk
//! plus a pointer to the value it extends, so an append costs O(chunk), and the value keeps
//! a length and a polynomial hash (updated in O(chunk)) so that unequal values are usually
//! told apart without reading them. Equality is always decided on the bytes.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Base of the polynomial hash (odd, so multiplication by it is invertible mod 2^64).
const BASE: u64 = 0x100_0000_01b3;

/// A string value (initially `""`), cheap to clone and to append to.
#[derive(Clone)]
pub struct KvValue(Arc<Node>);

struct Node {
    len: usize,
    hash: u64,
    chunk: Arc<str>,
    /// The value this one extends (`None`: the value is `chunk`).
    parent: Option<Arc<Node>>,
}

fn extend_hash(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = hash.wrapping_mul(BASE).wrapping_add(b as u64 + 1);
    }
    hash
}

impl KvValue {
    /// The value `text`.
    pub fn new(text: Arc<str>) -> KvValue {
        let hash = extend_hash(0, text.as_bytes());
        KvValue(Arc::new(Node {
            len: text.len(),
            hash,
            chunk: text,
            parent: None,
        }))
    }

    /// This value followed by `suffix`.
    pub fn append(&self, suffix: &Arc<str>) -> KvValue {
        KvValue(Arc::new(Node {
            len: self.0.len + suffix.len(),
            hash: extend_hash(self.0.hash, suffix.as_bytes()),
            chunk: suffix.clone(),
            parent: Some(self.0.clone()),
        }))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// True for `""`.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Whether the value is `text`, compared from the end (where values usually differ).
    pub fn equals(&self, text: &str) -> bool {
        if self.0.len != text.len() {
            return false;
        }
        let mut end = text.len();
        let mut node = Some(&*self.0);
        while let Some(n) = node {
            let start = end - n.chunk.len();
            if text.as_bytes()[start..end] != *n.chunk.as_bytes() {
                return false;
            }
            end = start;
            node = n.parent.as_deref();
        }
        true
    }

    /// The chunks from last to first.
    fn chunks_rev(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(&*self.0), |n| n.parent.as_deref()).map(|n| &*n.chunk)
    }
}

impl std::fmt::Display for KvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chunks: Vec<&str> = self.chunks_rev().collect();
        chunks.iter().rev().try_for_each(|c| f.write_str(c))
    }
}

impl std::fmt::Debug for KvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl PartialEq for KvValue {
    fn eq(&self, other: &KvValue) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        if self.0.len != other.0.len || self.0.hash != other.0.hash {
            return false;
        }
        same_bytes_rev(&self.0, &other.0)
    }
}

impl Eq for KvValue {}

impl Hash for KvValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// Compares two values of equal length from the end, chunk by chunk. Where both sides stand
/// at a chunk boundary on the same node, what is left is one value: equal without reading
/// it (values the search builds usually share their beginnings). Chunks that are one string
/// (the same append's argument) are equal without reading them either.
fn same_bytes_rev(a: &Node, b: &Node) -> bool {
    let (mut na, mut nb) = (Some(a), Some(b));
    let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
    loop {
        if x.is_empty() && y.is_empty() {
            match (na, nb) {
                (Some(p), Some(q)) if std::ptr::eq(p, q) => return true,
                (None, None) => return true,
                _ => {}
            }
        }
        while x.is_empty() {
            let Some(n) = na else {
                return y.is_empty() && nb.is_none_or(all_empty);
            };
            x = n.chunk.as_bytes();
            na = n.parent.as_deref();
        }
        while y.is_empty() {
            let Some(n) = nb else {
                return false;
            };
            y = n.chunk.as_bytes();
            nb = n.parent.as_deref();
        }
        let k = x.len().min(y.len());
        let (xs, ys) = (&x[x.len() - k..], &y[y.len() - k..]);
        if !std::ptr::eq(xs, ys) && xs != ys {
            return false;
        }
        x = &x[..x.len() - k];
        y = &y[..y.len() - k];
    }
}

/// Whether the value of `node` is empty.
fn all_empty(node: &Node) -> bool {
    node.len == 0
}

impl Drop for Node {
    /// Unlinks the chain iteratively: a key appended to 100,000 times must not overflow the
    /// stack when its last value is dropped.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(node) = next {
            next = match Arc::try_unwrap(node) {
                Ok(mut node) => node.parent.take(),
                Err(_) => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(parts: &[&str]) -> KvValue {
        let mut v = KvValue::new(Arc::from(parts[0]));
        for p in &parts[1..] {
            v = v.append(&Arc::from(*p));
        }
        v
    }

    #[test]
    fn values_with_different_chunking_are_equal_and_hash_alike() {
        let (a, b) = (value(&["ab", "c", "", "de"]), value(&["a", "bcd", "e"]));
        assert_eq!(a, b);
        let h = |v: &KvValue| {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&b));
        assert_eq!(a.to_string(), "abcde");
        assert!(a.equals("abcde") && !a.equals("abcdf") && !a.equals("abcd"));
    }

    #[test]
    fn values_that_differ_anywhere_are_unequal() {
        assert_ne!(value(&["ab", "c"]), value(&["xb", "c"]));
        assert_ne!(value(&["ab", "c"]), value(&["abc", "d"]));
        assert_ne!(value(&[""]), value(&["", "x"]));
    }

    #[test]
    fn values_built_apart_on_a_shared_beginning_compare_by_their_ends() {
        let base = value(&["abc", "def"]);
        let (x, y): (Arc<str>, Arc<str>) = (Arc::from("gh"), Arc::from("gh"));
        // Same shared node, same or equal suffix strings: equal.
        assert_eq!(base.append(&x), base.append(&x));
        assert_eq!(base.append(&x), base.append(&y));
        // Same shared node, different suffixes of one length: unequal.
        assert_ne!(base.append(&x), base.append(&Arc::from("gi")));
        // Equal bytes, chunked differently on top of the shared node.
        assert_eq!(
            base.append(&Arc::from("g")).append(&Arc::from("h")),
            base.append(&x)
        );
        // The shared node reached at different offsets on the two sides.
        let other = value(&["abcd", "ef"]).append(&x);
        assert_eq!(other, base.append(&x));
        assert_ne!(value(&["abce", "ef"]).append(&x), base.append(&x));
    }

    #[test]
    fn dropping_a_long_chain_does_not_overflow_the_stack() {
        let x: Arc<str> = Arc::from("x");
        let mut v = KvValue::new(Arc::from(""));
        for _ in 0..1_000_000 {
            v = v.append(&x);
        }
        assert_eq!(v.len(), 1_000_000);
        drop(v);
    }
}
