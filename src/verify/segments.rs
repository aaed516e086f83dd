//! Verifying a rotated log: the manifest as a chain of its own and as a consistent story of
//! segments; each segment on disk against the manifest (present, not extra, holding its own
//! range, SHA-256 as recorded); then one walk over every segment and the live file in `seq`
//! order, each file linked to the one before it, so the chain is proved from its genesis (or,
//! after pruning, from the manifest's head of the last pruned segment) to the live file's end.
//! Each problem names its file, and the walk goes on past it: a missing or unreadable segment
//! is stepped over by anchoring the next file on the manifest's head of the missing range.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::chain::{self, Hash};
use crate::error::Result;
use crate::reader::Snapshot;
use crate::segment::{
    Compression, LogSet, ManifestEvent, SegmentClosed, SegmentPruned, list_segments, manifest_path,
    read_manifest, segment_file_name,
};

use super::report::{Anchored, Problem, ProblemKind, Report, insert_in_order};
use super::walk::{Start, WalkOptions, walk_bytes};

/// A range of records the manifest knows, and what became of it.
#[derive(Clone, Debug)]
struct Range {
    closed: SegmentClosed,
    /// `(name, sha256)` of the compressed file, once `segment_compressed` was written.
    compressed: Option<(String, String)>,
    pruned: Option<SegmentPruned>,
    /// SHA-256 of the archive copy, from `segment_archived`.
    archived: Option<String>,
}

impl Range {
    fn span(&self) -> (u64, u64) {
        (self.closed.first_seq, self.closed.last_seq)
    }
}

/// Problems found outside the walk, in the order found.
struct Found {
    problems: Vec<Problem>,
}

