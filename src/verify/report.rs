//! What verification finds: the [`Report`] of SPEC §7, its [`Problem`]s and their kinds.

use serde::Serialize;

/// The kinds of problem `verify` reports (SPEC §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A line is not valid UTF-8.
    BadUtf8,
    /// A line is not valid JSON.
    BadJson,
    /// A line is JSON but not an object.
    NotObject,
    /// A JSON object without valid chain fields (`seq`, `prev_hash`); a log in which no line
    /// has them (the old unchained format) is one such problem.
    MissingChainFields,
    /// The first record is not a genesis record (`seq` 0, `prev_hash` 64 zeros): it was
    /// changed, or the first records were deleted.
    BadGenesis,
    /// Records are missing: a `seq` skips ahead.
    SeqGap,
    /// A record is out of place: inserted, duplicated, or swapped with its neighbour.
    SeqOutOfOrder,
    /// A record's bytes changed (a CR added included), or a record that does not belong to
    /// the chain was inserted.
    HashMismatch,
    /// An empty line.
    EmptyLine,
    /// Bytes after the last LF: an incomplete write.
    TornTail,
    /// A checkpoint's signature by a known key does not verify, or the checkpoint is malformed.
    BadSignature,
    /// No signature on a checkpoint is by a trusted key (given with `--pub`).
    UnknownKey,
    /// The log has fewer records than a checkpoint or the verifier state says it had.
    Truncated,
    /// The line at a checkpoint's (or the state's) size no longer hashes to its head, or a
    /// record the verifier state's proof remembers (its window, a sampled record, the head's
    /// byte offset) is no longer as it was.
    CheckpointMismatch,
    /// A seal's MAC does not verify with the key of its epoch.
    SealMismatch,
    /// Seal epochs skip a number.
    SealEpochGap,
    /// A rotated log: a segment the manifest lists (and did not prune) is not on disk, or an
    /// archived one is not in the `--archive` directory.
    SegmentMissing,
    /// A rotated log: a file named like a segment of the log that the manifest does not list.
    SegmentExtra,
    /// A rotated log: a segment holds the records of another segment (names swapped or
    /// renamed).
    SegmentRenamed,
    /// A rotated log: a segment no longer holds its named range of records (truncated, cut, or
    /// unreadable as zstd).
    SegmentChanged,
    /// A rotated log: a segment (or its archive copy) holds its named range of records but its
    /// SHA-256 differs from the one the manifest recorded: its bytes changed.
    SegmentHashMismatch,
    /// A rotated log: the manifest is not intact (a record changed, deleted or inserted), or
    /// its events contradict each other.
    ManifestEdited,
    /// A rotated log: the first record of a segment or of the live file does not link to the
    /// last record of the file before it.
    SegmentBoundaryBreak,
}

impl ProblemKind {
    /// The kind as written in reports: `hash_mismatch`, …
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::BadUtf8 => "bad_utf8",
            ProblemKind::BadJson => "bad_json",
            ProblemKind::NotObject => "not_object",
            ProblemKind::MissingChainFields => "missing_chain_fields",
            ProblemKind::BadGenesis => "bad_genesis",
            ProblemKind::SeqGap => "seq_gap",
            ProblemKind::SeqOutOfOrder => "seq_out_of_order",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::EmptyLine => "empty_line",
            ProblemKind::TornTail => "torn_tail",
            ProblemKind::BadSignature => "bad_signature",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::Truncated => "truncated",
            ProblemKind::CheckpointMismatch => "checkpoint_mismatch",
            ProblemKind::SealMismatch => "seal_mismatch",
            ProblemKind::SealEpochGap => "seal_epoch_gap",
            ProblemKind::SegmentMissing => "segment_missing",
            ProblemKind::SegmentExtra => "segment_extra",
            ProblemKind::SegmentRenamed => "segment_renamed",
            ProblemKind::SegmentChanged => "segment_changed",
            ProblemKind::SegmentHashMismatch => "segment_hash_mismatch",
            ProblemKind::ManifestEdited => "manifest_edited",
            ProblemKind::SegmentBoundaryBreak => "segment_boundary_break",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One integrity problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// 1-based line number of the line blamed.
    pub line: u64,
    /// Byte offset of that line's start.
    pub offset: u64,
    /// The line's `seq`, when it has one.
    pub seq: Option<u64>,
    /// One sentence for a person.
    pub message: String,
    /// A rotated log: the file the problem concerns (a segment, the live file, the manifest or
    /// an archive copy), by name. Absent for a log that is one file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The result of verifying a log; serialises to the JSON of SPEC §7.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when no problem was found.
    pub ok: bool,
    /// The file verified.
    pub file: String,
    /// Number of chained records.
    pub records: u64,
    /// File length in bytes, torn tail included; for a rotated log, the bytes of the files
    /// walked (segments decompressed), which is the unrotated log's length when none was pruned.
    pub bytes: u64,
    /// `seq` of the first record.
    pub first_seq: Option<u64>,
    /// `seq` of the last record.
    pub last_seq: Option<u64>,
    /// `timestamp` of the first record.
    pub first_timestamp: Option<String>,
    /// `timestamp` of the last record.
    pub last_timestamp: Option<String>,
    /// SHA-256 of the last record's line: the head to compare with a checkpoint.
    pub head_hash: Option<String>,
    /// The problems found, in file order, at most `max_problems`.
    pub problems: Vec<Problem>,
    /// How many problems there were in all (more than listed when the list was cut).
    pub problems_total: u64,
    /// Signed checkpoints whose signature verified and whose head was compared with the log.
    pub checkpoints_checked: u64,
    /// With a seal key: the `seq` of the last seal that verified (it vouches for every record
    /// up to it).
    pub sealed_through_seq: Option<u64>,
    /// With a seal key: records after the last good seal, not yet sealed.
    pub unsealed_records: Option<u64>,
    /// A rotated log whose first segments were pruned: what the chain's first remaining
    /// record was checked against. Absent when the chain starts at its genesis record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchored: Option<Anchored>,
}

/// Where the chain of a pruned log is anchored: the manifest's head hash of the last pruned
/// segment, which the first remaining record must link to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anchored {
    /// `seq` of the last pruned record.
    pub seq: u64,
    /// Hex SHA-256 of that record's line, as the manifest keeps it.
    pub head_hash: String,
    /// The pruned segment's file name.
    pub file: String,
}

impl std::fmt::Display for Anchored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain anchored at seq {} on the manifest's head of pruned segment {}",
            self.seq + 1,
            self.file
        )
    }
}

impl Report {
    /// Adds a problem found outside the line walk (a checkpoint, the state, a seal), keeping
    /// the list in file order and within `max_problems`.
    pub(crate) fn add_problem(&mut self, p: Problem, max_problems: usize) {
        self.problems_total += 1;
        self.ok = false;
        insert_in_order(&mut self.problems, p, max_problems);
    }
}

/// Inserts `p` into `problems` (kept in file order), keeping at most `max` of them.
pub(crate) fn insert_in_order(problems: &mut Vec<Problem>, p: Problem, max: usize) {
    let at = problems.partition_point(|q| q.line <= p.line);
    if at < max {
        problems.insert(at, p);
        problems.truncate(max);
    }
}
