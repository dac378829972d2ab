//! Running tasks on files: a map task reads its input file and writes one intermediate file per
//! reduce task; a reduce task reads its partition of every map task's output, sorts by key and
//! writes `key value` lines. Both write temporary files first; [`Executor::commit`] renames
//! them to their final names (`mr-X-Y`, `mr-out-Y`) only when the coordinator grants it, so no
//! reader ever sees a partial file.
//!
//! Intermediate record format: `u32` LE key length, `u32` LE value length, key, value.

use aver_core::mr::apps::{App, Emit, KeyHash, ihash};
use aver_core::mr::{Assignment, Attempt, TaskId};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Buffer of each output file.
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Final name of map task `m`'s output for reduce task `r`.
pub fn intermediate_name(m: u32, r: u32) -> String {
    format!("mr-{m}-{r}")
}

/// Final name of reduce task `r`'s output.
pub fn output_name(r: u32) -> String {
    format!("mr-out-{r}")
}

/// What a run produced, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Input bytes read.
    pub bytes_in: u64,
    /// Records written (intermediate pairs, or output lines).
    pub records_out: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// Runs the tasks of one worker process in one directory.
pub struct Executor {
    app: Box<dyn App>,
    dir: PathBuf,
    combine: bool,
}

impl Executor {
    /// Runs `app`'s tasks with files in `dir` (input paths are resolved from the process's
    /// current directory, as given). `combine` uses the application's combiner, if it has one.
    pub fn new(app: Box<dyn App>, dir: PathBuf, combine: bool) -> Self {
        let combine = combine && app.has_combiner();
        Executor { app, dir, combine }
    }

    /// The application.
    pub fn app(&self) -> &dyn App {
        &*self.app
    }

    fn temp(&self, task: TaskId, attempt: Attempt, r: u32) -> PathBuf {
        let (kind, n) = match task {
            TaskId::Map(m) => ("m", m),
            TaskId::Reduce(r) => ("r", r),
        };
        let pid = std::process::id();
        self.dir
            .join(format!("mr-tmp-{pid}-{kind}{n}-{r}-{}", attempt.0))
    }

    /// The temporary files of a run, paired with their final names.
    fn files(&self, a: &Assignment) -> Vec<(PathBuf, PathBuf)> {
        match a.task {
            TaskId::Map(m) => (0..a.n_reduce)
                .map(|r| {
                    (
                        self.temp(a.task, a.attempt, r),
                        self.dir.join(intermediate_name(m, r)),
                    )
                })
                .collect(),
            TaskId::Reduce(r) => {
                vec![(
                    self.temp(a.task, a.attempt, 0),
                    self.dir.join(output_name(r)),
                )]
            }
        }
    }

    /// Runs the task into temporary files. On error the temporary files are removed.
    pub fn execute(&self, a: &Assignment) -> Result<RunStats, String> {
        let result = match (a.task, &a.input) {
            (TaskId::Map(_), Some(input)) => self.run_map(a, input),
            (TaskId::Reduce(r), None) => self.run_reduce(a, r),
            _ => Err(format!("malformed assignment {a:?}")),
        };
        if result.is_err() {
            self.discard(a);
        }
        result
    }

    /// Renames the run's temporary files to their final names (each rename is atomic).
    pub fn commit(&self, a: &Assignment) -> Result<(), String> {
        for (tmp, fin) in self.files(a) {
            std::fs::rename(&tmp, &fin)
                .map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), fin.display()))?;
        }
        Ok(())
    }

    /// Deletes the run's temporary files (missing ones are fine).
    pub fn discard(&self, a: &Assignment) {
        for (tmp, _) in self.files(a) {
            let _ = std::fs::remove_file(tmp);
        }
    }

    fn run_map(&self, a: &Assignment, input: &str) -> Result<RunStats, String> {
        let contents =
            std::fs::read(input).map_err(|e| format!("cannot read input file {input}: {e}"))?;
        let files = self.files(a);
        let mut writers = Vec::with_capacity(files.len());
        for (tmp, _) in &files {
            let f = File::create(tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
            writers.push(RecordWriter::new(f, tmp));
        }
        let mut stats = RunStats {
            bytes_in: contents.len() as u64,
            ..RunStats::default()
        };
        if self.combine {
            let mut em = Combining::new(&*self.app);
            self.app.map(input, &contents, &mut em)?;
            if let Some(e) = em.error {
                return Err(e);
            }
            let n = writers.len();
            for (k, v) in em.table {
                writers[ihash(&k) as usize % n].record(&k, &v);
            }
        } else {
            let mut em = Streaming {
                writers: &mut writers,
            };
            self.app.map(input, &contents, &mut em)?;
        }
        for w in writers {
            let (records, bytes) = w.finish()?;
            stats.records_out += records;
            stats.bytes_out += bytes;
        }
        Ok(stats)
    }

    fn run_reduce(&self, a: &Assignment, r: u32) -> Result<RunStats, String> {
        let mut bufs = Vec::with_capacity(a.n_map as usize);
        for m in 0..a.n_map {
            let name = intermediate_name(m, r);
            let path = self.dir.join(&name);
            bufs.push(
                std::fs::read(&path).map_err(|e| {
                    format!("cannot read intermediate file {}: {e}", path.display())
                })?,
            );
        }
        let mut records = Vec::new();
        for (m, buf) in bufs.iter().enumerate() {
            parse_records(buf, &mut records).map_err(|at| {
                format!(
                    "corrupt intermediate file {} at byte {at}",
                    intermediate_name(m as u32, r)
                )
            })?;
        }
        records.sort_unstable_by(|x, y| x.0.cmp(y.0));
        let (tmp, _) = self.files(a).remove(0);
        let f = File::create(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, f);
        let mut stats = RunStats {
            bytes_in: bufs.iter().map(|b| b.len() as u64).sum(),
            ..RunStats::default()
        };
        let mut values = Vec::new();
        let mut line = Vec::new();
        for group in records.chunk_by(|x, y| x.0 == y.0) {
            values.clear();
            values.extend(group.iter().map(|kv| kv.1));
            line.clear();
            line.extend_from_slice(group[0].0);
            line.push(b' ');
            self.app.reduce(group[0].0, &values, &mut line)?;
            line.push(b'\n');
            out.write_all(&line)
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            stats.records_out += 1;
            stats.bytes_out += line.len() as u64;
        }
        out.flush()
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        Ok(stats)
    }
}

