//! The walk over many windows, end to end through the library.

use super::*;
use crate::{Durability, Event, LogOptions};

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

fn problems(path: &Path, threads: usize) -> Vec<(ProblemKind, u64)> {
    let report = verify(
        path,
        &VerifyOptions {
            max_problems: 100,
            threads: Some(threads),
        },
    )
    .expect("verify");
    report.problems.iter().map(|p| (p.kind, p.line)).collect()
}

/// With 4 KiB chunks the log spans hundreds of windows: links across window and chunk
/// borders are checked, and problems on either side of a border are each found once.
#[test]
fn problems_are_found_across_many_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let mut lines = write_log(&path, 3000);
    for threads in [1, 2, 3] {
        assert_eq!(problems(&path, threads), vec![], "clean, {threads} threads");
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
        assert_eq!(
            problems(&path, threads),
            vec![
                (ProblemKind::HashMismatch, 700),
                (ProblemKind::SeqGap, 1800),
                (ProblemKind::SeqOutOfOrder, 2501),
            ],
            "{threads} threads"
        );
    }
}
