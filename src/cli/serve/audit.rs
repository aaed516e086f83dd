//! `GET /api/audit`: matching records a page at a time, as `query` finds them.
//!
//! `total` counts every match. Without filters it comes from the follower's running count
//! plus whatever was appended since it last looked, so the common unfiltered page reads only
//! the records it returns; with filters it takes one scan, which also collects the page.
//!
//! The cursor names the last record returned, by `seq` (which continues across rotation) and
//! by byte offset (a shortcut, and the key for old logs without `seq`). The next page starts
//! just past that record, so a log that grows meanwhile is paged through with every record
//! exactly once.

use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use crate::RecordView;
use crate::chain::chain_prefix;
use crate::filter::Matcher;
use crate::reader::Lines;
use crate::scan::for_each_match;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::App;
use super::error::{ApiError, json_body};
use super::params::Params;

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Asc,
    Desc,
}

/// Where the previous page ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    order: Order,
    seq: Option<u64>,
    offset: u64,
}

impl Cursor {
    fn encode(self) -> String {
        let order = if self.order == Order::Asc { 'a' } else { 'd' };
        let seq = self.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
        B64.encode(format!("v1.{order}.{seq}.{}", self.offset))
    }

    fn decode(text: &str) -> Result<Cursor, ApiError> {
        let bad = || {
            ApiError::BadRequest(
                "the cursor is not one this server made: pass next_cursor from the previous page unchanged".into(),
            )
        };
        let raw = B64.decode(text.trim()).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.split('.');
        let (Some("v1"), Some(order), Some(seq), Some(offset), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let order = match order {
            "a" => Order::Asc,
            "d" => Order::Desc,
            _ => return Err(bad()),
        };
        let seq = match seq {
            "-" => None,
            s => Some(digits(s).ok_or_else(bad)?),
        };
        Ok(Cursor {
            order,
            seq,
            offset: digits(offset).ok_or_else(bad)?,
        })
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

struct Page {
    limit: u64,
    offset: u64,
    order: Order,
    cursor: Option<Cursor>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &["limit", "offset", "order", "cursor"])?;
    let filter = p.filter()?;
    let limit = p.number("limit", DEFAULT_LIMIT)?.min(MAX_LIMIT);
    let offset = p.number("offset", 0)?;
    let cursor = p.get("cursor").map(Cursor::decode).transpose()?;
    let order = match (p.choice("order", &["asc", "desc"])?, cursor) {
        (Some(o), Some(c)) if (o == "asc") != (c.order == Order::Asc) => {
            return Err(ApiError::BadRequest(format!(
                "order={o} does not match the cursor, which continues a page in the other order"
            )));
        }
        (Some("asc"), _) => Order::Asc,
        (_, Some(c)) => c.order,
        _ => Order::Desc,
    };
    let page = Page {
        limit,
        offset,
        order,
        cursor,
    };
    let body = app
        .scan(move |app| {
            let stat_before = std::fs::metadata(&app.file).ok();
            let snapshot = app.snapshot()?;
            let unfiltered = filter.is_empty();
            let matcher = filter.matcher();
            let known = stat_before.and_then(|m| {
                let same = std::fs::metadata(&app.file)
                    .ok()
                    .is_some_and(|n| (n.dev(), n.ino()) == (m.dev(), m.ino()));
                same.then(|| {
                    app.live
                        .counted((m.dev(), m.ino()), snapshot.data().len() as u64)
                })
                .flatten()
            });
            render(
                snapshot.data(),
                &matcher,
                &page,
                unfiltered.then_some(known).flatten(),
            )
        })
        .await?;
    Ok(json_body(body))
}

/// The page's JSON. `known` is the follower's `(bytes, records)` count of this file, for an
/// unfiltered query.
fn render(
    data: &[u8],
    matcher: &Matcher,
    page: &Page,
    known: Option<(u64, u64)>,
) -> Result<Vec<u8>, ApiError> {
    let keep = |line: &[u8]| {
        RecordView::parse(line)
            .is_ok_and(|v| matcher.matches(&v))
            .then_some(())
    };
    let newest_first = page.order == Order::Desc;
    let region = match page.cursor {
        None => 0..data.len(),
        Some(c) => {
            let at = position(data, c)?;
            if newest_first { 0..at } else { at..data.len() }
        }
    };
    // Counting in the same pass as the page when a full pass is needed anyway.
    let count_while_paging = known.is_none() && page.cursor.is_none();
    let want = usize::try_from(page.offset.saturating_add(page.limit).saturating_add(1))
        .unwrap_or(usize::MAX);
    let (mut seen, mut found, mut total) = (0usize, Vec::new(), 0u64);
    for_each_match(
        &data[region.clone()],
        newest_first,
        None,
        &keep,
        &|_| {},
        |line, ()| -> Result<bool, ApiError> {
            total += 1;
            if seen >= page.offset as usize && found.len() <= page.limit as usize {
                found.push(line);
            }
            seen += 1;
            Ok(count_while_paging || seen < want)
        },
    )?;
    if !count_while_paging {
        total = if let Some((bytes, records)) = known {
            let rest = usize::try_from(bytes).unwrap_or(usize::MAX).min(data.len());
            records
                + Lines::new(&data[rest..], 0)
                    .filter(|(_, l)| RecordView::parse(l).is_ok())
                    .count() as u64
        } else {
            let mut n = 0u64;
            for_each_match(data, false, None, &keep, &|_| {}, |_, ()| {
                n += 1;
                Ok::<_, ApiError>(true)
            })?;
            n
        };
    }
    let more = found.len() as u64 > page.limit;
    found.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
    let next = match found.last() {
        Some(last) if more => {
            let offset = (last.as_ptr() as usize - data.as_ptr() as usize) as u64;
            let cursor = Cursor {
                order: page.order,
                seq: RecordView::parse(last).ok().and_then(|v| v.seq),
                offset,
            };
            serde_json::Value::String(cursor.encode())
        }
        _ => serde_json::Value::Null,
    };
    let mut out = Vec::with_capacity(found.iter().map(|l| l.len() + 1).sum::<usize>() + 128);
    out.extend_from_slice(b"{\"items\":[");
    for (i, line) in found.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(&mut out, line);
    }
    out.extend_from_slice(
        format!(
            "],\"total\":{total},\"limit\":{},\"offset\":{},\"next_cursor\":{next}}}",
            page.limit, page.offset
        )
        .as_bytes(),
    );
    Ok(out)
}

/// A stored line as a JSON value: the line itself when it is valid JSON (as every record the
/// writer made is), else what can be read of it.
fn item(out: &mut Vec<u8>, line: &[u8]) {
    if crate::json::is_valid(line) {
        out.extend_from_slice(line);
        return;
    }
    let value = serde_json::from_slice::<serde_json::Value>(line)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(line).into_owned()));
    out.extend_from_slice(value.to_string().as_bytes());
}

