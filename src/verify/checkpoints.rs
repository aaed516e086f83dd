//! Checking a log against signed checkpoints (SPEC §8): each note's signature against the
//! trusted keys, then its size and head against the log.

use crate::chain::{self, Hash};
use crate::reader::Snapshot;
use crate::trust::checkpoint::Checkpoint;
use crate::trust::note::{self, NoteError, VerifierKey};

use super::report::{Problem, ProblemKind, Report};

/// Line `n` (1-based) of `data` with the byte offset where it starts; when the data has fewer
/// complete lines, how many it has.
///
/// # Errors
///
/// The number of complete lines, when it is below `n` (or `n` is 0).
pub(crate) fn nth_line(data: &[u8], n: u64) -> std::result::Result<(usize, &[u8]), u64> {
    let mut start = 0usize;
    let mut seen = 0u64;
    for end in memchr::memchr_iter(b'\n', data) {
        seen += 1;
        if seen == n {
            return Ok((start, &data[start..end]));
        }
        start = end + 1;
    }
    Err(seen)
}

/// Finds line `size` and checks that it hashes to `head`, in one pass over the data.
pub(crate) fn locate<'a>(
    snapshot: &'a Snapshot,
    size: u64,
    head: &Hash,
    source: &str,
) -> std::result::Result<Option<(usize, &'a [u8])>, Problem> {
    if size == 0 {
        return Ok(None);
    }
    let data = snapshot.data();
    match nth_line(data, size) {
        Err(lines) => Err(Problem {
            kind: ProblemKind::Truncated,
            line: lines + 1,
            offset: data.len() as u64,
            seq: None,
            message: format!(
                "{source} says the log had {size} records, but it has only {lines}: records were removed from its end"
            ),
            file: None,
        }),
        Ok((offset, line)) if chain::hash_line(line) != *head => Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line: size,
            offset: offset as u64,
            seq: chain::chain_prefix(line).map(|f| f.seq),
            message: format!(
                "line {size} no longer hashes to the head in {source}: the log was rewritten up to there"
            ),
            file: None,
        }),
        Ok(found) => Ok(Some(found)),
    }
}

/// Compares a log with a remembered `(size, head)`: `truncated` when it has fewer lines,
/// `checkpoint_mismatch` when its line `size` hashes to something else.
#[must_use]
pub(crate) fn compare(
    snapshot: &Snapshot,
    size: u64,
    head: &Hash,
    source: &str,
) -> Option<Problem> {
    locate(snapshot, size, head, source).err()
}

/// Checks signed checkpoints against `keys` and then against the log, adding each problem to
/// `report` and counting the checkpoints checked.
pub(crate) fn check_checkpoints(
    snapshot: &Snapshot,
    checkpoints: &[(String, Vec<u8>)],
    keys: &[VerifierKey],
    report: &mut Report,
    max_problems: usize,
) {
    for (name, msg) in checkpoints {
        let problem = |kind, message: String| Problem {
            kind,
            line: 0,
            offset: 0,
            seq: None,
            message,
            file: None,
        };
        let note = match note::open(msg, keys) {
            Ok(note) => note,
            Err(NoteError::UnknownKey(who)) => {
                report.add_problem(
                    problem(
                        ProblemKind::UnknownKey,
                        format!(
                            "checkpoint {name} is signed by {who}, not by a key given with --pub"
                        ),
                    ),
                    max_problems,
                );
                continue;
            }
            Err(e) => {
                report.add_problem(
                    problem(
                        ProblemKind::BadSignature,
                        format!("checkpoint {name} cannot be trusted: {e}"),
                    ),
                    max_problems,
                );
                continue;
            }
        };
        match Checkpoint::parse(&note.text) {
            Ok(cp) => {
                report.checkpoints_checked += 1;
                if let Some(p) = compare(snapshot, cp.size, &cp.head, &format!("checkpoint {name}"))
                {
                    report.add_problem(p, max_problems);
                }
            }
            Err(why) => report.add_problem(
                problem(
                    ProblemKind::BadSignature,
                    format!("checkpoint {name} is signed but is not a checkpoint: {why}"),
                ),
                max_problems,
            ),
        }
    }
}
