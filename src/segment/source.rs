//! The bytes of one part of a rotated log: a plain segment or the live file is mapped like any
//! log; a zstd segment is decompressed as a stream into memory, one segment at a time, and
//! never written to disk.

use std::io::Read as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::reader::Snapshot;

use super::Compression;

/// The most bytes one compressed segment may decompress to (a bound against a decompression
/// bomb; a segment is at most what `--max-size` let the live file grow to).
pub const MAX_DECOMPRESSED: u64 = 1 << 40;

/// Opens the segment or live file at `path`, stored as `compression`, as a snapshot of its
/// decompressed bytes.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read, or its zstd stream is corrupt or larger than
/// [`MAX_DECOMPRESSED`].
pub fn open_part(path: &Path, compression: Compression) -> Result<Snapshot> {
    match compression {
        Compression::None => Snapshot::open(path),
        Compression::Zstd => Ok(Snapshot::from_bytes(path, decompress(path)?)),
    }
}

/// The decompressed bytes of the zstd file at `path`, streamed into memory.
///
/// # Errors
///
/// As [`open_part`].
pub fn decompress(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(Error::io("cannot open", path))?;
    let hint = file.metadata().map_or(0, |m| m.len());
    let decoder =
        zstd::stream::read::Decoder::new(file).map_err(Error::io("cannot decompress", path))?;
    let mut out = Vec::with_capacity(usize::try_from(hint.saturating_mul(4)).unwrap_or(0));
    let read = decoder
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(Error::io("cannot decompress", path))?;
    if read as u64 > MAX_DECOMPRESSED {
        return Err(Error::io("cannot decompress", path)(std::io::Error::other(
            "it decompresses to more than 1 TiB",
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zstd_segment_reads_as_its_plain_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.jsonl.zst");
        let plain = b"{\"seq\":0}\n{\"seq\":1}\n".repeat(100);
        std::fs::write(&path, zstd::encode_all(&plain[..], 3).expect("encode")).expect("write");
        let snap = open_part(&path, Compression::Zstd).expect("open");
        assert_eq!(snap.data(), &plain[..]);
        std::fs::write(&path, b"not zstd").expect("write");
        assert!(open_part(&path, Compression::Zstd).is_err());
    }
}
