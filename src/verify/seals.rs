//! Checking the seals of a log (SPEC §8) with the keys derived from the auditor's initial key.

use crate::chain::seal_key::{KeyFile, mac, next_key};
use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::reader::Snapshot;
use crate::record::RecordView;

use super::report::{Problem, ProblemKind, Report};

/// What the seals of a log say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SealReport {
    /// Problems found, in file order.
    pub problems: Vec<Problem>,
    /// `seq` of the last seal that verified.
    pub sealed_through_seq: Option<u64>,
    /// Records after the last good seal.
    pub unsealed_records: u64,
}

/// Checks every seal of the log against the keys derived from the initial key file.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a bad key file or thread pool.
pub(crate) fn verify_seals(
    snapshot: &Snapshot,
    initial: &KeyFile,
    threads: Option<usize>,
) -> Result<SealReport> {
    let mut key = initial.key_bytes().ok_or_else(|| {
        Error::InvalidConfig("the seal verification key file is not valid".into())
    })?;
    let mut epoch = initial.epoch;
    let data = snapshot.data();
    let mut report = SealReport::default();
    // The seal lines, found in parallel with the same scanner as `stats`.
    let mut seals: Vec<usize> = Vec::new();
    let is_seal = |line: &[u8]| {
        RecordView::parse(line)
            .is_ok_and(|v| v.action.as_deref() == Some("seal"))
            .then_some(())
    };
    let pool = crate::parallel::build_pool(threads)?;
    crate::parallel::for_each_match(&pool, &[data], false, &is_seal, &|_| {}, |line, ()| {
        seals.push(line.as_ptr() as usize - data.as_ptr() as usize);
        Ok::<_, Error>(true)
    })?;
    let mut line_no = 0u64;
    let mut counted_to = 0usize;
    let mut good_end: Option<usize> = None;
    for offset in seals {
        line_no += memchr::memchr_iter(b'\n', &data[counted_to..offset]).count() as u64 + 1;
        counted_to = offset;
        let rest = &data[offset..];
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        let problem = |kind, message: String| Problem {
            kind,
            line: line_no,
            offset: offset as u64,
            seq: chain::chain_prefix(line).map(|f| f.seq),
            message,
            file: None,
        };
        let Some((seq, prev, seal_epoch, tag)) = seal_fields(line) else {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!("line {line_no} is a seal record without a readable epoch and MAC"),
            ));
            continue;
        };
        if seal_epoch < epoch {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!(
                    "line {line_no} is a seal of epoch {seal_epoch}, but epoch {epoch} was expected: an old seal was copied here"
                ),
            ));
            continue;
        }
        if seal_epoch > epoch {
            report.problems.push(problem(
                ProblemKind::SealEpochGap,
                format!(
                    "line {line_no} is a seal of epoch {seal_epoch}, but epoch {epoch} was expected: seals of epochs {epoch}..{} are missing",
                    seal_epoch - 1
                ),
            ));
            while epoch < seal_epoch {
                key = next_key(&key);
                epoch += 1;
            }
        }
        if mac(&key, epoch, seq, &prev) == tag {
            report.sealed_through_seq = Some(seq);
            good_end = Some(offset + line.len() + 1);
        } else {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!(
                    "the seal at line {line_no} (epoch {epoch}) does not verify: the records before it were changed, or the seal was forged"
                ),
            ));
        }
        key = next_key(&key);
        epoch += 1;
    }
    let after = &data[good_end.unwrap_or(0).min(data.len())..];
    report.unsealed_records = memchr::memchr_iter(b'\n', after).count() as u64;
    Ok(report)
}

/// `seq`, `prev_hash`, `details.epoch` and `details.mac` of a seal line.
fn seal_fields(line: &[u8]) -> Option<(u64, Hash, u64, Hash)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq")?.as_u64()?;
    let prev = chain::parse_hash_hex(v.get("prev_hash")?.as_str()?.as_bytes())?;
    let d = v.get("details")?;
    let epoch = d.get("epoch")?.as_u64()?;
    let tag = chain::parse_hash_hex(d.get("mac")?.as_str()?.as_bytes())?;
    Some((seq, prev, epoch, tag))
}

/// Adds the seal findings to a verify report.
pub(crate) fn add_to_report(seals: SealReport, report: &mut Report, max_problems: usize) {
    for p in seals.problems {
        report.add_problem(p, max_problems);
    }
    report.sealed_through_seq = seals.sealed_through_seq;
    report.unsealed_records = Some(seals.unsealed_records);
}
