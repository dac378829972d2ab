//! The file-system calls storage makes, behind a trait with two implementations: the real file
//! system ([`RealFs`]) and an in-memory one that crashes the way disks do ([`FaultFs`]).
//!
//! [`FaultFs`] keeps, for every file, what was written and what was made durable by
//! `sync_data`; for every directory entry, whether a directory sync made it durable. A crash
//! keeps only durable state, optionally with a torn piece of the unsynced tail (LazyFS-style:
//! the write reached some pages and not others), and bit flips can be injected into synced
//! bytes. Storage is tested against it: a torn tail must be truncated, a flipped bit inside
//! the synced prefix must stop the node with an error naming file and offset, and what was
//! synced before an acknowledgement must survive every crash.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file open for appending. The append position starts at the end of the file and moves
/// only with [`FsFile::write_all`] and [`FsFile::set_len`]: zeros that
/// [`FsFile::preallocate`] wrote beyond it are overwritten by later appends.
pub trait FsFile: Send {
    /// Writes `buf` at the append position (not durable until [`FsFile::sync_data`]).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the file's contents durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes and moves the append position there (not
    /// durable until synced).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Writes zeros from the end of the file up to `len` bytes (if it is shorter), leaving
    /// the append position where it is (not durable until synced). Appends that land on
    /// written zeros change neither the file's size nor its block map, so their
    /// `fdatasync` writes only data: on ext4, no journal commit.
    fn preallocate(&mut self, len: u64) -> io::Result<()>;
}

/// The file-system operations storage uses. Paths are absolute or relative to the process's
/// working directory; names in [`Fs::list`] are file names only.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file (`NotFound` if absent).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates (or empties) a file and opens it for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Atomically replaces `to` with `from` (durable after [`Fs::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes a file (durable after [`Fs::sync_dir`]).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, deletions) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A real file written with positioned writes (`pwrite`), so that appends can land on
/// preallocated zeros.
struct RealFile {
    file: std::fs::File,
    /// The append position.
    pos: u64,
    /// The file's length.
    len: u64,
}

impl RealFile {
    fn new(file: std::fs::File) -> io::Result<RealFile> {
        let len = file.metadata()?.len();
        Ok(RealFile {
            file,
            pos: len,
            len,
        })
    }
}

