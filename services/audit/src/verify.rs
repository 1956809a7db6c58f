//! Chain verification, shared by the database check and the offline export check.

use std::collections::HashSet;
use std::fmt;

use enclave_domain::TenantId;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::canonical::{ChainHash, chain_hash};

/// Most findings kept in a report (the first one is what matters; the rest give scale).
const MAX_FINDINGS: usize = 100;
/// How far from its position a moved record is looked for.
const REORDER_WINDOW: u64 = 64;

/// Something wrong with the chain, naming the record (by seq, and id where it is known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The record's content (or its stored hash) no longer matches its chain hash.
    Altered { seq: u64, record_id: Option<Uuid> },
    /// The record with this seq is gone.
    Missing { seq: u64 },
    /// A record that was not part of the chain sits at this seq.
    Inserted { seq: u64, record_id: Option<Uuid> },
    /// The record at `seq` was written as `original_seq`.
    Reordered {
        seq: u64,
        original_seq: u64,
        record_id: Option<Uuid>,
    },
    /// A signed checkpoint disagrees with the chain at `seq` (or its signature is invalid).
    Checkpoint {
        seq: u64,
        key_id: String,
        reason: String,
    },
    /// The chain head says `head_seq`, the last record found is `last_seq` (tail removed or
    /// head rewritten).
    Head { head_seq: u64, last_seq: u64 },
    /// A stored column disagrees with the hashed record (e.g. event_time).
    Column { seq: u64, column: &'static str },
    /// An export file as a whole does not match its manifest (signature, SHA-256, count) or
    /// cannot be read.
    Export { reason: String },
}

