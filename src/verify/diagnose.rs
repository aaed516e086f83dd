//! What one record says about the chain: a pure function of the record the next one must link
//! to (the anchor), the record itself and the few records after it.
//!
//! [`diagnose`] decides; the walk applies the verdict (blames a line, moves the anchor). The
//! table in [`super`] lists the cases; [`Diagnosis`]'s `Display` writes the sentence of each.

use std::fmt;

use crate::chain::{GENESIS_HASH, Hash};

use super::report::ProblemKind;

/// A record line as the walk remembers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rec {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    pub seq: u64,
    /// The `prev_hash` it links to.
    pub prev: Hash,
    /// SHA-256 of the line.
    pub hash: Hash,
    /// SHA-256 of the line without its trailing CR, when it ends with one.
    pub bare: Option<Hash>,
}

impl Rec {
    /// The line ends with a CR, which the writer never writes.
    pub(crate) fn cr(&self) -> bool {
        self.bare.is_some()
    }

    /// The record as if its trailing CR were not there.
    #[must_use]
    pub(crate) fn without_cr(self) -> Rec {
        Rec {
            hash: self.bare.unwrap_or(self.hash),
            bare: None,
            ..self
        }
    }

    fn cr_note(&self) -> &'static str {
        if self.cr() {
            " (it ends with a CR)"
        } else {
            ""
        }
    }
}

/// The record the next one must link to, and what the walk knows since it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub rec: Rec,
    /// It was blamed as changed: the link from it is expected to be broken.
    pub blamed: bool,
    /// Non-record lines since it.
    pub junk: u64,
}

impl Anchor {
    /// The `seq` the next record must have.
    pub(crate) fn expected_seq(&self) -> u64 {
        self.rec.seq.wrapping_add(1)
    }
}

/// How an inserted record gives itself away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insertion {
    /// It is a byte-for-byte copy of the anchor.
    Copy,
    /// Its `seq` is behind the expected one.
    Behind,
    /// Its `seq` is at or past the expected one: it comes from elsewhere.
    Foreign,
}

/// The verdict on one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Diagnosis {
    /// It links to the anchor with the next `seq`, or is a sound first record.
    Links,
    /// It follows non-record lines that took the place of records; those were reported as
    /// what they are.
    AfterJunk,
    /// Only a CR was added before its LF: record `next` links to the line without it. The walk
    /// goes on with the record as if the CR were not there.
    CrAdded { rec: Rec, next: u64 },
    /// It was inserted with the right `seq` and `prev_hash`: line `twin` claims the same place
    /// and line `next` links to `twin`.
    Forged { rec: Rec, twin: u64, next: u64 },
    /// The first record's `prev_hash` is not the genesis hash.
    GenesisPrevChanged { rec: Rec },
    /// The first record has the genesis `prev_hash` but not `seq` 0.
    GenesisSeqChanged { rec: Rec },
    /// The first record is neither: the log's first records were deleted, or this is not its
    /// first file.
    StartsLate { rec: Rec },
    /// It and the record after it (`first`, which is blamed) are swapped.
    Swapped { rec: Rec, first: Rec },
    /// It was inserted: line `next` links past it to line `anchor`.
    Inserted {
        rec: Rec,
        how: Insertion,
        next: u64,
        anchor: u64,
    },
    /// It was changed or replaced: line `next` continues from where it should have been, but
    /// not from its bytes.
    Replaced {
        rec: Rec,
        expected: u64,
        anchor: u64,
        next: u64,
        link_ok: bool,
    },
    /// Only its link is broken, and it has the right `seq`: the anchor was changed. `last`:
    /// no record follows, so its own `prev_hash` may be what changed.
    AnchorChanged { anchor: Rec, rec: Rec, last: bool },
    /// Records `expected..rec.seq` are missing before it.
    Gap {
        rec: Rec,
        expected: u64,
        link_ok: bool,
    },
    /// Its `seq` is behind the expected one. `relinks`: the next record links to it, so the
    /// walk goes on from it.
    OutOfOrder {
        rec: Rec,
        expected: u64,
        anchor: u64,
        relinks: bool,
    },
    /// It follows a record with the largest `seq` (`u64::MAX`): nothing can, the writer refuses
    /// to, so its `seq` wrapped around (or was never in order).
    Wrapped { rec: Rec, anchor: u64 },
    /// The last line ends with a CR and nothing else was blamed on it (diagnosed at the end of
    /// the walk, not by [`diagnose`]).
    LastLineCr { rec: Rec },
}

