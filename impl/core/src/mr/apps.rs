//! MapReduce applications: the [`App`] trait and the pure applications of the lab (`wc`,
//! `indexer`, `nocrash`). Applications with side effects (sleeps, marker files, crashes) live
//! in the runtime, which also keeps the registry of every application by name.
//!
//! Keys and values are bytes. Output lines are `key value\n`, as the lab's `"%v %v\n"`.

/// Where a map function sends its pairs.
pub trait Emit {
    /// One intermediate pair.
    fn emit(&mut self, key: &[u8], value: &[u8]);

    /// Whether pairs emitted here are merged with the application's combiner. A map function
    /// may then combine on its own first (in-mapper combining), with the same result.
    fn combines(&self) -> bool {
        false
    }
}

/// A fast hasher for short byte keys in the map side's tables (8 bytes per step, FxHash's
/// multiply-rotate, a final fold so the low bits mix too). Not for untrusted keys: there is
/// no seed. Partitioning uses [`ihash`], which is the lab's.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher(u64);

const KEY_HASH_K: u64 = 0x517c_c1b7_2722_0a95;

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ w).wrapping_mul(KEY_HASH_K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(KEY_HASH_K);
        }
        self.0 = h;
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(KEY_HASH_K);
    }
}

/// Build hasher of [`KeyHasher`].
pub type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// A MapReduce application: a map function, a reduce function, and optionally a combiner
/// (MapReduce paper §4.3) that merges values of one key on the map side.
pub trait App: Send + Sync {
    /// The name `--app` takes.
    fn name(&self) -> &'static str;

    /// Maps one input file (`filename` exactly as the coordinator was given it).
    fn map(&self, filename: &str, contents: &[u8], out: &mut dyn Emit) -> Result<(), String>;

    /// Reduces every value of one key (in no particular order) to the value written after the
    /// key; appends it to `out`.
    fn reduce(&self, key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String>;

    /// Whether [`App::combine`] may be used: `reduce` must then accept combined values.
    fn has_combiner(&self) -> bool {
        false
    }

    /// Merges `value` into `acc`, both values of `key` (only if [`App::has_combiner`]).
    fn combine(&self, key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<(), String> {
        let _ = (key, acc, value);
        Err(format!("application {} has no combiner", self.name()))
    }
}

/// The lab's partition hash: FNV-1a (32 bit) of the key, masked to 31 bits; a key goes to
/// reduce task `ihash(key) % n_reduce`.
pub fn ihash(key: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h & 0x7fff_ffff
}

/// ASCII letters, for the fast path of [`for_each_word`].
const fn ascii_letters() -> [bool; 128] {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphabetic();
        b += 1;
    }
    t
}
static ASCII_LETTER: [bool; 128] = ascii_letters();

/// Calls `f` on every word of `contents`: a maximal run of letters, as the lab's
/// `strings.FieldsFunc(contents, !unicode.IsLetter)`. Invalid UTF-8 separates words.
/// Non-ASCII letters are those of Rust's `char::is_alphabetic` (Unicode `Alphabetic`, which
/// unlike Go's `IsLetter` also counts letter numbers such as `Ⅻ` and some combining marks).
pub fn for_each_word<'a>(contents: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut offset = 0;
    for chunk in contents.utf8_chunks() {
        let valid = chunk.valid();
        words_in_str(valid, &mut |start, end| {
            f(&contents[offset + start..offset + end])
        });
        offset += valid.len() + chunk.invalid().len();
    }
}

/// Word boundaries in `s`, as `(start, end)` byte offsets.
fn words_in_str(s: &str, f: &mut impl FnMut(usize, usize)) {
    let bytes = s.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (letter, len) = if b < 0x80 {
            (ASCII_LETTER[b as usize], 1)
        } else {
            let c = s[i..].chars().next().expect("a char starts at a boundary");
            (c.is_alphabetic(), c.len_utf8())
        };
        match (letter, start) {
            (true, None) => start = Some(i),
            (false, Some(s0)) => {
                f(s0, i);
                start = None;
            }
            _ => {}
        }
        i += len;
    }
    if let Some(s0) = start {
        f(s0, bytes.len());
    }
}

/// Parses a decimal count (no sign, no spaces).
fn parse_count(v: &[u8]) -> Result<u64, String> {
    let bad = || format!("not a count: {:?}", String::from_utf8_lossy(v));
    if v.is_empty() || v.len() > 19 {
        return Err(bad());
    }
    let mut n = 0u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Ok(n)
}

/// Writes `n` in decimal into `out` (replacing its contents) without allocating.
fn write_count(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.clear();
    out.extend_from_slice(&digits[i..]);
}

/// Word count: map emits `(word, 1)`; reduce sums (with one `1` per occurrence this is the
/// lab's `len(values)`); the combiner sums on the map side.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordCount;