impl Finding {
    /// The seq the finding names.
    pub fn seq(&self) -> u64 {
        match self {
            Finding::Altered { seq, .. }
            | Finding::Missing { seq }
            | Finding::Inserted { seq, .. }
            | Finding::Reordered { seq, .. }
            | Finding::Checkpoint { seq, .. }
            | Finding::Column { seq, .. } => *seq,
            Finding::Head { last_seq, .. } => last_seq + 1,
            Finding::Export { .. } => 0,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = |r: &Option<Uuid>| r.map(|r| format!(" (record {r})")).unwrap_or_default();
        match self {
            Finding::Altered { seq, record_id } => {
                write!(f, "record seq {seq}{} was altered", id(record_id))
            }
            Finding::Missing { seq } => write!(f, "record seq {seq} is missing"),
            Finding::Inserted { seq, record_id } => {
                write!(f, "record seq {seq}{} was inserted", id(record_id))
            }
            Finding::Reordered {
                seq,
                original_seq,
                record_id,
            } => {
                write!(
                    f,
                    "record seq {seq}{} was moved (written as seq {original_seq})",
                    id(record_id)
                )
            }
            Finding::Checkpoint {
                seq,
                key_id,
                reason,
            } => write!(f, "checkpoint at seq {seq} (key {key_id}): {reason}"),
            Finding::Head { head_seq, last_seq } => {
                write!(
                    f,
                    "chain head is at seq {head_seq} but the last record is seq {last_seq}"
                )
            }
            Finding::Column { seq, column } => write!(
                f,
                "record seq {seq}: column {column} differs from the record"
            ),
            Finding::Export { reason } => write!(f, "export file: {reason}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub tenant: TenantId,
    /// Records read.
    pub checked: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<ChainHash>,
    /// In chain order; at most 100 (then `truncated`).
    pub findings: Vec<Finding>,
    pub truncated: bool,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn first_finding(&self) -> Option<&Finding> {
        self.findings.first()
    }

    pub(crate) fn push(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.truncated = true;
        }
    }
}

/// One stored record as the verifier sees it.
pub(crate) struct ChainRow {
    pub seq: u64,
    pub record_id: Option<Uuid>,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub record: Value,
}

/// Walks a chain in seq order. Each problem is named once; after it the verifier re-syncs on
/// the stored hashes so one altered record does not flag every record after it.
pub(crate) struct ChainVerifier {
    tenant: TenantId,
    expected: u64,
    prev: ChainHash,
    prev_prev: Option<ChainHash>,
    prev_id: Option<Uuid>,
    /// Renumbering after a removed/inserted record: rows verify as `seq + shift`.
    shift: i64,
    /// Hashes of rows already named in a finding (a link to one is not a new problem).
    flagged: HashSet<ChainHash>,
    pub report: VerifyReport,
}

impl ChainVerifier {
    /// Starts at `start_seq` whose predecessor's hash is `prev` (genesis, an anchor, or the
    /// stored hash before a range).
    pub fn new(tenant: TenantId, start_seq: u64, prev: ChainHash) -> Self {
        ChainVerifier {
            tenant,
            expected: start_seq,
            prev,
            prev_prev: None,
            prev_id: None,
            shift: 0,
            flagged: HashSet::new(),
            report: VerifyReport {
                tenant,
                checked: 0,
                first_seq: None,
                last_seq: None,
                last_hash: None,
                findings: Vec::new(),
                truncated: false,
            },
        }
    }

    fn hash_at(&self, prev: &ChainHash, seq: u64, record: &Value) -> ChainHash {
        chain_hash(prev, &self.tenant, seq, record)
    }

    pub fn feed(&mut self, row: ChainRow) {
        self.report.checked += 1;
        self.report.first_seq.get_or_insert(row.seq);
        if row.seq < self.expected {
            // A second record with a seq already seen (or going backwards).
            self.report.push(Finding::Inserted {
                seq: row.seq,
                record_id: row.record_id,
            });
            self.flagged.insert(row.hash);
            return;
        }
        if row.seq > self.expected {
            for seq in self.expected..row.seq.min(self.expected + 10) {
                self.report.push(Finding::Missing { seq });
            }
            // The row's own predecessor is the missing one: its link is not a second problem.
            self.flagged.insert(row.prev_hash);
        }
        if let Some(f) = self.classify(&row) {
            self.report.push(f);
            self.flagged.insert(row.hash);
        }
        self.advance(row);
    }

    fn advance(&mut self, row: ChainRow) {
        self.prev_prev = Some(self.prev);
        self.prev = row.hash;
        self.prev_id = row.record_id;
        self.expected = row.seq + 1;
        self.report.last_seq = Some(row.seq);
        self.report.last_hash = Some(row.hash);
    }

    /// None when the row links correctly (possibly under a known renumbering).
    fn classify(&mut self, row: &ChainRow) -> Option<Finding> {
        let seq_now = row.seq;
        let written_seq = seq_now.saturating_add_signed(self.shift);
        if self.hash_at(&self.prev, written_seq, &row.record) == row.hash {
            return (row.prev_hash != self.prev).then_some(Finding::Altered {
                seq: seq_now,
                record_id: row.record_id,
            });
        }
        let linked = row.prev_hash == self.prev || self.flagged.contains(&row.prev_hash);
        if self.hash_at(&row.prev_hash, written_seq, &row.record) == row.hash {
            // The record is intact but follows something other than its predecessor here.
            if linked {
                return None;
            }
            if Some(row.prev_hash) == self.prev_prev {
                return Some(Finding::Inserted {
                    seq: seq_now - 1,
                    record_id: self.prev_id,
                });
            }
            return Some(Finding::Altered {
                seq: seq_now.saturating_sub(1),
                record_id: self.prev_id,
            });
        }
        let lo = written_seq.saturating_sub(REORDER_WINDOW).max(1);
        let found = (lo..=written_seq + REORDER_WINDOW)
            .filter(|s| *s != written_seq)
            .find(|s| self.hash_at(&row.prev_hash, *s, &row.record) == row.hash);
        match found {
            Some(s) if linked && self.flagged.contains(&row.prev_hash) => {
                // Keeps following a renumbered run: a record was removed (or added) before it.
                self.shift = s as i64 - seq_now as i64;
                self.retitle_as_missing(s);
                None
            }
            Some(s)
                if Some(row.prev_hash) == self.prev_prev
                    && s + 1 == seq_now
                    && !self.flagged.contains(&self.prev) =>
            {
                self.shift = s as i64 - seq_now as i64;
                Some(Finding::Inserted {
                    seq: seq_now - 1,
                    record_id: self.prev_id,
                })
            }
            Some(s) => Some(Finding::Reordered {
                seq: seq_now,
                original_seq: s,
                record_id: row.record_id,
            }),
            None => Some(Finding::Altered {
                seq: seq_now,
                record_id: row.record_id,
            }),
        }
    }

    /// A run that keeps its renumbering means the previous "moved" record was really the
    /// first after a removal.
    fn retitle_as_missing(&mut self, written_seq: u64) {
        if let Some(Finding::Reordered {
            seq, original_seq, ..
        }) = self.report.findings.last().cloned()
            && original_seq > seq
            && original_seq + 1 == written_seq
        {
            self.report.findings.pop();
            self.report.push(Finding::Missing { seq });
        }
    }

    pub fn finish(self) -> VerifyReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chain(t: TenantId, n: u64) -> Vec<ChainRow> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let record = json!({"i": seq});
                let hash = chain_hash(&prev, &t, seq, &record);
                let row = ChainRow {
                    seq,
                    record_id: None,
                    prev_hash: prev,
                    hash,
                    record,
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn run(t: TenantId, rows: Vec<ChainRow>) -> VerifyReport {
        let mut v = ChainVerifier::new(t, 1, ChainHash::GENESIS);
        rows.into_iter().for_each(|r| v.feed(r));
        v.finish()
    }

    #[test]
    fn intact_chain_verifies() {
        let t = TenantId::new();
        let r = run(t, chain(t, 20));
        assert!(r.is_ok(), "{:?}", r.findings);
        assert_eq!((r.checked, r.last_seq), (20, Some(20)));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let t = TenantId::new();
        // altered content
        let mut rows = chain(t, 10);
        rows[4].record = json!({"i": 999});
        assert_eq!(
            run(t, rows).findings,
            vec![Finding::Altered {
                seq: 5,
                record_id: None
            }]
        );
        // deleted without renumbering
        let mut rows = chain(t, 10);
        rows.remove(6);
        assert_eq!(run(t, rows).findings, vec![Finding::Missing { seq: 7 }]);
        // deleted and the rest renumbered
        let mut rows = chain(t, 10);
        rows.remove(6);
        rows.iter_mut().skip(6).for_each(|r| r.seq -= 1);
        assert_eq!(run(t, rows).findings, vec![Finding::Missing { seq: 7 }]);
        // two records swapped
        let mut rows = chain(t, 10);
        rows.swap(2, 3);
        rows[2].seq = 3;
        rows[3].seq = 4;
        let f = run(t, rows).findings;
        assert_eq!(
            f[0],
            Finding::Reordered {
                seq: 3,
                original_seq: 4,
                record_id: None
            },
            "{f:?}"
        );
        assert_eq!(f.len(), 2, "{f:?}");
        // a forged record inserted and the rest renumbered
        let mut rows = chain(t, 10);
        let forged_hash = chain_hash(&rows[3].hash, &t, 5, &json!({"forged": true}));
        rows.insert(
            4,
            ChainRow {
                seq: 5,
                record_id: None,
                prev_hash: rows[3].hash,
                hash: forged_hash,
                record: json!({"forged": true}),
            },
        );
        rows.iter_mut().skip(5).for_each(|r| r.seq += 1);
        assert_eq!(
            run(t, rows).findings,
            vec![Finding::Inserted {
                seq: 5,
                record_id: None
            }]
        );
        // a duplicate seq
        let mut rows = chain(t, 5);
        let dup = ChainRow {
            seq: 3,
            record_id: None,
            prev_hash: rows[1].hash,
            hash: rows[2].hash,
            record: json!({"x": 1}),
        };
        rows.insert(3, dup);
        assert_eq!(
            run(t, rows).findings,
            vec![Finding::Inserted {
                seq: 3,
                record_id: None
            }]
        );
    }
}
