//! Usage records spooled to a local JSON-lines file, for the Front End to collect over the
//! admin API (the binary wires that; this module gives it a reader with offsets).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use confab_stun::turn::UsageRecord;
use serde::{Deserialize, Serialize};

/// One usage record as stored (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageLine {
    /// Account (REST user part or static username).
    pub user: String,
    /// USERNAME used.
    pub username: String,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// Client address.
    pub client: SocketAddr,
    /// Relay addresses.
    pub relays: Vec<SocketAddr>,
    /// Start, UNIX seconds.
    pub started_unix: u64,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Bytes client -> peers.
    pub bytes_to_peers: u64,
    /// Bytes peers -> client.
    pub bytes_from_peers: u64,
    /// Packets client -> peers.
    pub packets_to_peers: u64,
    /// Packets peers -> client.
    pub packets_from_peers: u64,
    /// `expired`, `deleted`, `connection_closed`, `shutdown`.
    pub end: String,
}

impl From<&UsageRecord> for UsageLine {
    fn from(u: &UsageRecord) -> Self {
        UsageLine {
            user: u.user.clone(),
            username: u.username.clone(),
            transport: u.transport.as_str().into(),
            client: u.client,
            relays: u.relays.clone(),
            started_unix: u.started_unix,
            duration_ms: u.duration.as_millis() as u64,
            bytes_to_peers: u.bytes_to_peers,
            bytes_from_peers: u.bytes_from_peers,
            packets_to_peers: u.packets_to_peers,
            packets_from_peers: u.packets_from_peers,
            end: u.end.as_str().into(),
        }
    }
}

/// Spool failures.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// File system error on the spool file.
    #[error("usage spool {path}: {source}")]
    Io {
        /// The spool file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A line that is not a usage record (file edited or corrupted).
    #[error("usage spool {path}: line at byte {offset} is not a usage record: {source}")]
    BadLine {
        /// The spool file.
        path: PathBuf,
        /// Byte offset of the line.
        offset: u64,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The spool file: appended to by the relay, read and compacted by the collector.
#[derive(Debug)]
pub struct UsageSpool {
    path: PathBuf,
    file: Mutex<File>,
}

impl UsageSpool {
    /// Opens (creating) the spool at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SpoolError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|source| SpoolError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(UsageSpool {
            path,
            file: Mutex::new(file),
        })
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one record (one `write` call per line, so lines never interleave).
    pub fn append(&self, record: &UsageRecord) -> Result<(), SpoolError> {
        let mut line =
            serde_json::to_vec(&UsageLine::from(record)).expect("plain struct serializes");
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&line).map_err(|e| self.io(e))
    }

    /// Reads up to `max` records starting at byte `offset` (0 = start). Returns them and the
    /// offset to continue from; a partial last line is left for the next call.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<(Vec<UsageLine>, u64), SpoolError> {
        let f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = BufReader::new(f.try_clone().map_err(|e| self.io(e))?);
        drop(f);
        r.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        let mut pos = offset;
        let mut line = Vec::new();
        while out.len() < max {
            line.clear();
            let n = r.read_until(b'\n', &mut line).map_err(|e| self.io(e))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let rec =
                serde_json::from_slice(&line[..n - 1]).map_err(|source| SpoolError::BadLine {
                    path: self.path.clone(),
                    offset: pos,
                    source,
                })?;
            out.push(rec);
            pos += n as u64;
        }
        Ok((out, pos))
    }

    /// Drops the first `upto` bytes (records the collector has stored) by rewriting the file.
    pub fn compact(&self, upto: u64) -> Result<(), SpoolError> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = Vec::new();
        f.seek(SeekFrom::Start(upto)).map_err(|e| self.io(e))?;
        f.read_to_end(&mut rest).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("compact");
        std::fs::write(&tmp, &rest).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        *f = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_stun::turn::{EndReason, Transport};
    use std::time::Duration;

    fn record(user: &str) -> UsageRecord {
        UsageRecord {
            user: user.into(),
            username: format!("1:{user}"),
            transport: Transport::Udp,
            client: "192.0.2.1:1000".parse().unwrap(),
            relays: vec!["192.0.2.2:50000".parse().unwrap()],
            started_unix: 1_800_000_000,
            duration: Duration::from_millis(1500),
            bytes_to_peers: 10,
            bytes_from_peers: 20,
            packets_to_peers: 1,
            packets_from_peers: 2,
            end: EndReason::Expired,
        }
    }

    #[test]
    fn append_read_with_offsets_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let spool = UsageSpool::open(dir.path().join("usage.jsonl")).unwrap();
        for u in ["a", "b", "c"] {
            spool.append(&record(u)).unwrap();
        }
        let (first, off) = spool.read_from(0, 2).unwrap();
        assert_eq!(
            first.iter().map(|l| l.user.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(first[0].duration_ms, 1500);
        assert_eq!(first[0].end, "expired");
        let (rest, end) = spool.read_from(off, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(spool.read_from(end, 10).unwrap().0.len(), 0);
        spool.compact(off).unwrap();
        spool.append(&record("d")).unwrap();
        let (all, _) = spool.read_from(0, 10).unwrap();
        assert_eq!(
            all.iter().map(|l| l.user.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
    }

    #[test]
    fn a_corrupted_line_is_reported_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.jsonl");
        let spool = UsageSpool::open(&path).unwrap();
        spool.append(&record("a")).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{oops}\n")
            .unwrap();
        match spool.read_from(0, 10) {
            Err(SpoolError::BadLine { offset, .. }) => assert_eq!(offset, len),
            other => panic!("{other:?}"),
        }
    }
}
