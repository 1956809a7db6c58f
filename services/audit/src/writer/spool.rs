//! The local spool: where records go, durably, while PostgreSQL cannot be reached.
//!
//! Frames: `b"EAS1"`, payload length (u32 LE), CRC-32 of the payload (u32 LE), payload (the
//! record as JSON). A batch is written and `fsync`ed before any of its appends is acknowledged.
//! Spooled records carry no seq or hash: the chain is assigned when they are replayed into the
//! database (in spool order, before any newer record), so several gateway processes with their
//! own spools still share one gapless chain per tenant. Replay is idempotent (records whose id
//! is already stored are skipped), so a crash between the replay's commit and the spool's
//! truncation duplicates nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{AuditError, AuditRecord};

const MAGIC: &[u8; 4] = b"EAS1";
const HEADER: usize = 12;
/// A single record larger than this is refused rather than spooled (it could not be a record
/// this platform wrote; protects replay from a corrupt length).
const MAX_FRAME: u32 = 256 * 1024 * 1024;

pub(crate) struct Spool {
    path: PathBuf,
    file: File,
    len: u64,
    /// Replay position (bytes already replayed).
    read_pos: u64,
}

impl Spool {
    /// Opens (creating) the spool and checks every frame. A torn final frame (a crash during a
    /// write that was never acknowledged) is cut off; damage anywhere else is an error.
    pub fn open(path: &Path) -> Result<Spool, AuditError> {
        let err = |context| {
            let path = path.to_owned();
            move |source| AuditError::Spool {
                path,
                context,
                source,
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err("creating the spool directory"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err("opening"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err("reading"))?;
        let mut pos = 0usize;
        while pos < bytes.len() {
            match check_frame(&bytes[pos..]) {
                Ok(n) => pos += n,
                Err(reason) if frame_reaches_end(&bytes[pos..]) => {
                    tracing::warn!(path = %path.display(), offset = pos, %reason, "cutting a torn frame off the audit spool");
                    file.set_len(pos as u64)
                        .map_err(err("truncating a torn frame"))?;
                    file.sync_all().map_err(err("syncing"))?;
                    break;
                }
                Err(reason) => {
                    return Err(AuditError::SpoolCorrupt {
                        path: path.to_owned(),
                        offset: pos as u64,
                        reason,
                    });
                }
            }
        }
        let len = pos as u64;
        file.seek(SeekFrom::Start(len)).map_err(err("seeking"))?;
        Ok(Spool {
            path: path.to_owned(),
            file,
            len,
            read_pos: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn err(&self, context: &'static str) -> impl FnOnce(std::io::Error) -> AuditError + use<> {
        let path = self.path.clone();
        move |source| AuditError::Spool {
            path,
            context,
            source,
        }
    }

    /// Appends the records and fsyncs; returns once they are durable.
    pub fn append(&mut self, records: &[&AuditRecord]) -> Result<(), AuditError> {
        let mut buf = Vec::new();
        for r in records {
            let payload = serde_json::to_vec(r).map_err(AuditError::json("spooled record"))?;
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|l| *l <= MAX_FRAME)
                .ok_or_else(|| AuditError::InvalidRecord {
                    field: "record",
                    reason: "larger than 256 MiB".into(),
                })?;
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        self.file
            .seek(SeekFrom::Start(self.len))
            .map_err(self.err("seeking"))?;
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Leave no half-written frame behind for the next append to follow.
            let _ = self.file.set_len(self.len);
            return Err(self.err("appending")(e));
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Reads up to `max` records from the replay position (not yet marked replayed).
    pub fn read_batch(&mut self, max: usize) -> Result<(Vec<AuditRecord>, u64), AuditError> {
        let mut out = Vec::new();
        let mut pos = self.read_pos;
        while out.len() < max && pos < self.len {
            self.file
                .seek(SeekFrom::Start(pos))
                .map_err(self.err("seeking"))?;
            let mut header = [0u8; HEADER];
            self.file
                .read_exact(&mut header)
                .map_err(self.err("reading"))?;
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut payload = vec![0u8; len];
            self.file
                .read_exact(&mut payload)
                .map_err(self.err("reading"))?;
            let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
            if &header[..4] != MAGIC || crc32fast::hash(&payload) != crc {
                return Err(AuditError::SpoolCorrupt {
                    path: self.path.clone(),
                    offset: pos,
                    reason: "changed since open".into(),
                });
            }
            out.push(serde_json::from_slice(&payload).map_err(AuditError::json("spooled record"))?);
            pos += (HEADER + len) as u64;
        }
        Ok((out, pos))
    }

    pub fn mark_replayed(&mut self, pos: u64) {
        self.read_pos = pos;
    }

    /// Empties the spool once everything in it is in the database.
    pub fn clear(&mut self) -> Result<(), AuditError> {
        self.file.set_len(0).map_err(self.err("truncating"))?;
        self.file.sync_all().map_err(self.err("syncing"))?;
        self.len = 0;
        self.read_pos = 0;
        Ok(())
    }
}

/// Length of a valid frame at the start of `b`, or why it is not one.
fn check_frame(b: &[u8]) -> Result<usize, String> {
    if b.len() < HEADER {
        return Err("short header".into());
    }
    if &b[..4] != MAGIC {
        return Err("bad magic".into());
    }
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    if len > MAX_FRAME {
        return Err(format!("frame length {len} too large"));
    }
    let end = HEADER + len as usize;
    if b.len() < end {
        return Err("short payload".into());
    }
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if crc32fast::hash(&b[HEADER..end]) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(end)
}

/// True when a bad frame is the last thing in the file (its declared extent reaches EOF).
fn frame_reaches_end(b: &[u8]) -> bool {
    if b.len() < HEADER {
        return true;
    }
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    HEADER.saturating_add(len) >= b.len()
}

#[cfg(test)]
mod tests {
    use enclave_domain::TenantId;

    use super::*;
    use crate::AuditActor;

    fn rec(i: u64) -> AuditRecord {
        let mut r = AuditRecord::new(
            TenantId::new(),
            AuditActor::System { id: "t".into() },
            "x",
            serde_json::json!({"i": i}),
        );
        r.latency_ms = i;
        r
    }

    #[test]
    fn frames_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.spool");
        let (a, b) = (rec(1), rec(2));
        let mut s = Spool::open(&path).unwrap();
        s.append(&[&a, &b]).unwrap();
        let good_len = s.len;
        drop(s);
        // A crash mid-write leaves half a frame.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"EAS1\x10\x00\x00\x00abc").unwrap();
        drop(f);
        let mut s = Spool::open(&path).unwrap();
        assert_eq!(s.len, good_len);
        let (got, _) = s.read_batch(10).unwrap();
        assert_eq!(got, vec![a, b]);
    }

    #[test]
    fn damage_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.spool");
        let mut s = Spool::open(&path).unwrap();
        s.append(&[&rec(1), &rec(2)]).unwrap();
        drop(s);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        match Spool::open(&path) {
            Err(AuditError::SpoolCorrupt { offset, .. }) => assert_eq!(offset, 0),
            Err(e) => panic!("expected corruption at 0, got {e:?}"),
            Ok(_) => panic!("expected corruption at 0, got a spool"),
        }
    }
}
