//! The walk over many windows, and the [`Verifier`] with a state, checkpoints and seals, end to
//! end through the library.

use super::*;
use crate::record::Event;
use crate::trust::state::State;
use crate::writer::{Durability, LogOptions};

fn write_log(path: &Path, n: u64) -> Vec<Vec<u8>> {
    let log = LogOptions::new(path)
        .durability(Durability::None)
        .open()
        .expect("open");
    log.append_batch(
        (0..n)
            .map(|i| {
                Event::new("mcp_call")
                    .tool("ad_get_user")
                    .correlation(format!("req-{i}"))
            })
            .collect(),
    )
    .expect("append");
    log.close().expect("close");
    std::fs::read(path)
        .expect("read")
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn problems(path: &Path, threads: usize, chunk_size: usize) -> Vec<(ProblemKind, u64)> {
    let report = Verifier::new()
        .threads(threads)
        .chunk_size(chunk_size)
        .run(&Snapshot::open(path).expect("open"))
        .expect("verify");
    report.problems.iter().map(|p| (p.kind, p.line)).collect()
}

/// The chunk sizes tried: one line per chunk, 4 KiB (the log spans hundreds of windows), and
/// the default (one window).
const CHUNKS: [usize; 3] = [1, 4 << 10, DEFAULT_CHUNK_SIZE];

/// With small chunks the log spans many windows: links across window and chunk borders are
/// checked, and problems on either side of a border are each found once.
#[test]
fn problems_are_found_across_many_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let mut lines = write_log(&path, 3000);
    for threads in [1, 2, 3] {
        for chunk in CHUNKS {
            assert_eq!(
                problems(&path, threads, chunk),
                vec![],
                "clean, {threads} threads, {chunk}-byte chunks"
            );
        }
    }
    // Line 700: a changed byte in the content (not in prev_hash, where a flipped bit can
    // leave a non-hex digit and make the line unchained instead).
    let at = lines[699].len() - 10;
    lines[699][at] ^= 1;
    lines.remove(1799); // line 1800: the next record is one seq ahead
    let dup = lines[2499].clone();
    lines.insert(2500, dup); // line 2501 repeats line 2500
    std::fs::write(&path, lines.concat()).expect("write");
    for threads in [1, 2, 3] {
        for chunk in CHUNKS {
            assert_eq!(
                problems(&path, threads, chunk),
                vec![
                    (ProblemKind::HashMismatch, 700),
                    (ProblemKind::SeqGap, 1800),
                    (ProblemKind::SeqOutOfOrder, 2501),
                ],
                "{threads} threads, {chunk}-byte chunks"
            );
        }
    }
}

// --- the Verifier: state, checkpoints and seals in one call ---------------------------------

fn kinds(report: &Report) -> Vec<(ProblemKind, u64)> {
    report.problems.iter().map(|p| (p.kind, p.line)).collect()
}

fn size_of_state(path: &Path) -> Option<u64> {
    State::load(path).expect("state").map(|s| s.size)
}

#[test]
fn a_verifier_remembers_the_state_and_resumes_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let state = dir.path().join("nexus.state");
    write_log(&log, 50);
    let verifier = Verifier::new().state(&state).expect("state");
    assert_eq!(verifier.previous_state(), None, "no state file yet");
    let report = verifier
        .run(&Snapshot::open(&log).expect("open"))
        .expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 50);
    assert_eq!(size_of_state(&state), Some(50));

    write_log(&log, 10);
    let verifier = Verifier::new()
        .state(&state)
        .expect("state")
        .incremental(true);
    assert_eq!(verifier.previous_state().map(|s| s.size), Some(50));
    let report = verifier
        .run(&Snapshot::open(&log).expect("open"))
        .expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(
        report.records, 10,
        "only the records after the state's head are walked"
    );
    assert_eq!(size_of_state(&state), Some(60));
}

#[test]
fn a_verifier_reports_a_log_cut_below_its_state_and_keeps_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let state = dir.path().join("nexus.state");
    let lines = write_log(&log, 20);
    let verifier = Verifier::new().state(&state).expect("state");
    assert!(
        verifier
            .run(&Snapshot::open(&log).expect("open"))
            .expect("verify")
            .ok
    );

    std::fs::write(&log, lines[..15].concat()).expect("cut");
    for incremental in [false, true] {
        let report = Verifier::new()
            .state(&state)
            .expect("state")
            .incremental(incremental)
            .run(&Snapshot::open(&log).expect("open"))
            .expect("verify");
        assert_eq!(kinds(&report), vec![(ProblemKind::Truncated, 16)]);
        assert_eq!(
            size_of_state(&state),
            Some(20),
            "the state is not overwritten"
        );
    }
}

#[test]
fn an_incremental_run_from_a_state_without_a_proof_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let state = dir.path().join("nexus.state");
    let lines = write_log(&log, 5);
    // Format 1: size and head only.
    let head = hex::encode(crate::chain::hash_line(lines[4].trim_ascii_end()));
    std::fs::write(
        &state,
        format!(
            r#"{{"size":5,"head":"{head}","seq":4,"verified_at":"2026-01-01T00:00:00.000000Z"}}"#
        ),
    )
    .expect("write");
    let snapshot = Snapshot::open(&log).expect("open");
    let refused = Verifier::new()
        .state(&state)
        .expect("state")
        .incremental(true)
        .run(&snapshot);
    assert!(
        matches!(&refused, Err(Error::InvalidConfig(m)) if m.contains("format 1")),
        "{refused:?}"
    );
    // A full run checks the head and writes the new format.
    let report = Verifier::new()
        .state(&state)
        .expect("state")
        .run(&snapshot)
        .expect("verify");
    assert!(report.ok, "{report:?}");
    let now = State::load(&state).expect("load").expect("state");
    assert!(now.proof.is_some(), "format 2");
}

#[test]
fn a_verifier_checks_checkpoints_and_seals_in_the_same_report() {
    use crate::trust::checkpoint::Checkpoint;
    use crate::trust::note::SignerKey;
    use crate::writer::SealOptions;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (seal_key, seal_verify) =
        crate::chain::seal_key::init(&dir.path().join("seal")).expect("seal");
    let mut sealing = SealOptions::new(&seal_key);
    sealing.every = 10;
    let writer = LogOptions::new(&log)
        .durability(Durability::None)
        .seal(sealing)
        .open()
        .expect("open");
    writer
        .append_batch((0..35).map(|_| Event::new("mcp_call")).collect())
        .expect("append");
    writer.close().expect("close");
    let snapshot = Snapshot::open(&log).expect("open");
    let signer = SignerKey::generate("test").expect("key");
    let note = Checkpoint::of(&snapshot, "test")
        .expect("checkpoint")
        .sign(&signer)
        .expect("sign");

    let with_all = Verifier::new()
        .checkpoint("cp", note.clone())
        .key(signer.verifier())
        .seal_key(KeyFile::load(&seal_verify).expect("seal key"));
    let report = with_all.run(&snapshot).expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checkpoints_checked, 1);
    assert!(report.sealed_through_seq.is_some());
    assert_eq!(report.unsealed_records, Some(5));

    // Without the signer's key the checkpoint cannot be trusted; without a seal key the
    // seals are not looked at.
    let report = Verifier::new()
        .checkpoint("cp", note)
        .run(&snapshot)
        .expect("verify");
    assert_eq!(kinds(&report), vec![(ProblemKind::UnknownKey, 0)]);
    assert_eq!(report.checkpoints_checked, 0);
    assert_eq!(report.unsealed_records, None);
}