/// Splits `buf` into `(key, value)` records; `Err(offset)` where a record is cut short.
fn parse_records<'a>(buf: &'a [u8], out: &mut Vec<(&'a [u8], &'a [u8])>) -> Result<(), usize> {
    let mut at = 0;
    let u32_at = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(buf.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    while at < buf.len() {
        let (Some(kl), Some(vl)) = (u32_at(at), u32_at(at + 4)) else {
            return Err(at);
        };
        let k0 = at + 8;
        let v0 = k0 + kl;
        let end = v0 + vl;
        if end > buf.len() {
            return Err(at);
        }
        out.push((&buf[k0..v0], &buf[v0..end]));
        at = end;
    }
    Ok(())
}

/// One intermediate file being written.
struct RecordWriter {
    out: BufWriter<File>,
    path: PathBuf,
    records: u64,
    bytes: u64,
    error: Option<std::io::Error>,
}

impl RecordWriter {
    fn new(f: File, path: &Path) -> Self {
        RecordWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, f),
            path: path.to_path_buf(),
            records: 0,
            bytes: 0,
            error: None,
        }
    }

    fn record(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let head = [
            (key.len() as u32).to_le_bytes(),
            (value.len() as u32).to_le_bytes(),
        ];
        let r = self
            .out
            .write_all(head.as_flattened())
            .and_then(|()| self.out.write_all(key))
            .and_then(|()| self.out.write_all(value));
        self.records += 1;
        self.bytes += 8 + (key.len() + value.len()) as u64;
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    fn finish(mut self) -> Result<(u64, u64), String> {
        let r = match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        };
        r.map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        Ok((self.records, self.bytes))
    }
}

/// Map output straight to the partition files.
struct Streaming<'w> {
    writers: &'w mut [RecordWriter],
}

impl Emit for Streaming<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let p = ihash(key) as usize % self.writers.len();
        self.writers[p].record(key, value);
    }
}

type KeyMap = HashMap<Box<[u8]>, Vec<u8>, KeyHash>;

/// Map output merged per key with the application's combiner, then written once per key to
/// its partition.
struct Combining<'a> {
    app: &'a dyn App,
    table: KeyMap,
    error: Option<String>,
}

impl<'a> Combining<'a> {
    fn new(app: &'a dyn App) -> Self {
        Combining {
            app,
            table: KeyMap::default(),
            error: None,
        }
    }
}

impl Emit for Combining<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        match self.table.get_mut(key) {
            Some(acc) => {
                if let Err(e) = self.app.combine(key, acc, value)
                    && self.error.is_none()
                {
                    self.error = Some(e);
                }
            }
            None => {
                self.table.insert(key.into(), value.to_vec());
            }
        }
    }

    fn combines(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_reported() {
        let dir = std::env::temp_dir().join(format!("aver-mr-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec");
        let mut w = RecordWriter::new(File::create(&path).unwrap(), &path);
        w.record(b"key", b"value");
        w.record(b"", b"");
        assert_eq!(w.finish().unwrap(), (2, 24));
        let buf = std::fs::read(&path).unwrap();
        let mut recs = Vec::new();
        parse_records(&buf, &mut recs).unwrap();
        assert_eq!(
            recs,
            vec![(&b"key"[..], &b"value"[..]), (&b""[..], &b""[..])]
        );
        assert_eq!(parse_records(&buf[..10], &mut Vec::new()), Err(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
