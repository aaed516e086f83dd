//! `tail --follow` through the binary while the file changes under it: half-written lines,
//! torn tails quarantined by the next writer, a file cut back, a last line rewritten, a file
//! written again from the start, rotation. In every case what the follower prints is exactly
//! the records that are in the file, each once, in order.

mod common;

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{cli, lines, write_lines, write_log};

const BIN: &str = env!("CARGO_BIN_EXE_nexus-audit");

/// Long enough for several polls of the follower (every 100 ms).
const SETTLE: Duration = Duration::from_millis(600);

/// A running `tail --follow` whose stdout and stderr lines arrive through channels.
struct Follow {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `tail -n N --follow --output jsonl` on `log`.
fn follow(log: &Path, n: usize) -> Follow {
    let mut child = std::process::Command::new(BIN)
        .env_remove("NEXUS_AUDIT_FILE")
        .env_remove("NO_COLOR")
        .arg("--file")
        .arg(log)
        .args([
            "tail",
            "-n",
            &n.to_string(),
            "--follow",
            "--output",
            "jsonl",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail --follow");
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    Follow { child, out, err }
}

impl Follow {
    /// The next `n` lines printed (each within 15 s).
    fn receive(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.out
                    .recv_timeout(Duration::from_secs(15))
                    .unwrap_or_else(|_| panic!("tail --follow printed {i} of {n} lines"))
            })
            .collect()
    }

    /// Asserts nothing more is printed for a while.
    fn nothing_more(&self, what: &str) {
        if let Ok(line) = self.out.recv_timeout(SETTLE) {
            panic!("{what}: tail --follow printed {line:?}");
        }
    }

    /// Everything printed on stderr so far.
    fn stderr(&self) -> Vec<String> {
        self.err.try_iter().collect()
    }

    /// Waits until stderr has a line containing `needle` (within 15 s), returns it.
    fn said(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("tail --follow never said {needle:?} on stderr; it said {seen:?}");
    }
}

fn text(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).expect("UTF-8"))
        .collect()
}

fn append_raw(log: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log for a raw write");
    f.write_all(bytes).expect("raw write");
}

/// Appends `tools` through the binary (one record each).
fn append(log: &Path, tools: &[&str]) {
    let input: String = tools
        .iter()
        .map(|t| format!("{{\"action\":\"mcp_call\",\"tool\":\"{t}\"}}\n"))
        .collect();
    let out = cli(log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(input)
        .output()
        .expect("append");
    assert!(
        out.status.success(),
        "append failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Record lines from a log of its own (same shape, other contents), for raw writes.
fn other_records(dir: &Path, name: &str, n: u64) -> Vec<Vec<u8>> {
    lines(&write_log(dir, name, n))
}

#[test]
fn a_half_written_line_is_printed_once_when_its_lf_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = other_records(dir.path(), "source.jsonl", 8);
    let log = dir.path().join("audit.jsonl");
    write_lines(&log, &source[..3]);
    let f = follow(&log, 3);
    assert_eq!(f.receive(3), text(&source[..3]));

    // Cut each record at another place: right after its first byte, in the middle, just
    // before its LF; and one written a byte at a time.
    for (i, cut) in [(3, 1), (4, source[4].len() / 2), (5, source[5].len())] {
        append_raw(&log, &source[i][..cut]);
        f.nothing_more(&format!("only {cut} bytes of line {} are there", i + 1));
        let mut rest = source[i][cut..].to_vec();
        rest.push(b'\n');
        append_raw(&log, &rest);
        assert_eq!(f.receive(1), text(&source[i..=i]));
    }
    let mut line = source[6].clone();
    line.push(b'\n');
    for b in &line {
        append_raw(&log, std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(f.receive(1), text(&source[6..7]));
    f.nothing_more("every line was printed");
    assert_eq!(lines(&log), source[..7].to_vec());
    assert_eq!(f.stderr(), Vec::<String>::new());
}

#[test]
fn a_torn_tail_quarantined_by_the_next_writer_is_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 4);
    let junk = other_records(dir.path(), "junk.jsonl", 3);
    let f = follow(&log, 10);
    assert_eq!(f.receive(4), text(&lines(&log)));
    let mut printed = 4;
    // A few bytes, half a record, and more bytes than the records written after it (so the
    // file is shorter after the recovery than it was with the torn tail).
    let long: Vec<u8> = [junk[0].clone(), junk[1].clone(), junk[2].clone()].concat();
    for torn in [
        &junk[0][..7],
        &junk[1][..junk[1].len() / 2],
        &long[..long.len() - 3],
    ] {
        append_raw(&log, torn);
        f.nothing_more("a torn tail is not a record");
        append(&log, &["ad_get_user"]);
        let now = lines(&log);
        assert_eq!(now.len(), printed + 2, "log_recovered and the record");
        assert!(
            String::from_utf8_lossy(&now[printed]).contains("\"log_recovered\""),
            "the writer quarantined the torn bytes"
        );
        assert_eq!(f.receive(2), text(&now[printed..]));
        printed += 2;
        f.nothing_more("each record once");
    }
    let quarantined = std::fs::read_dir(dir.path())
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".torn-"))
        })
        .count();
    assert_eq!(quarantined, 3, "three torn tails were quarantined");
    assert_eq!(f.stderr(), Vec::<String>::new());
}