impl Found {
    fn add(&mut self, kind: ProblemKind, file: &str, message: String) {
        self.problems.push(Problem {
            kind,
            line: 0,
            offset: 0,
            seq: None,
            message,
            file: Some(file.to_owned()),
        });
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifest's ranges, after checking it as a chain and its events against each other.
fn read_ranges(log: &Path, opts: &WalkOptions, found: &mut Found) -> Result<Vec<Range>> {
    let Some((snapshot, entries)) = read_manifest(log)? else {
        return Ok(Vec::new());
    };
    let mname = name_of(&manifest_path(log));
    let log_name = name_of(log);
    let walked = walk_bytes(
        snapshot.data(),
        snapshot.torn_tail(),
        Start::default(),
        opts,
        &|_| {},
    )?;
    for p in walked.problems {
        found.add(
            ProblemKind::ManifestEdited,
            &mname,
            format!(
                "the manifest is not intact at its line {}: {}: {}",
                p.line, p.kind, p.message
            ),
        );
    }
    let mut ranges: Vec<Range> = Vec::new();
    let mut chain_id: Option<String> = None;
    let mut edited = |line: u64, what: String| {
        found.add(
            ProblemKind::ManifestEdited,
            &mname,
            format!("the manifest's line {line} {what}"),
        );
    };
    for entry in entries {
        let Some(event) = entry.event else {
            edited(
                entry.line,
                format!(
                    "is not a manifest event (action {:?})",
                    entry.action.unwrap_or_default()
                ),
            );
            continue;
        };
        let find = |ranges: &mut Vec<Range>, file: &str| {
            ranges.iter().position(|r| {
                r.closed.file == file || r.compressed.as_ref().is_some_and(|(c, _)| c == file)
            })
        };
        match event {
            ManifestEvent::Closed(c) => {
                let expected_first = ranges.last().map_or(0, |r| r.closed.last_seq + 1);
                let id = chain_id.get_or_insert_with(|| c.chain_id.clone());
                if let Some(why) = closed_out_of_place(&c, expected_first, id, &log_name) {
                    edited(entry.line, format!("(segment_closed {}) {why}", c.file));
                }
                ranges.push(Range {
                    closed: c,
                    compressed: None,
                    pruned: None,
                    archived: None,
                });
            }
            ManifestEvent::Compressed(c) => match find(&mut ranges, &c.file) {
                Some(i) => ranges[i].compressed = Some((c.compressed_file, c.sha256)),
                None => edited(
                    entry.line,
                    format!("compresses {}, which no segment_closed names", c.file),
                ),
            },
            ManifestEvent::Archived(a) => match find(&mut ranges, &a.file) {
                Some(i) => ranges[i].archived = Some(a.sha256),
                None => edited(
                    entry.line,
                    format!("archives {}, which no segment_closed names", a.file),
                ),
            },
            ManifestEvent::Pruned(p) => match find(&mut ranges, &p.file) {
                Some(i)
                    if ranges[i].span() == (p.first_seq, p.last_seq)
                        && ranges[i].closed.head_hash == p.head_hash =>
                {
                    ranges[i].pruned = Some(p);
                }
                _ => edited(
                    entry.line,
                    format!(
                        "prunes {} (seq {}..{}), which does not match the segment the manifest closed",
                        p.file, p.first_seq, p.last_seq
                    ),
                ),
            },
        }
    }
    Ok(ranges)
}

/// Why a `segment_closed` event does not follow the ones before it, if it does not.
fn closed_out_of_place(
    c: &SegmentClosed,
    expected_first: u64,
    chain_id: &str,
    log_name: &str,
) -> Option<String> {
    if c.first_seq != expected_first {
        Some(format!(
            "starts at seq {}, not at seq {expected_first} after the segments before it",
            c.first_seq
        ))
    } else if c.file != segment_file_name(log_name, c.first_seq, c.last_seq, Compression::None) {
        Some(format!(
            "is not the name of seq {}..{}",
            c.first_seq, c.last_seq
        ))
    } else if c.records != c.last_seq.saturating_sub(c.first_seq) + 1 {
        Some(format!(
            "says {} records for seq {}..{}",
            c.records, c.first_seq, c.last_seq
        ))
    } else if c.chain_id != chain_id {
        Some(format!(
            "has chain id {}, not the log's {chain_id}",
            c.chain_id
        ))
    } else {
        None
    }
}

/// A file to walk: where it is, how it is stored, and the range of records it holds.
#[derive(Clone, Debug)]
struct Planned {
    path: PathBuf,
    /// Its name in problems (the file name; an archive copy's path).
    label: String,
    compression: Compression,
    /// `seq` of its first record, as its content says (`None`: the live file, not known).
    first: Option<u64>,
    /// The manifest's range it stands for (an index into the ranges).
    range: Option<usize>,
    /// Its SHA-256 matched the manifest: its content is exactly the one closed.
    intact: bool,
    /// The SHA-256 the manifest recorded, still to be compared once the file is walked (a
    /// plain segment: see `walk_files`).
    check_sha: Option<String>,
}

/// The file's content (decompressed when compressed), with the SHA-256 of its bytes as
/// stored when `hash` (always for a compressed file: it is small, and read whole anyway).
fn load(path: &Path, compression: Compression, hash: bool) -> Result<(Option<Hash>, Snapshot)> {
    match compression {
        Compression::None => {
            let snap = Snapshot::open(path)?;
            Ok((hash.then(|| sha_of(&snap)), snap))
        }
        Compression::Zstd => {
            let stored =
                std::fs::read(path).map_err(crate::error::Error::io("cannot read", path))?;
            let hash: Hash = Sha256::digest(&stored).into();
            let plain = zstd::stream::decode_all(&stored[..])
                .map_err(crate::error::Error::io("cannot decompress", path))?;
            Ok((Some(hash), Snapshot::from_bytes(path, plain)))
        }
    }
}

/// SHA-256 of a plain file's bytes, as its snapshot holds them.
fn sha_of(snap: &Snapshot) -> Hash {
    let mut h = Sha256::new();
    h.update(snap.data());
    h.update(snap.torn_tail());
    h.finalize().into()
}

/// `seq` of the first and last records of a file's content.
fn seq_span(snap: &Snapshot) -> Option<(u64, u64)> {
    let first = snap.lines().find_map(|(_, l)| chain::chain_prefix(l))?;
    let last = snap.lines_rev().find_map(|(_, l)| chain::chain_prefix(l))?;
    Some((first.seq, last.seq))
}

/// Checks one stored file against the range it is named for, and plans its walk.
fn check_file(
    path: &Path,
    label: &str,
    compression: Compression,
    want_sha: &str,
    range: usize,
    ranges: &[Range],
    found: &mut Found,
) -> Option<Planned> {
    let planned = |first, range, intact| Planned {
        path: path.to_path_buf(),
        label: label.to_owned(),
        compression,
        first: Some(first),
        range: Some(range),
        intact,
        check_sha: None,
    };
    let span = ranges[range].span();
    let (hash, snap) = match load(path, compression, false) {
        Ok(x) => x,
        Err(e) => {
            found.add(
                ProblemKind::SegmentChanged,
                label,
                format!("the segment {label} cannot be read: {e}; its records are not checked"),
            );
            return None;
        }
    };
    let holds = seq_span(&snap);
    match hash {
        Some(hash) if hex::encode(hash) == want_sha => return Some(planned(span.0, range, true)),
        // A plain file that holds its range: its hash is compared while it is walked.
        None if holds == Some(span) => {
            return Some(Planned {
                check_sha: Some(want_sha.to_owned()),
                ..planned(span.0, range, true)
            });
        }
        _ => {}
    }
    let hash = hash.unwrap_or_else(|| sha_of(&snap));
    drop(snap);
    let named = format!("seq {}..{}", span.0, span.1);
    match holds {
        Some(h) if h == span => {
            found.add(
                ProblemKind::SegmentHashMismatch,
                label,
                format!(
                    "the segment {label} ({named}) has SHA-256 {}, not the {want_sha} the manifest recorded: its bytes changed",
                    hex::encode(hash)
                ),
            );
            Some(planned(span.0, range, false))
        }
        Some(h) if let Some(other) = ranges.iter().position(|r| r.span() == h) => {
            found.add(
                ProblemKind::SegmentRenamed,
                label,
                format!(
                    "the segment {label} is named for {named} but holds seq {}..{}, the records of {}: segments were renamed",
                    h.0, h.1, ranges[other].closed.file
                ),
            );
            Some(planned(h.0, other, false))
        }
        other => {
            let holds =
                other.map_or_else(|| "no record".to_owned(), |(a, b)| format!("seq {a}..{b}"));
            found.add(
                ProblemKind::SegmentChanged,
                label,
                format!(
                    "the segment {label} is named for {named} but holds {holds}: it was truncated or cut (SHA-256 differs from the manifest's)"
                ),
            );
            Some(planned(span.0, range, false))
        }
    }
}

/// Verifies a rotated log; `archive`: also the archive copies of pruned segments there.
pub(crate) fn verify_set(
    set: &LogSet,
    archive: Option<&Path>,
    opts: &WalkOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let mut found = Found {
        problems: Vec::new(),
    };
    let ranges = read_ranges(&set.log, opts, &mut found)?;
    let plan = plan_files(set, &ranges, archive, &mut found)?;
    let mut report = walk_files(&set.log, &plan, &ranges, opts, progress, &mut found)?;
    for problem in found.problems {
        report.problems_total += 1;
        insert_in_order(&mut report.problems, problem, opts.max_problems);
    }
    report.ok = report.problems_total == 0;
    Ok(report)
}

/// The files to walk, in `seq` order, the live file last: each segment the manifest closed
/// and did not prune checked against it, the archive copies of pruned ones with `archive`.
fn plan_files(
    set: &LogSet,
    ranges: &[Range],
    archive: Option<&Path>,
    found: &mut Found,
) -> Result<Vec<Planned>> {
    let log = &set.log;
    if !set.has_manifest {
        found.add(
            ProblemKind::ManifestEdited,
            &name_of(&manifest_path(log)),
            "the log has segments but no manifest: it was deleted, so the segments cannot be checked against it".to_owned(),
        );
    }

    // Which stored file stands for each range, and the files no range claims.
    let mut by_span: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, r) in ranges.iter().enumerate() {
        by_span.insert(r.span(), i);
    }
    let mut on_disk: HashMap<usize, Vec<crate::segment::Segment>> = HashMap::new();
    for seg in list_segments(log)? {
        let span = (seg.name.first_seq, seg.name.last_seq);
        let name = name_of(&seg.path);
        match by_span.get(&span) {
            Some(&i) => on_disk.entry(i).or_default().push(seg),
            None => found.add(
                ProblemKind::SegmentExtra,
                &name,
                format!("{name} is named like a segment of this log, but the manifest has no record of it; it is not checked"),
            ),
        }
    }
    let live = set.parts.iter().find(|p| p.segment.is_none());
    let live_first = live.and_then(|p| {
        let snap = Snapshot::open(&p.path).ok()?;
        snap.lines()
            .find_map(|(_, l)| chain::chain_prefix(l))
            .map(|f| f.seq)
    });

    let mut plan: Vec<Planned> = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        if r.pruned.is_some() {
            if let Some(dir) = archive {
                plan_archive(dir, i, ranges, &mut plan, found);
            }
            continue;
        }
        let files = on_disk.remove(&i).unwrap_or_default();
        let zst = r.compressed.as_ref().and_then(|(name, sha)| {
            files
                .iter()
                .find(|s| name_of(&s.path) == *name)
                .map(|s| (s, sha))
        });
        let uncompressed = files
            .iter()
            .find(|s| s.name.compression == Compression::None && name_of(&s.path) == r.closed.file)
            .map(|s| (s, &r.closed.sha256));
        // NOTE: the compressed file counts once its record is written; before that the plain
        // one is the segment (a compression under way). Both there: the plain removal is
        // still to come.
        let Some((seg, sha)) = zst.or(uncompressed) else {
            let last = i + 1 == ranges.len();
            if last && live_first == Some(r.closed.first_seq) {
                // Rotation's rename is still to come: the live file is this segment.
                continue;
            }
            found.add(
                ProblemKind::SegmentMissing,
                &r.compressed
                    .as_ref()
                    .map_or(r.closed.file.clone(), |(c, _)| c.clone()),
                format!(
                    "the segment {} (seq {}..{}, {} records) is not on disk and was not pruned",
                    r.closed.file, r.closed.first_seq, r.closed.last_seq, r.closed.records
                ),
            );
            continue;
        };
        let label = name_of(&seg.path);
        if let Some(p) = check_file(
            &seg.path,
            &label,
            seg.name.compression,
            sha,
            i,
            ranges,
            found,
        ) {
            plan.push(p);
        }
    }
    plan.sort_by_key(|p| p.first);
    if let Some(live) = live {
        plan.push(Planned {
            path: live.path.clone(),
            label: name_of(&live.path),
            compression: Compression::None,
            first: live_first,
            range: None,
            intact: false,
            check_sha: None,
        });
    }
    Ok(plan)
}