/// Zeros written per `pwrite` when preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl FsFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        (self.pos, self.len) = (len, len);
        Ok(())
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        while self.len < len {
            let n = (len - self.len).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], self.len)?;
            self.len += n as u64;
        }
        Ok(())
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile::new(file)?))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        // Not O_APPEND: on Linux it makes `pwrite` ignore its offset.
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(RealFile::new(file)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// How a [`FaultFs`] crash treats what was written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The process died, the machine did not: every write survives (kill -9).
    Process,
    /// Power loss with a well-behaved disk: only synced data and synced directory entries
    /// survive (LazyFS's default).
    LoseUnsynced,
    /// Power loss mid-write: as `LoseUnsynced`, but each file keeps a random-length piece of
    /// its unsynced tail, whose bytes may be garbled (a torn write). Seeded.
    Torn(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// Contents as the running system sees them.
    now: Vec<u8>,
    /// Contents as of the last `sync_data`.
    durable: Vec<u8>,
    /// `now` and `durable` agree before this offset (what a sync must copy starts here).
    dirty: usize,
}

#[derive(Debug, Default)]
struct FaultState {
    inodes: Vec<Inode>,
    /// Directory entries as the running system sees them.
    names: BTreeMap<PathBuf, usize>,
    /// Directory entries as of the last sync of their directory.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Bumped by a crash; handles from before it fail.
    epoch: u64,
    /// Remaining syncs before one fails (`None`: never).
    syncs_until_failure: Option<u64>,
    /// `sync_data` calls.
    syncs: u64,
}

impl FaultState {
    /// Counts one sync (of a file or a directory) and fails it if a failure is due.
    fn count_sync(&mut self) -> io::Result<()> {
        self.syncs += 1;
        if let Some(left) = self.syncs_until_failure.as_mut() {
            if *left == 0 {
                return Err(io::Error::other("injected fsync failure (EIO)"));
            }
            *left -= 1;
        }
        Ok(())
    }
}

/// An in-memory file system that loses unsynced writes, tears them, and flips bits on demand.
/// Cheap to clone (shared state).
#[derive(Clone, Debug, Default)]
pub struct FaultFs {
    state: Arc<Mutex<FaultState>>,
}

struct FaultFile {
    state: Arc<Mutex<FaultState>>,
    inode: usize,
    epoch: u64,
    /// The append position.
    pos: usize,
}

impl FaultFile {
    fn with<R>(&self, f: impl FnOnce(&mut FaultState) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state.lock().expect("fault fs lock");
        if st.epoch != self.epoch {
            return Err(io::Error::other("file handle from before a crash"));
        }
        f(&mut st)
    }
}

impl FsFile for FaultFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let (inode, pos) = (self.inode, self.pos);
        self.with(|st| {
            let node = &mut st.inodes[inode];
            if node.now.len() < pos + buf.len() {
                node.now.resize(pos + buf.len(), 0);
            }
            node.now[pos..pos + buf.len()].copy_from_slice(buf);
            node.dirty = node.dirty.min(pos);
            Ok(())
        })?;
        self.pos += buf.len();
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let inode = self.inode;
        self.with(|st| {
            st.count_sync()?;
            let node = &mut st.inodes[inode];
            let from = node.dirty.min(node.now.len());
            node.durable.resize(node.now.len(), 0);
            node.durable[from..].copy_from_slice(&node.now[from..]);
            node.dirty = node.now.len();
            Ok(())
        })
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let inode = self.inode;
        self.with(|st| {
            let node = &mut st.inodes[inode];
            node.dirty = node.dirty.min(node.now.len()).min(len as usize);
            node.now.resize(len as usize, 0);
            Ok(())
        })?;
        self.pos = len as usize;
        Ok(())
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let inode = self.inode;
        self.with(|st| {
            let node = &mut st.inodes[inode];
            if node.now.len() < len as usize {
                node.dirty = node.dirty.min(node.now.len());
                node.now.resize(len as usize, 0);
            }
            Ok(())
        })
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display()))
}

impl FaultFs {
    /// An empty file system.
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().expect("fault fs lock")
    }

    /// Crashes: every open handle dies, and what survives follows `mode`.
    pub fn crash(&self, mode: Crash) {
        let mut st = self.lock();
        st.epoch += 1;
        st.syncs_until_failure = None;
        if mode == Crash::Process {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(match mode {
            Crash::Torn(seed) => seed,
            _ => 0,
        });
        st.names = st.durable_names.clone();
        for node in &mut st.inodes {
            let mut survivor = node.durable.clone();
            // Unsynced writes start where the current contents first differ from the durable
            // ones (an append past the end, or an overwrite of preallocated zeros); a torn
            // crash keeps a random-length piece of them from there.
            let start = node
                .now
                .iter()
                .zip(&node.durable)
                .position(|(a, b)| a != b)
                .unwrap_or(node.durable.len());
            if let (Crash::Torn(_), true) = (mode, node.now.len() > start) {
                let tail = &node.now[start..];
                let keep = rng.random_range(0..=tail.len());
                let mut piece = tail[..keep].to_vec();
                if !piece.is_empty() && rng.random_bool(0.5) {
                    let at = rng.random_range(0..piece.len());
                    piece[at] = rng.random();
                }
                if survivor.len() < start + keep {
                    survivor.resize(start + keep, 0);
                }
                survivor[start..start + keep].copy_from_slice(&piece);
            }
            node.now = survivor.clone();
            node.dirty = survivor.len();
            node.durable = survivor;
        }
    }

    /// Flips one bit of a file's durable (and current) contents.
    pub fn flip_bit(&self, path: &Path, byte: usize, bit: u8) {
        let mut st = self.lock();
        let inode = *st.names.get(path).expect("flip_bit: no such file");
        let node = &mut st.inodes[inode];
        node.now[byte] ^= 1 << bit;
        if byte < node.durable.len() {
            node.durable[byte] ^= 1 << bit;
        }
    }

    /// The `n`-th `sync_data` from now (0: the next) and every later one fail with EIO,
    /// until the next crash.
    pub fn fail_sync_after(&self, n: u64) {
        self.lock().syncs_until_failure = Some(n);
    }

    /// Syncs (of files and directories) so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Length of a file as the running system sees it.
    pub fn len(&self, path: &Path) -> Option<usize> {
        let st = self.lock();
        st.names.get(path).map(|&i| st.inodes[i].now.len())
    }

    /// Every file path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.lock();
        let inode = match st.names.get(path) {
            Some(&i) if !create => i,
            Some(_) | None if create => {
                st.inodes.push(Inode::default());
                let i = st.inodes.len() - 1;
                st.names.insert(path.to_path_buf(), i);
                i
            }
            _ => return Err(not_found(path)),
        };
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            inode,
            epoch: st.epoch,
            pos: st.inodes[inode].now.len(),
        }))
    }
}

