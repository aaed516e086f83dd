//! Finding a log's head: its last complete line, read backwards from the end.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use crate::chain::{self, Head};
use crate::error::{Error, Result};

/// The end of a log, read backwards from its length.
#[derive(Debug)]
pub(super) struct Tail {
    /// Length up to and including the last LF (0 if none).
    pub(super) complete_len: u64,
    /// Offset of the last complete line.
    pub(super) last_line_offset: u64,
    /// The last complete line, without LF; `None` for a log with no complete line.
    pub(super) last_line: Option<Vec<u8>>,
}

impl Tail {
    /// The head this tail ends with.
    pub(super) fn head(&self, path: &Path) -> Result<Option<Head>> {
        let Some(line) = &self.last_line else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::BadHead {
            path: path.to_path_buf(),
            offset: self.last_line_offset,
            reason: reason.to_owned(),
        };
        let fields = match chain::chain_prefix(line) {
            Some(f) => f,
            None => chain::chain_fields(line).map_err(|e| match e {
                chain::ChainError::BadUtf8 => bad("is not valid UTF-8"),
                chain::ChainError::BadJson if line.is_empty() => bad("is empty"),
                chain::ChainError::BadJson => bad("is not valid JSON"),
                chain::ChainError::NotObject => bad("is not a JSON object"),
                chain::ChainError::MissingChainFields => bad(
                    "has no chain fields (seq, prev_hash): an old unchained Nexus-MCP log cannot be extended; start a new file",
                ),
            })?,
        };
        Ok(Some(Head {
            seq: fields.seq,
            hash: chain::hash_line(line),
        }))
    }
}

/// Reads the last complete line of a file of length `len` without reading the whole file:
/// 64 KiB from the end, doubling until the line's start is found.
pub(super) fn read_tail(file: &File, len: u64, path: &Path) -> Result<Tail> {
    read_tail_from(file, len, path, 64 * 1024)
}

/// [`read_tail`], starting with a window of `window` bytes (the tests use tiny ones).
fn read_tail_from(file: &File, len: u64, path: &Path, mut window: u64) -> Result<Tail> {
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, start)
            .map_err(Error::io("cannot read the end of", path))?;
        let last_lf = memchr::memrchr(b'\n', &buf);
        let Some(last_lf) = last_lf else {
            if start == 0 {
                return Ok(Tail {
                    complete_len: 0,
                    last_line_offset: 0,
                    last_line: None,
                });
            }
            window = window.saturating_mul(2);
            continue;
        };
        match memchr::memrchr(b'\n', &buf[..last_lf]) {
            Some(prev_lf) => {
                return Ok(Tail {
                    complete_len: start + last_lf as u64 + 1,
                    last_line_offset: start + prev_lf as u64 + 1,
                    last_line: Some(buf[prev_lf + 1..last_lf].to_vec()),
                });
            }
            None if start == 0 => {
                return Ok(Tail {
                    complete_len: last_lf as u64 + 1,
                    last_line_offset: 0,
                    last_line: Some(buf[..last_lf].to_vec()),
                });
            }
            None => window = window.saturating_mul(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Chained lines of different lengths (one far longer than the others), and each one's head.
    fn chained_lines() -> (Vec<u8>, Vec<(usize, Head)>) {
        let mut bytes = Vec::new();
        let mut heads = Vec::new();
        let mut prev = chain::GENESIS_HASH;
        for (seq, pad) in [3usize, 0, 200, 1, 17].into_iter().enumerate() {
            let start = bytes.len();
            chain::write_prefix(&mut bytes, seq as u64, &prev);
            bytes.extend_from_slice(
                format!(r#""event_id":"e{seq}","pad":"{}"}}"#, "x".repeat(pad)).as_bytes(),
            );
            prev = chain::hash_line(&bytes[start..]);
            bytes.push(b'\n');
            heads.push((
                bytes.len(),
                Head {
                    seq: seq as u64,
                    hash: prev,
                },
            ));
        }
        (bytes, heads)
    }

    fn temp_file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(bytes).expect("write");
        let file = tmp.reopen().expect("reopen");
        (tmp, file)
    }

    /// Whatever the length the file was cut at, and whatever window the search starts with,
    /// the tail is the last complete line before the cut, and its head is that line's.
    #[test]
    fn the_tail_of_a_log_cut_at_every_offset_is_its_last_complete_line() {
        let (bytes, heads) = chained_lines();
        let (tmp, file) = temp_file(&bytes);
        for window in [1, 2, 7, 64 * 1024] {
            for cut in 0..=bytes.len() {
                let tail = read_tail_from(&file, cut as u64, tmp.path(), window).expect("tail");
                let complete = memchr::memrchr(b'\n', &bytes[..cut]).map_or(0, |i| i + 1);
                let at = format!("cut at {cut}, window {window}");
                assert_eq!(tail.complete_len, complete as u64, "{at}");
                let expected = heads.iter().rev().find(|(end, _)| *end <= cut);
                match expected {
                    None => {
                        assert_eq!(tail.last_line, None, "{at}");
                        assert_eq!(tail.head(tmp.path()).expect("head"), None, "{at}");
                    }
                    Some((end, head)) => {
                        let start = heads
                            .iter()
                            .rev()
                            .find(|(e, _)| e < end)
                            .map_or(0, |(e, _)| *e);
                        assert_eq!(tail.last_line_offset, start as u64, "{at}");
                        assert_eq!(
                            tail.last_line.as_deref(),
                            Some(&bytes[start..end - 1]),
                            "{at}"
                        );
                        assert_eq!(tail.head(tmp.path()).expect("head"), Some(*head), "{at}");
                    }
                }
            }
        }
    }

    /// A last line that cannot be continued is refused with the reason, at its offset; one with
    /// its chain fields out of the writer's order is still read.
    #[test]
    fn a_last_line_that_is_not_a_chained_record_is_named_with_its_offset() {
        for (last, says) in [
            (&b""[..], "is empty"),
            (b"not json", "is not valid JSON"),
            (b"[1,2]", "is not a JSON object"),
            (b"{\"tool\":\"t\"}", "has no chain fields"),
            (b"{\"seq\":\xff}", "is not valid UTF-8"),
        ] {
            let mut bytes = b"{\"seq\":0}\n".to_vec();
            bytes.extend_from_slice(last);
            bytes.push(b'\n');
            let (tmp, file) = temp_file(&bytes);
            let tail = read_tail(&file, bytes.len() as u64, tmp.path()).expect("tail");
            let err = tail.head(tmp.path()).expect_err(says).to_string();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("(at byte 10)"), "{err}");
        }
        let line = format!(r#"{{"prev_hash":"{}","seq":7}}"#, chain::GENESIS_HASH_HEX);
        let (tmp, file) = temp_file(format!("{line}\n").as_bytes());
        let tail = read_tail(&file, line.len() as u64 + 1, tmp.path()).expect("tail");
        let head = tail.head(tmp.path()).expect("head").expect("a head");
        assert_eq!(head.seq, 7);
        assert_eq!(head.hash, chain::hash_line(line.as_bytes()));
    }
}