/// The walk, file after file, each linked to the head before it.
fn walk_files(
    log: &Path,
    plan: &[Planned],
    ranges: &[Range],
    opts: &WalkOptions,
    progress: &(dyn Fn(u64) + Sync),
    found: &mut Found,
) -> Result<Report> {
    let mut report = empty_report(log);
    let (mut lines, mut offset) = (0u64, 0u64);
    // The last record walked: seq, hash, offset, and whether its file was intact.
    let mut prev: Option<(u64, Hash, u64, bool)> = None;
    let max = opts.max_problems;
    // The next file is read (decompressed) on another thread while this one is walked.
    let read = |p: &Planned| {
        let (path, compression) = (p.path.clone(), p.compression);
        std::thread::spawn(move || load(&path, compression, false))
    };
    let mut next = plan.first().map(read);
    for (i, p) in plan.iter().enumerate() {
        let this = next.take();
        next = plan.get(i + 1).map(read);
        let first = p.first.or_else(|| prev.map(|(s, ..)| s + 1));
        // Lines and bytes of ranges not walked (missing, pruned) still count, so line numbers
        // and offsets are those of the whole log.
        if let Some(first) = first {
            let walked_to = prev.map_or(0, |(s, ..)| s + 1);
            for r in ranges
                .iter()
                .filter(|r| r.closed.first_seq >= walked_to && r.closed.last_seq < first)
            {
                lines += r.closed.records;
                offset += r.closed.bytes;
            }
        }
        let (anchor, anchored) = anchor_of(first, prev, ranges, offset);
        if report.anchored.is_none() && report.records == 0 {
            report.anchored = anchored;
        }
        let loaded = match this.map(std::thread::JoinHandle::join) {
            Some(Ok(loaded)) => loaded,
            _ => load(&p.path, p.compression, false),
        };
        let snap = match loaded {
            Ok((_, snap)) => snap,
            Err(e) => {
                found.add(
                    ProblemKind::SegmentChanged,
                    &p.label,
                    format!(
                        "{} cannot be read: {e}; its records are not checked",
                        p.label
                    ),
                );
                continue;
            }
        };
        let from = Start {
            lines,
            base: offset,
            anchor,
        };
        // Progress counts the bytes walked (the records' bytes, decompressed).
        let done_before = report.bytes;
        let w = walk_bytes(snap.data(), snap.torn_tail(), from, opts, &|n| {
            progress(done_before + n);
        })?;
        let intact = p.intact && check_plain(p, ranges, &w, &snap, found);
        check_pruned_records(&snap, &p.label, ranges, found);
        let first_line = lines + 1;
        // A break at the boundary: the file's first record does not link to the head before
        // it (a change inside that record is the walk's own kind).
        let head = snap
            .lines()
            .next()
            .and_then(|(_, l)| chain::chain_prefix(l));
        let broken = anchor.is_some_and(|(seq, hash, _)| {
            head.is_none_or(|f| f.seq != seq.wrapping_add(1) || f.prev_hash != hash)
        });
        for mut problem in w.problems {
            problem.file = Some(p.label.clone());
            if problem.kind == ProblemKind::TornTail && p.range.is_some() {
                // No append ever touches a closed segment: its partial last line stays.
                problem.message = problem.message.replace(
                    "an incomplete write (the next append quarantines them)",
                    "a closed segment that ends in the middle of a line (appends never touch a segment)",
                );
            }
            if broken && problem.line == first_line {
                at_boundary(&mut problem, &p.label);
            }
            insert_in_order(&mut report.problems, problem, max);
        }
        report.problems_total += w.problems_total;
        report.records += w.records;
        let len = snap.len();
        report.bytes += len;
        if let Some(f) = w.first
            && report.first_seq.is_none()
        {
            report.first_seq = Some(f.seq);
            report.first_timestamp = w.first_timestamp;
        }
        if let Some(l) = w.last {
            report.last_seq = Some(l.seq);
            report.last_timestamp = w.last_timestamp;
            report.head_hash = Some(hex::encode(l.hash));
            prev = Some((l.seq, l.hash, offset + len - 1, intact || p.range.is_none()));
        }
        lines = w.lines;
        offset += len;
    }
    Ok(report)
}