/// The byte offset a cursor continues from: the start of its record (newest first) or the
/// start of the line after it (oldest first).
fn position(data: &[u8], c: Cursor) -> Result<usize, ApiError> {
    let gone = || {
        ApiError::BadRequest(
            "the cursor no longer fits the log (it was rewritten or rotated, and its records have no seq): start again without a cursor".into(),
        )
    };
    let offset = usize::try_from(c.offset).map_err(|_| gone())?;
    let line_at = |start: usize| -> Option<&[u8]> {
        let rest = data.get(start..)?;
        let end = memchr::memchr(b'\n', rest)?;
        Some(&rest[..end])
    };
    let at_line_start = offset == 0 || data.get(offset.wrapping_sub(1)) == Some(&b'\n');
    let after = |start: usize, line: &[u8]| start + line.len() + 1;
    // The shortcut: the record is still where it was.
    if at_line_start
        && let Some(line) = line_at(offset)
        && seq_of(line) == c.seq
    {
        return Ok(if c.order == Order::Desc {
            offset
        } else {
            after(offset, line)
        });
    }
    let Some(seq) = c.seq else {
        return Err(gone());
    };
    // Else find it by seq, which grows line by line: the first line whose seq is past it
    // (oldest first) or at it (newest first).
    let target = if c.order == Order::Asc {
        seq.saturating_add(1)
    } else {
        seq
    };
    Ok(first_with_seq_at_least(data, target))
}

fn seq_of(line: &[u8]) -> Option<u64> {
    chain_prefix(line)
        .map(|f| f.seq)
        .or_else(|| RecordView::parse(line).ok().and_then(|v| v.seq))
}

/// The start of the first line whose `seq` is at least `target` (lines without one count as
/// past it), by bisection over byte offsets; `data.len()` when there is none.
fn first_with_seq_at_least(data: &[u8], target: u64) -> usize {
    let next_line_start = |pos: usize| -> usize {
        if pos == 0 {
            return 0;
        }
        memchr::memchr(b'\n', &data[pos - 1..]).map_or(data.len(), |i| pos + i)
    };
    let (mut lo, mut hi) = (0usize, data.len());
    while hi - lo > 64 << 10 {
        let mid = lo + (hi - lo) / 2;
        let start = next_line_start(mid);
        if start >= hi {
            break;
        }
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        match seq_of(&data[start..end]) {
            Some(s) if s < target => lo = start,
            _ => hi = start,
        }
    }
    for (offset, line) in Lines::new(&data[lo..], lo as u64) {
        if seq_of(line).is_none_or(|s| s >= target) {
            return offset as usize;
        }
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        let c = Cursor {
            order: Order::Asc,
            seq: Some(41),
            offset: 9000,
        };
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        let legacy = Cursor {
            order: Order::Desc,
            seq: None,
            offset: 0,
        };
        assert_eq!(Cursor::decode(&legacy.encode()).ok(), Some(legacy));
        for bad in [
            "",
            "abc",
            "!!!",
            &B64.encode("v1.x.1.2"),
            &B64.encode("v1.a.1"),
            &B64.encode("v1.a.+1.2"),
            &B64.encode("v2.a.1.2"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bisection_finds_the_first_line_at_or_past_a_seq() {
        let mut data = Vec::new();
        for seq in 0..50_000u64 {
            data.extend_from_slice(format!("{{\"seq\":{seq},\"prev_hash\":\"x\"}}\n").as_bytes());
        }
        for target in [0u64, 1, 777, 25_000, 49_999] {
            let at = first_with_seq_at_least(&data, target);
            assert_eq!(
                seq_of(Lines::new(&data[at..], 0).next().expect("line").1),
                Some(target)
            );
        }
        assert_eq!(first_with_seq_at_least(&data, 50_000), data.len());
    }
}