/// How record `rec` fits the chain after `anchor` (`None` for the first record), looking at
/// the records `ahead` of it (the next few record lines, in order, non-record lines left out).
pub(crate) fn diagnose(anchor: Option<&Anchor>, rec: &Rec, ahead: &[Rec]) -> Diagnosis {
    let n = *rec;
    if let Some(bare) = n.bare
        && let Some(next) = ahead.iter().find(|a| a.prev == bare)
    {
        return Diagnosis::CrAdded {
            rec: n,
            next: next.line,
        };
    }
    let Some(anchor) = anchor else {
        return genesis(n, ahead);
    };
    if anchor.rec.seq == u64::MAX {
        return Diagnosis::Wrapped {
            rec: n,
            anchor: anchor.rec.line,
        };
    }
    let expected = anchor.expected_seq();
    let seq_ok = n.seq == expected;
    let link_ok = n.prev == anchor.rec.hash;
    if seq_ok && (link_ok || anchor.blamed) {
        return forged(n, ahead).unwrap_or(Diagnosis::Links);
    }
    if anchor.junk > 0 && n.seq > expected && n.seq - expected <= anchor.junk {
        return Diagnosis::AfterJunk;
    }
    if let Some(&a1) = ahead.first() {
        let a1_in_place = a1.prev == anchor.rec.hash && a1.seq == expected;
        if a1_in_place && n.prev == a1.hash && n.seq == expected.wrapping_add(1) {
            return Diagnosis::Swapped { rec: n, first: a1 };
        }
        if a1_in_place {
            let how = if n.hash == anchor.rec.hash {
                Insertion::Copy
            } else if n.seq < expected {
                Insertion::Behind
            } else {
                Insertion::Foreign
            };
            return Diagnosis::Inserted {
                rec: n,
                how,
                next: a1.line,
                anchor: anchor.rec.line,
            };
        }
        if a1.seq == expected.wrapping_add(1) && a1.prev != n.hash {
            return Diagnosis::Replaced {
                rec: n,
                expected,
                anchor: anchor.rec.line,
                next: a1.line,
                link_ok,
            };
        }
    }
    if seq_ok {
        return Diagnosis::AnchorChanged {
            anchor: anchor.rec,
            rec: n,
            last: ahead.is_empty(),
        };
    }
    if n.seq > expected {
        return Diagnosis::Gap {
            rec: n,
            expected,
            link_ok,
        };
    }
    Diagnosis::OutOfOrder {
        rec: n,
        expected,
        anchor: anchor.rec.line,
        relinks: ahead.first().is_some_and(|a| a.prev == n.hash),
    }
}

/// The first record: the genesis rule.
fn genesis(n: Rec, ahead: &[Rec]) -> Diagnosis {
    match (n.seq == 0, n.prev == GENESIS_HASH) {
        (true, true) => forged(n, ahead).unwrap_or(Diagnosis::Links),
        // A genesis record with another seq, or seq 0 with another prev_hash, was changed:
        // its own hash is not what the next record links to either.
        (true, false) => Diagnosis::GenesisPrevChanged { rec: n },
        (false, true) => Diagnosis::GenesisSeqChanged { rec: n },
        (false, false) => Diagnosis::StartsLate { rec: n },
    }
}

/// A record inserted with the right `seq` and `prev_hash`: the next record claims the same
/// place (same `seq`, same `prev_hash`, other bytes) and the chain goes on from that one.
fn forged(n: Rec, ahead: &[Rec]) -> Option<Diagnosis> {
    let [a1, a2, ..] = ahead else {
        return None;
    };
    (a1.seq == n.seq && a1.prev == n.prev && a1.hash != n.hash && a2.prev == a1.hash).then_some(
        Diagnosis::Forged {
            rec: n,
            twin: a1.line,
            next: a2.line,
        },
    )
}

impl Diagnosis {
    /// The kind of problem and the record blamed; `None` when the record fits the chain.
    pub(crate) fn problem(&self) -> Option<(ProblemKind, Rec)> {
        use Diagnosis as D;
        use ProblemKind as K;
        Some(match *self {
            D::Links | D::AfterJunk => return None,
            D::CrAdded { rec, .. }
            | D::Forged { rec, .. }
            | D::Replaced { rec, .. }
            | D::LastLineCr { rec } => (K::HashMismatch, rec),
            D::Inserted { rec, how, .. } => match how {
                Insertion::Copy | Insertion::Behind => (K::SeqOutOfOrder, rec),
                Insertion::Foreign => (K::HashMismatch, rec),
            },
            D::GenesisPrevChanged { rec }
            | D::GenesisSeqChanged { rec }
            | D::StartsLate { rec } => (K::BadGenesis, rec),
            D::Swapped { first, .. } => (K::SeqOutOfOrder, first),
            D::AnchorChanged { anchor, .. } => (K::HashMismatch, anchor),
            D::Gap { rec, .. } => (K::SeqGap, rec),
            D::OutOfOrder { rec, .. } | D::Wrapped { rec, .. } => (K::SeqOutOfOrder, rec),
        })
    }
}