/// The report of a rotated log before its files are walked.
fn empty_report(log: &Path) -> Report {
    Report {
        ok: true,
        file: log.display().to_string(),
        records: 0,
        bytes: 0,
        first_seq: None,
        last_seq: None,
        first_timestamp: None,
        last_timestamp: None,
        head_hash: None,
        problems: Vec::new(),
        problems_total: 0,
        checkpoints_checked: 0,
        sealed_through_seq: None,
        unsealed_records: None,
        anchored: None,
    }
}

/// The `segments_pruned` records in a file must agree with the manifest: each names the last
/// pruned `seq` and its head hash as a `segment_pruned` event recorded them.
fn check_pruned_records(snap: &Snapshot, label: &str, ranges: &[Range], found: &mut Found) {
    let needle = format!("\"action\":\"{}\"", crate::segment::SEGMENTS_PRUNED_ACTION);
    let data = snap.data();
    for at in memchr::memmem::find_iter(data, needle.as_bytes()) {
        let start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&data[start..end]) else {
            continue;
        };
        let details = &record["details"];
        let (Some(through), Some(head)) = (
            details["through_seq"].as_u64(),
            details["head_hash"].as_str(),
        ) else {
            continue;
        };
        let agrees = ranges.iter().any(|r| {
            r.pruned
                .as_ref()
                .is_some_and(|p| p.last_seq == through && p.head_hash == head)
        });
        if !agrees {
            found.add(
                ProblemKind::ManifestEdited,
                label,
                format!(
                    "the segments_pruned record of seq {} in {label} says segments were pruned through seq {through} with head {head}, which no segment_pruned event of the manifest records",
                    record["seq"]
                ),
            );
        }
    }
}