impl App for WordCount {
    fn name(&self) -> &'static str {
        "wc"
    }

    fn map(&self, _filename: &str, contents: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        if !out.combines() {
            for_each_word(contents, |w| out.emit(w, b"1"));
            return Ok(());
        }
        // In-mapper combining: count in a table keyed by slices of the input (no allocation
        // per word), then emit each distinct word once with its count.
        let mut counts: std::collections::HashMap<&[u8], u64, KeyHash> = Default::default();
        for_each_word(contents, |w| *counts.entry(w).or_insert(0) += 1);
        let mut digits = Vec::with_capacity(20);
        for (w, n) in counts {
            write_count(&mut digits, n);
            out.emit(w, &digits);
        }
        Ok(())
    }

    fn reduce(&self, _key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        let mut sum = 0u64;
        for v in values {
            sum += if *v == b"1" { 1 } else { parse_count(v)? };
        }
        let mut digits = Vec::with_capacity(20);
        write_count(&mut digits, sum);
        out.extend_from_slice(&digits);
        Ok(())
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<(), String> {
        let sum = parse_count(acc)? + parse_count(value)?;
        write_count(acc, sum);
        Ok(())
    }
}

/// Inverted index: map emits `(word, filename)` once per distinct word of a file; reduce
/// writes `<count> <sorted filenames joined by ','>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Indexer;

impl App for Indexer {
    fn name(&self) -> &'static str {
        "indexer"
    }

    fn map(&self, filename: &str, contents: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        let mut words = std::collections::BTreeSet::new();
        for_each_word(contents, |w| {
            words.insert(w);
        });
        for w in words {
            out.emit(w, filename.as_bytes());
        }
        Ok(())
    }

    fn reduce(&self, _key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        let mut docs = values.to_vec();
        docs.sort_unstable();
        out.extend_from_slice(docs.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(&docs.join(&b","[..]));
        Ok(())
    }
}

/// The crash test's reference application (`nocrash`; `crash` is the same plus random exits
/// and sleeps): map emits `a → filename`, `b → len(filename)`, `c → len(contents)`,
/// `d → xyzzy`; reduce writes the sorted values joined by spaces.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCrash;

impl NoCrash {
    /// The map function shared with `crash`.
    pub fn map_pairs(filename: &str, contents: &[u8], out: &mut dyn Emit) {
        out.emit(b"a", filename.as_bytes());
        out.emit(b"b", filename.len().to_string().as_bytes());
        out.emit(b"c", contents.len().to_string().as_bytes());
        out.emit(b"d", b"xyzzy");
    }

    /// The reduce function shared with `crash`.
    pub fn reduce_values(values: &[&[u8]], out: &mut Vec<u8>) {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        out.extend_from_slice(&sorted.join(&b" "[..]));
    }
}

impl App for NoCrash {
    fn name(&self) -> &'static str {
        "nocrash"
    }

    fn map(&self, filename: &str, contents: &[u8], out: &mut dyn Emit) -> Result<(), String> {
        NoCrash::map_pairs(filename, contents, out);
        Ok(())
    }

    fn reduce(&self, _key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), String> {
        NoCrash::reduce_values(values, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pairs(Vec<(Vec<u8>, Vec<u8>)>);
    impl Emit for Pairs {
        fn emit(&mut self, key: &[u8], value: &[u8]) {
            self.0.push((key.to_vec(), value.to_vec()));
        }
    }

    fn words(s: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        for_each_word(s, |w| v.push(String::from_utf8_lossy(w).into_owned()));
        v
    }

    #[test]
    fn words_are_maximal_letter_runs() {
        assert_eq!(
            words(b"Hello, world! it's 42x"),
            ["Hello", "world", "it", "s", "x"]
        );
        assert_eq!(words("naïve café".as_bytes()), ["naïve", "café"]);
        // Invalid UTF-8 separates words.
        assert_eq!(words(b"ab\xffcd"), ["ab", "cd"]);
        assert!(words(b"").is_empty());
    }

    #[test]
    fn ihash_is_fnv1a_masked() {
        // FNV-1a 32 of "" is the offset basis; of "a" is 0xe40c292c.
        assert_eq!(ihash(b""), 0x811c_9dc5 & 0x7fff_ffff);
        assert_eq!(ihash(b"a"), 0xe40c_292c & 0x7fff_ffff);
    }

    #[test]
    fn wc_combined_and_plain_reduce_agree() {
        let mut out = Vec::new();
        WordCount
            .reduce(b"x", &[b"1", b"1", b"1"], &mut out)
            .unwrap();
        assert_eq!(out, b"3");
        let mut acc = b"1".to_vec();
        WordCount.combine(b"x", &mut acc, b"1").unwrap();
        out.clear();
        WordCount.reduce(b"x", &[&acc, b"1"], &mut out).unwrap();
        assert_eq!(out, b"3");
        assert!(WordCount.reduce(b"x", &[b"one"], &mut out).is_err());
    }

    #[test]
    fn indexer_and_nocrash_format_like_the_lab() {
        let mut p = Pairs(Vec::new());
        Indexer.map("../b.txt", b"the cat the", &mut p).unwrap();
        assert_eq!(p.0.len(), 2);
        let mut out = Vec::new();
        Indexer
            .reduce(b"the", &[b"../b.txt", b"../a.txt"], &mut out)
            .unwrap();
        assert_eq!(out, b"2 ../a.txt,../b.txt");
        let mut p = Pairs(Vec::new());
        NoCrash.map("../a.txt", b"12345", &mut p).unwrap();
        assert_eq!(p.0[1], (b"b".to_vec(), b"8".to_vec()));
        assert_eq!(p.0[2], (b"c".to_vec(), b"5".to_vec()));
    }
}