impl Fs for FaultFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(()) // directories are implicit: a path's parent is its directory.
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let names = st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        Ok(names.collect())
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let i = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.inodes[i].now.clone())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open(path, true)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open(path, false)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let i = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), i);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.count_sync()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        let now: Vec<(PathBuf, usize)> = st
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        st.durable_names.retain(|p, _| !in_dir(p));
        st.durable_names.extend(now);
        // A file no name refers to, now or after a crash, can never be read again: free its
        // contents (long runs create and delete many preallocated segments).
        let named: std::collections::BTreeSet<usize> = st
            .names
            .values()
            .chain(st.durable_names.values())
            .copied()
            .collect();
        for (i, node) in st.inodes.iter_mut().enumerate() {
            if !named.contains(&i) && node.now.capacity() > 0 {
                *node = Inode::default();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_entries_are_lost_on_power_loss() {
        let fs = FaultFs::new();
        let dir = Path::new("/d");
        let a = dir.join("a");
        let mut f = fs.create(&a).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        f.write_all(b" world").unwrap();
        // The file's entry was never made durable: power loss removes the file.
        fs.crash(Crash::LoseUnsynced);
        assert!(fs.read(&a).is_err());
        let mut f = fs.create(&a).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_all(b" world").unwrap();
        fs.crash(Crash::Process);
        assert_eq!(fs.read(&a).unwrap(), b"hello world");
        assert!(f.write_all(b"!").is_err(), "handles die with the process");
        fs.crash(Crash::LoseUnsynced);
        assert_eq!(
            fs.read(&a).unwrap(),
            b"hello",
            "process crash synced nothing"
        );
    }

    #[test]
    fn renames_are_durable_only_after_a_directory_sync() {
        let fs = FaultFs::new();
        let dir = Path::new("/d");
        let (tmp, dst) = (dir.join("x.tmp"), dir.join("x"));
        let mut f = fs.create(&tmp).unwrap();
        f.write_all(b"1").unwrap();
        f.sync_data().unwrap();
        fs.rename(&tmp, &dst).unwrap();
        fs.crash(Crash::LoseUnsynced);
        assert!(fs.read(&dst).is_err());
        let mut f = fs.create(&tmp).unwrap();
        f.write_all(b"1").unwrap();
        f.sync_data().unwrap();
        fs.rename(&tmp, &dst).unwrap();
        fs.sync_dir(dir).unwrap();
        fs.crash(Crash::LoseUnsynced);
        assert_eq!(fs.read(&dst).unwrap(), b"1");
        assert_eq!(fs.list(dir).unwrap(), vec!["x".to_string()]);
    }
}