/// After the walk of a plain segment still to be checked against the manifest's SHA-256:
/// false (and the problem reported) when its bytes are not the ones closed.
fn check_plain(
    p: &Planned,
    ranges: &[Range],
    w: &super::walk::Walked,
    snap: &Snapshot,
    found: &mut Found,
) -> bool {
    let (Some(want), Some(range)) = (&p.check_sha, p.range.map(|i| &ranges[i].closed)) else {
        return true;
    };
    // NOTE: a clean walk that ends on the manifest's head hash, at its size, proves the file's
    // bytes are the ones closed (each line is committed to by the next one's prev_hash, the
    // last by the head hash), so the file's own SHA-256 is only computed when that fails.
    let proved = w.problems_total == 0
        && w.last
            .is_some_and(|l| hex::encode(l.hash) == range.head_hash)
        && snap.len() == range.bytes;
    if proved {
        return true;
    }
    let hash = hex::encode(sha_of(snap));
    if hash == *want {
        return true;
    }
    found.add(
        ProblemKind::SegmentHashMismatch,
        &p.label,
        format!(
            "the segment {} has SHA-256 {hash}, not the {want} the manifest recorded: its bytes changed",
            p.label
        ),
    );
    false
}

/// What the file whose first record has `seq` `first` must link to (`seq`, hash, offset of
/// the record before): the record walked before it when it is the one just before and its
/// file was intact, else the manifest's head of the range just before (a missing, pruned or
/// changed segment); `None` at the genesis. With it, the pruned segment the chain is then
/// anchored on.
fn anchor_of(
    first: Option<u64>,
    prev: Option<(u64, Hash, u64, bool)>,
    ranges: &[Range],
    offset: u64,
) -> (Option<(u64, Hash, u64)>, Option<Anchored>) {
    match (first, prev) {
        (Some(0), _) | (None, None) => (None, None),
        (Some(f), Some((s, h, o, intact)))
            if s + 1 == f && (intact || !ranges_cover(ranges, f)) =>
        {
            (Some((s, h, o)), None)
        }
        (Some(f), prev) => match ranges.iter().find(|r| r.closed.last_seq + 1 == f) {
            Some(r) => {
                let head = chain::parse_hash_hex(r.closed.head_hash.as_bytes()).unwrap_or([0; 32]);
                let anchored = r
                    .pruned
                    .as_ref()
                    .filter(|_| prev.is_none())
                    .map(|pr| Anchored {
                        seq: pr.last_seq,
                        head_hash: pr.head_hash.clone(),
                        file: pr.file.clone(),
                    });
                (
                    Some((r.closed.last_seq, head, offset.saturating_sub(1))),
                    anchored,
                )
            }
            None => (prev.map(|(s, h, o, _)| (s, h, o)), None),
        },
        (None, Some((s, h, o, _))) => (Some((s, h, o)), None),
    }
}

