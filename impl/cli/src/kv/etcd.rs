//! A 3-member etcd on loopback for `aver bench kv --against etcd`, and a minimal client for
//! its v3 JSON gateway (HTTP/1.1 keep-alive, `POST /v3/kv/put`).
//!
//! etcd's native API is gRPC; the JSON gateway runs inside the etcd process and forwards to
//! the same server code, at some cost per request, which the bench's printout notes. Values
//! and keys are base64 in the gateway's JSON.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where etcd's binary is, if installed (Debian's `etcd-server` package).
pub fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// A running 3-member etcd; stopped (and its data removed) on drop.
pub struct Etcd {
    children: Vec<Child>,
    /// Client URLs' socket addresses, one per member.
    pub clients: Vec<std::net::SocketAddr>,
    dir: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    ls.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl Etcd {
    /// Starts three members with data under `dir` and waits until they answer.
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Etcd> {
        let ports = free_ports(6)?;
        let peer_url = |k: usize| format!("http://127.0.0.1:{}", ports[3 + k]);
        let client_url = |k: usize| format!("http://127.0.0.1:{}", ports[k]);
        let initial: Vec<String> = (0..3).map(|k| format!("e{k}={}", peer_url(k))).collect();
        let mut etcd = Etcd {
            children: Vec::new(),
            clients: (0..3)
                .map(|k| std::net::SocketAddr::from(([127, 0, 0, 1], ports[k])))
                .collect(),
            dir: dir.to_path_buf(),
        };
        for k in 0..3 {
            let data = dir.join(format!("e{k}"));
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(dir.join(format!("e{k}.log")))?;
            let child = Command::new(binary)
                .arg("--name")
                .arg(format!("e{k}"))
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &client_url(k)])
                .args(["--advertise-client-urls", &client_url(k)])
                .args(["--listen-peer-urls", &peer_url(k)])
                .args(["--initial-advertise-peer-urls", &peer_url(k)])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "aver-bench"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            etcd.children.push(child);
        }
        Ok(etcd)
    }

    /// The member that leads (asked through `/v3/maintenance/status`), once one does.
    pub async fn leader(&self) -> anyhow::Result<std::net::SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for &addr in &self.clients {
                let Ok(mut c) = Http::connect(addr).await else {
                    continue;
                };
                let Ok(body) = c.post("/v3/maintenance/status", "{}").await else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let me = v["header"]["member_id"].as_str();
                if me.is_some() && me == v["leader"].as_str() {
                    return Ok(addr);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!(
            "etcd elected no leader within 20 s (see {})",
            self.dir.display()
        )
    }

    /// `etcd_disk_wal_fsync_duration_seconds_count` of the member at `addr`.
    pub async fn wal_fsyncs(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
        let mut c = Http::connect(addr).await?;
        let text = c.get("/metrics").await?;
        let line = text
            .lines()
            .find(|l| l.starts_with("etcd_disk_wal_fsync_duration_seconds_count"))
            .ok_or_else(|| anyhow::anyhow!("etcd metrics have no WAL fsync count"))?;
        let n: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
        Ok(n as u64)
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Http {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Http {
    /// Connects to `addr`.
    pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Http> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream,
            host: addr.to_string(),
            buf: Vec::new(),
        })
    }

    /// `PUT key value` through the gateway.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key),
            base64(value)
        );
        let reply = self.post("/v3/kv/put", &body).await?;
        if !reply.contains("\"header\"") {
            anyhow::bail!("etcd put failed: {reply}");
        }
        Ok(())
    }

    async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<String> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await?;
        self.response().await
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(req.as_bytes()).await?;
        self.response().await
    }

    /// Reads one response (Content-Length or chunked); errors on a non-200 status.
    async fn response(&mut self) -> anyhow::Result<String> {
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let status = head.split(' ').nth(1).unwrap_or("");
        let lower = head.to_ascii_lowercase();
        let body = if lower.contains("transfer-encoding: chunked") {
            self.buf.drain(..head_end);
            self.chunked().await?
        } else {
            let len: usize = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse())
                .transpose()?
                .unwrap_or(0);
            while self.buf.len() < head_end + len {
                self.fill().await?;
            }
            let body = self.buf[head_end..head_end + len].to_vec();
            self.buf.drain(..head_end + len);
            body
        };
        let body = String::from_utf8_lossy(&body).to_string();
        if status != "200" {
            anyhow::bail!("HTTP {status}: {body}");
        }
        Ok(body)
    }

    async fn chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
            while self.buf.len() < line_end + 2 + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed mid-response");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_rfc_examples() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(super::base64(plain.as_bytes()), coded);
        }
    }
}
