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
    let mut window: u64 = 64 * 1024;
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