/// A chain problem at a file's first record, when that record does not link to the file
/// before it, is a break at the boundary.
fn at_boundary(problem: &mut Problem, label: &str) {
    if matches!(
        problem.kind,
        ProblemKind::HashMismatch
            | ProblemKind::SeqGap
            | ProblemKind::SeqOutOfOrder
            | ProblemKind::BadGenesis
    ) {
        problem.kind = ProblemKind::SegmentBoundaryBreak;
        problem.message = format!(
            "the first record of {label} does not link to the file before it: {}",
            problem.message
        );
    }
}

/// True when the manifest has a range ending just before `first` (to anchor on).
fn ranges_cover(ranges: &[Range], first: u64) -> bool {
    ranges.iter().any(|r| r.closed.last_seq + 1 == first)
}

/// Plans the archive copy of pruned range `i` in `dir`, after checking it.
fn plan_archive(
    dir: &Path,
    i: usize,
    ranges: &[Range],
    plan: &mut Vec<Planned>,
    found: &mut Found,
) {
    let r = &ranges[i];
    let Some(pruned) = &r.pruned else { return };
    let path = dir.join(&pruned.file);
    let label = path.display().to_string();
    if std::fs::symlink_metadata(&path).is_err() {
        found.add(
            ProblemKind::SegmentMissing,
            &label,
            format!(
                "the archive copy of the pruned segment {} (seq {}..{}) is not in {}",
                pruned.file,
                pruned.first_seq,
                pruned.last_seq,
                dir.display()
            ),
        );
        return;
    }
    let compression = if pruned.file.ends_with(Compression::Zstd.extension()) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let sha = r.archived.clone().unwrap_or_else(|| match &r.compressed {
        Some((name, sha)) if *name == pruned.file => sha.clone(),
        _ => r.closed.sha256.clone(),
    });
    if let Some(p) = check_file(&path, &label, compression, &sha, i, ranges, found) {
        plan.push(p);
    }
}