#[test]
fn a_file_cut_back_under_the_follower_prints_only_the_records_written_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 10);
    let f = follow(&log, 2);
    let before = lines(&log);
    assert_eq!(f.receive(2), text(&before[8..]));

    // Cut back to 6 records: nothing to print yet, and the change is said on stderr.
    write_lines(&log, &before[..6]);
    f.said("changed under tail --follow");
    f.nothing_more("the first 6 records were printed or skipped before");
    // The writer continues the chain from record 6: only the new records are printed.
    append(&log, &["helix_create_ticket", "fedex_track_shipment"]);
    let now = lines(&log);
    assert_eq!(now.len(), 8);
    assert_eq!(f.receive(2), text(&now[6..]));
    f.said("4 record(s) read before are no longer in");
    f.nothing_more("each record once");

    // Cut back to nothing, then a new log at the same path (copytruncate): all of it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    f.said("changed under tail --follow");
    append(
        &log,
        &["workday_get_worker", "ad_get_user", "entra_list_groups"],
    );
    let fresh = lines(&log);
    assert_eq!(fresh.len(), 3);
    assert_eq!(f.receive(3), text(&fresh));
    f.nothing_more("each record once");
}

#[test]
fn a_file_written_again_with_the_same_records_prints_only_the_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 12);
    let f = follow(&log, 12);
    let before = lines(&log);
    assert_eq!(f.receive(12), text(&before));
    for round in 0..5 {
        // Truncated and written again (as an editor or `cp` would): the same records, then
        // two new ones; the follower may see it empty, half written, or whole.
        append(&log, &["ad_get_user", "helix_create_ticket"]);
        let grown = lines(&log);
        let mut f_out = f.receive(2);
        assert_eq!(f_out, text(&grown[grown.len() - 2..]), "round {round}");
        let mut again = grown.clone();
        let extra = other_records(dir.path(), &format!("extra-{round}.jsonl"), 2);
        again.extend(extra.iter().cloned());
        write_lines(&log, &again);
        f_out = f.receive(2);
        assert_eq!(f_out, text(&extra), "round {round}: only the new lines");
        // The extra lines do not continue the chain; drop them for the next round.
        write_lines(&log, &grown);
        f.nothing_more("records that come back unchanged are not printed again");
    }
}

#[test]
fn the_last_line_rewritten_is_printed_as_it_now_is_and_the_old_one_said_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 6);
    let other = other_records(dir.path(), "other.jsonl", 6);
    let f = follow(&log, 3);
    let mut now = lines(&log);
    assert_eq!(f.receive(3), text(&now[3..]));

    // Same length, other bytes (a digit of the latency changed), then another length.
    let last = now.len() - 1;
    let pos = now[last]
        .windows(13)
        .position(|w| w == b"\"latency_ms\":")
        .expect("latency field")
        + 13;
    now[last][pos] = if now[last][pos] == b'9' { b'1' } else { b'9' };
    write_lines(&log, &now);
    assert_eq!(f.receive(1), text(&now[last..]));
    f.said("1 record(s) read before are no longer in");
    f.nothing_more("the rewritten line once");

    now[last] = other[last].clone();
    write_lines(&log, &now);
    assert_eq!(f.receive(1), text(&now[last..]));
    f.nothing_more("the rewritten line once");

    // Records appended after it are printed as usual.
    append(&log, &["lansweeper_find_asset"]);
    assert_eq!(f.receive(1), text(&lines(&log)[6..]));
    f.nothing_more("each record once");
}

#[test]
fn rotation_prints_the_end_of_the_old_file_then_the_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = other_records(dir.path(), "source.jsonl", 3);
    let log = dir.path().join("audit.jsonl");
    write_lines(&log, &source[..2]);
    let f = follow(&log, 5);
    assert_eq!(f.receive(2), text(&source[..2]));

    // Half a line when the file is moved away; its writer finishes it in the moved file.
    append_raw(&log, &source[2][..40]);
    f.nothing_more("half a line");
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let mut rest = source[2][40..].to_vec();
    rest.push(b'\n');
    append_raw(&rotated, &rest);
    assert_eq!(f.receive(1), text(&source[2..3]));

    append(&log, &["workday_get_worker", "intune_list_devices"]);
    assert_eq!(f.receive(2), text(&lines(&log)));
    f.said("was replaced by a new file");
    f.nothing_more("each record once");
}

/// Writers append through the binary while torn tails are written under them and quarantined:
/// at the end, the follower printed exactly the log's records, each once, in order.
#[test]
fn under_appends_and_torn_tails_the_follower_prints_exactly_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 1);
    let junk = other_records(dir.path(), "junk.jsonl", 4);
    let f = follow(&log, 1);
    for round in 0..12usize {
        let tools: Vec<&str> =
            ["ad_get_user", "helix_create_ticket", "fedex_track_shipment"][..=(round % 3)].to_vec();
        append(&log, &tools);
        if round % 3 == 1 {
            // Torn bytes the follower reads (several polls) before a writer quarantines them.
            let j = &junk[round % junk.len()];
            append_raw(&log, &j[..=((round * 37) % j.len())]);
            std::thread::sleep(Duration::from_millis(350));
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 53) % 170));
    }
    append(&log, &["entra_list_groups"]);
    let all = lines(&log);
    assert_eq!(f.receive(all.len()), text(&all));
    f.nothing_more("each record once");
    assert_eq!(f.stderr(), Vec::<String>::new());
}
