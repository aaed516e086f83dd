//! Checking a log against the verifier state of an earlier run, and where an incremental run
//! resumes.

use sha2::{Digest as _, Sha256};

use crate::chain;
use crate::reader::{Lines, Snapshot};
use crate::trust::state::{State, line_at, starts_line};

use super::checkpoints::locate;
use super::report::{Problem, ProblemKind};
use super::walk::Resume;

/// Compares the snapshot with a verifier state: where to resume an incremental run (after line
/// `size`), or the problem (`truncated`, `checkpoint_mismatch`) when it no longer matches.
///
/// A format 2 state is checked through its proof (the head, the window and every sampled
/// record, each at its byte offset), reading only those; a format 1 state by finding line
/// `size`, which reads every line before it.
///
/// # Errors
///
/// The problem found.
pub(crate) fn check_state(
    state: &State,
    snapshot: &Snapshot,
) -> std::result::Result<Option<Resume>, Problem> {
    let Some(hash) = state.head_hash() else {
        return Ok(None);
    };
    let Some(proof) = &state.proof else {
        let found = locate(snapshot, state.size, &hash, "the verifier state")?;
        return Ok(found.map(|(offset, line)| Resume {
            lines: state.size,
            offset: offset + line.len() + 1,
            last_offset: offset,
            seq: state.seq,
            hash,
        }));
    };
    let data = snapshot.data();
    let bytes = usize::try_from(proof.bytes).unwrap_or(usize::MAX);
    let end = bytes.min(data.len());
    let head_at = usize::try_from(proof.head_offset).unwrap_or(usize::MAX);
    let head_ok = bytes <= data.len()
        && line_at(data, head_at, bytes).is_some_and(|l| chain::hash_line(l) == hash);
    let window_at = usize::try_from(proof.window.offset).unwrap_or(usize::MAX);
    let window_ok = head_ok
        && starts_line(data, window_at)
        && hex::encode(Sha256::digest(&data[window_at..bytes])) == proof.window.sha256;
    let mut differ = proof.samples.iter().filter(|s| {
        let at = usize::try_from(s.offset).unwrap_or(usize::MAX);
        line_at(data, at, end).is_none_or(|l| hex::encode(chain::hash_line(l)) != s.sha256)
    });
    let first_differing = differ.next();
    if head_ok && window_ok && first_differing.is_none() {
        return Ok(Some(Resume {
            lines: state.size,
            offset: bytes,
            last_offset: head_at,
            seq: state.seq,
            hash,
        }));
    }
    // Something differs: say the most useful thing. This reads the whole log, as the
    // full verification that follows does anyway.
    let head_len = proof.bytes - proof.head_offset - 1;
    let head_now = Lines::new(data, 0)
        .zip(1u64..)
        .find(|((_, l), _)| l.len() as u64 == head_len && chain::hash_line(l) == hash)
        .map(|((offset, _), n)| (n, offset));
    let located = locate(snapshot, state.size, &hash, "the verifier state");
    if let (None, Err(p)) = (head_now, &located)
        && p.kind == ProblemKind::Truncated
    {
        return Err(p.clone());
    }
    if let Some(first) = first_differing {
        let also = match differ.count() {
            0 => String::new(),
            n => format!("; {n} more sampled records after it differ too"),
        };
        return Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line: first.line,
            offset: first.offset,
            seq: None,
            message: format!(
                "line {}, one of the records the verifier state sampled at random, no longer hashes as it did at byte {}: it was changed, or records before it were inserted or removed{also}",
                first.line, first.offset
            ),
            file: None,
        });
    }
    if head_ok {
        let first = proof.window.first_line;
        return Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line: first,
            offset: proof.window.offset,
            seq: None,
            message: format!(
                "lines {first}..{}, the last records the verifier state vouches for, no longer hash as they did: one of them was changed",
                state.size
            ),
            file: None,
        });
    }
    match (head_now, located) {
        (Some((line, offset)), _) => Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line,
            offset,
            seq: Some(state.seq),
            message: format!(
                "line {line} is the head the verifier state remembers as line {} at byte {}, now at byte {offset}: records before it were changed, inserted or removed",
                state.size, proof.head_offset
            ),
            file: None,
        }),
        (None, Err(p)) => Err(p),
        (None, Ok(_)) => Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line: state.size,
            offset: proof.head_offset,
            seq: Some(state.seq),
            message: format!(
                "line {} no longer hashes to the head in the verifier state",
                state.size
            ),
            file: None,
        }),
    }
}