/// The sentence for a person: which line, what happened, and how the links show it.
impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Diagnosis::Links => f.write_str("the record links to the one before it"),
            Diagnosis::Wrapped { rec, anchor } => write!(
                f,
                "line {} (seq {}) follows line {anchor}, whose seq {} is the largest a record can have: seq wrapped around",
                rec.line,
                rec.seq,
                u64::MAX
            ),
            Diagnosis::AfterJunk => f.write_str(
                "the record follows lines that took the place of records, reported as what they are",
            ),
            Diagnosis::CrAdded { rec, next } => write!(
                f,
                "line {} was changed: a CR was added before its LF (line {next} links to it without the CR)",
                rec.line
            ),
            Diagnosis::Forged { rec, twin, next } => write!(
                f,
                "line {} (seq {}) does not belong to the chain: it was inserted, line {twin} has the same seq and prev_hash and line {next} links to line {twin}",
                rec.line, rec.seq
            ),
            Diagnosis::GenesisPrevChanged { rec } => write!(
                f,
                "line {}: the first record's prev_hash is not 64 zeros: it was changed",
                rec.line
            ),
            Diagnosis::GenesisSeqChanged { rec } => write!(
                f,
                "line {}: the first record has the genesis prev_hash but seq {}, not 0: its seq was changed",
                rec.line, rec.seq
            ),
            Diagnosis::StartsLate { rec } => write!(
                f,
                "line {}: the log starts at seq {}, not 0: its first records were deleted, or this is not the log's first file",
                rec.line, rec.seq
            ),
            Diagnosis::Swapped { rec, first } => write!(
                f,
                "lines {} and {} are swapped: seq {} comes after seq {}",
                rec.line, first.line, first.seq, rec.seq
            ),
            Diagnosis::Inserted {
                rec,
                how,
                next,
                anchor,
            } => {
                write!(f, "line {} ", rec.line)?;
                match how {
                    Insertion::Copy => write!(f, "is a copy of line {anchor}")?,
                    Insertion::Behind => write!(f, "(seq {}) does not belong here", rec.seq)?,
                    Insertion::Foreign => {
                        write!(f, "(seq {}) does not belong to the chain", rec.seq)?;
                    }
                }
                write!(f, ": it was inserted, line {next} links to line {anchor}")
            }
            Diagnosis::Replaced {
                rec,
                expected,
                anchor,
                next,
                link_ok,
            } => {
                write!(
                    f,
                    "line {} was changed or replaced{}: ",
                    rec.line,
                    rec.cr_note()
                )?;
                match (rec.seq == expected, link_ok) {
                    (false, false) => write!(
                        f,
                        "its seq reads {}, expected {expected}, and its prev_hash does not match line {anchor} (a record moved or copied here)",
                        rec.seq
                    ),
                    (false, true) => write!(f, "its seq reads {}, expected {expected}", rec.seq),
                    (true, false) => write!(
                        f,
                        "its prev_hash does not match line {anchor} (or line {anchor} was changed too)"
                    ),
                    (true, true) => write!(f, "line {next}'s prev_hash does not match it"),
                }
            }
            Diagnosis::AnchorChanged { anchor, rec, last } => {
                let (line, note) = (anchor.line, anchor.cr_note());
                if last {
                    write!(
                        f,
                        "line {line} was changed{note}, or the prev_hash of line {} (the last line): they no longer link",
                        rec.line
                    )
                } else {
                    write!(
                        f,
                        "line {line} was changed{note}: its SHA-256 no longer matches the prev_hash of line {}",
                        rec.line
                    )
                }
            }
            Diagnosis::Gap {
                rec,
                expected,
                link_ok,
            } => {
                let missing = rec.seq - expected;
                if missing == 1 {
                    write!(f, "1 record (seq {expected}) is missing")?;
                } else {
                    write!(
                        f,
                        "{missing} records (seq {expected}..{}) are missing",
                        rec.seq - 1
                    )?;
                }
                write!(f, " before line {}", rec.line)?;
                if !link_ok {
                    f.write_str(", and its prev_hash does not link to the line before")?;
                }
                Ok(())
            }
            Diagnosis::OutOfOrder {
                rec,
                expected,
                anchor,
                ..
            } => write!(
                f,
                "line {} has seq {}, but seq {expected} was expected after line {anchor}",
                rec.line, rec.seq
            ),
            Diagnosis::LastLineCr { rec } => write!(
                f,
                "line {} ends with a CR, which the writer never writes: it was changed (it is the last line, so no link shows what else changed)",
                rec.line
            ),
        }
    }
}

#[cfg(test)]
mod tests;
