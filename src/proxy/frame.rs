//! Where the messages are in a stream of lines, read both ways a server may read it.
//!
//! Most MCP transports read one message per line (TypeScript, Python, Rust). Go's reads a
//! stream of JSON values (`json.Decoder`), where a value may start on one line and end on a
//! later one. Every line is relayed as it is, so the proxy reads each line alone *and* keeps
//! the unfinished tail of the stream, and records a message found either way. A message that
//! both readings find (the same bytes) counts once.

use std::collections::HashSet;
use std::ops::Range;

use super::lenient::{Quirk, Quirks, Rest, Resume, Scan, scan_on};

/// The most bytes kept of a value that has not ended yet: a stream that stays inside one value
/// longer than this is given up on (and noted). The MCP TypeScript transport gives up at
/// 10 MiB.
pub(crate) const MAX_CARRY: usize = 32 << 20;

/// A text to read and the values in it that are new.
pub(crate) struct Part<'a> {
    pub text: &'a [u8],
    pub scan: Scan,
    /// Values to read, with the quirks of how they were found.
    pub values: Vec<(Range<usize>, Quirks)>,
    /// Spans (of objects inside the values) already read in an earlier part: skipped.
    pub seen: HashSet<Range<usize>>,
}

/// What one line holds.
pub(crate) struct Frame<'a> {
    pub parts: Vec<Part<'a>>,
    /// Bytes of a carried value given up on (not JSON after all, or longer than
    /// [`MAX_CARRY`]).
    pub dropped: usize,
}

/// How a line reads on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Whitespace only.
    Blank,
    /// Exactly one complete value.
    One,
    /// More than one value.
    Several,
    /// It ends inside a value.
    Incomplete,
    /// It is not JSON.
    Invalid,
}

/// The shape of a line from its own scan.
pub(crate) fn shape(alone: &Scan) -> Shape {
    match (alone.values.len(), alone.rest) {
        (_, Rest::Invalid(_)) => Shape::Invalid,
        (_, Rest::Incomplete(_)) => Shape::Incomplete,
        (0, Rest::Done) => Shape::Blank,
        (1, Rest::Done) => Shape::One,
        _ => Shape::Several,
    }
}

/// The stream state of one direction.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// The unfinished value at the end of the stream, from its first byte, then (while a
    /// frame is out) the line read after it.
    buf: Vec<u8>,
    /// The stream offset of `buf[0]`.
    buf_at: u64,
    /// Bytes at the start of `buf` that the next line no longer needs (values that ended).
    spent: usize,
    /// Where the scan of `buf` goes on.
    resume: Option<Resume>,
    /// A value to carry instead of `buf` from the next line on (its bytes, stream offset and
    /// scan state): the stream broke, and a new value started at the end of the line.
    restart: Option<(Vec<u8>, u64, Option<Resume>)>,
    /// The stream offset of the next line.
    at: u64,
    /// Stream spans of the values read line by line since the carried value began.
    seen: HashSet<(u64, u64)>,
}

impl Framer {
    /// Reads one line (with its LF), given its own scan.
    ///
    /// Each byte of a value carried over several lines is scanned once (the scan goes on
    /// where it stopped), so a value cut into many short lines costs no more than one line.
    pub(crate) fn feed<'a>(&'a mut self, line: &'a [u8], mut alone: Scan) -> Frame<'a> {
        if let Some((bytes, at, resume)) = self.restart.take() {
            self.buf = bytes;
            self.buf_at = at;
            self.resume = resume;
            self.spent = 0;
        } else if self.spent > 0 {
            self.buf.drain(..self.spent.min(self.buf.len()));
            self.buf_at += self.spent as u64;
            self.spent = 0;
        }
        let line_at = self.at;
        self.at += line.len() as u64;
        let abs = |r: &Range<usize>| (line_at + r.start as u64, line_at + r.end as u64);
        // A line with a value and something after it: a stream reader acts on the value.
        let framing =
            if alone.values.len() > 1 || (alone.values.len() == 1 && alone.rest != Rest::Done) {
                Quirks::default().with(Quirk::SeveralValues)
            } else {
                Quirks::default()
            };
        let values: Vec<_> = alone.values.iter().map(|v| (v.clone(), framing)).collect();
        let alone_tail = match alone.rest {
            Rest::Incomplete(from) => Some(from),
            _ => None,
        };

        if self.buf.is_empty() {
            // The stream reads this line as the line alone does.
            if let Some(from) = alone_tail {
                self.buf.extend_from_slice(&line[from..]);
                self.buf_at = line_at + from as u64;
                self.resume = alone.take_resume();
                self.seen = HashSet::new();
            }
            let dropped = self.give_up_if_too_long();
            let part = Part {
                text: line,
                scan: alone,
                values,
                seen: HashSet::new(),
            };
            return Frame {
                parts: vec![part],
                dropped,
            };
        }

        // The stream is inside a value: read the line alone, and the stream on.
        let offset = self.buf.len();
        self.buf.extend_from_slice(line);
        let mut stream = scan_on(&self.buf, self.resume.take());
        self.seen.extend(alone.values.iter().map(abs));
        let buf_at = self.buf_at;
        // NOTE: built only when a value ended (once per carried value), so that a client
        // sending many lines inside one open value costs linear time.
        let seen: HashSet<Range<usize>> = if stream.values.is_empty() {
            HashSet::new()
        } else {
            self.seen
                .iter()
                .filter_map(|&(s, e)| {
                    let s = usize::try_from(s.checked_sub(buf_at)?).ok()?;
                    let e = usize::try_from(e.checked_sub(buf_at)?).ok()?;
                    Some(s..e)
                })
                .collect()
        };
        let split = Quirks::default().with(Quirk::SplitAcrossLines);
        let stream_values: Vec<_> = stream
            .values
            .iter()
            .filter(|v| !seen.contains(v))
            .map(|v| {
                let q = if v.start < offset {
                    split
                } else {
                    Quirks::default()
                };
                (v.clone(), q)
            })
            .collect();
        let mut dropped = 0;
        match stream.rest {
            Rest::Incomplete(from) => {
                self.resume = stream.take_resume();
                self.spent = from;
                if from > 0 {
                    // A new value is carried from here.
                    let from_abs = buf_at + from as u64;
                    self.seen.retain(|(s, _)| *s >= from_abs);
                }
            }
            Rest::Invalid(_) => {
                // The stream is not JSON after all. What it carried is given up; a value left
                // open at the end of this line (read alone) is carried instead.
                if stream.values.first().is_none_or(|v| v.start >= offset) {
                    dropped = offset;
                }
                self.spent = self.buf.len();
                self.seen.clear();
                if let Some(from) = alone_tail {
                    self.restart = Some((
                        line[from..].to_vec(),
                        line_at + from as u64,
                        alone.take_resume(),
                    ));
                }
            }
            Rest::Done => {
                self.spent = self.buf.len();
                self.seen.clear();
            }
        }
        dropped += self.give_up_if_too_long();
        Frame {
            parts: vec![
                Part {
                    text: line,
                    scan: alone,
                    values,
                    seen: HashSet::new(),
                },
                Part {
                    text: &self.buf,
                    scan: stream,
                    values: stream_values,
                    seen,
                },
            ],
            dropped,
        }
    }

    /// Gives up the carried value when it is longer than [`MAX_CARRY`]; returns its length
    /// then, else 0.
    fn give_up_if_too_long(&mut self) -> usize {
        let carried = self
            .restart
            .as_ref()
            .map_or(self.buf.len() - self.spent, |(b, _, _)| b.len());
        if carried <= MAX_CARRY {
            return 0;
        }
        self.restart = None;
        self.spent = self.buf.len();
        self.resume = None;
        self.seen.clear();
        carried
    }

    /// The bytes of the value the stream is inside, if any.
    pub(crate) fn unfinished(&self) -> usize {
        self.restart
            .as_ref()
            .map_or(self.buf.len() - self.spent, |(b, _, _)| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::lenient::scan;

    /// The texts of the values each line brings, in order.
    fn read(lines: &[&[u8]]) -> Vec<Vec<String>> {
        let mut f = Framer::default();
        lines
            .iter()
            .map(|line| {
                let frame = f.feed(line, scan(line));
                frame
                    .parts
                    .iter()
                    .flat_map(|p| {
                        p.values
                            .iter()
                            .map(|(v, _)| String::from_utf8_lossy(&p.text[v.clone()]).into_owned())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_message_per_line_is_read_once() {
        assert_eq!(
            read(&[b"{\"a\":1}\n", b"{\"b\":2}\n"]),
            [vec!["{\"a\":1}"], vec!["{\"b\":2}"]]
        );
    }

    #[test]
    fn a_value_split_across_lines_is_read_when_it_ends() {
        assert_eq!(
            read(&[b"{\"a\":\n", b"1,\n", b"\"b\":2}\n"]),
            [vec![], vec!["1"], vec!["\"b\"", "{\"a\":\n1,\n\"b\":2}"]]
        );
    }

    #[test]
    fn a_line_read_alone_is_not_read_again_inside_the_stream() {
        // `[` then a message then `]`: line servers act on the middle line, a stream server
        // on the batch; the message is the same bytes and is read once.
        let mut f = Framer::default();
        let lines: [&[u8]; 3] = [b"[\n", b"{\"id\":1}\n", b"]\n"];
        let mut found = Vec::new();
        for line in lines {
            let frame = f.feed(line, scan(line));
            for p in &frame.parts {
                for (v, _) in &p.values {
                    found.push((
                        String::from_utf8_lossy(&p.text[v.clone()]).into_owned(),
                        p.seen.clone(),
                    ));
                }
            }
        }
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "{\"id\":1}");
        assert_eq!(found[1].0, "[\n{\"id\":1}\n]");
        assert_eq!(found[1].1.iter().collect::<Vec<_>>(), [&(2..10)]);
    }

    #[test]
    fn a_stray_opening_does_not_hide_the_lines_after_it() {
        let got = read(&[b"{\"a\":\n", b"{\"id\":1}\n", b"{\"id\":2}\n"]);
        assert_eq!(got[1], ["{\"id\":1}"]);
        assert_eq!(got[2], ["{\"id\":2}"]);
    }

    #[test]
    fn garbage_drops_the_carry() {
        let mut f = Framer::default();
        let line: &[u8] = b"{\"a\":\n";
        assert_eq!(f.feed(line, scan(line)).dropped, 0);
        assert_eq!(f.unfinished(), 6);
        let line: &[u8] = b"not json\n";
        assert_eq!(f.feed(line, scan(line)).dropped, 6);
        assert_eq!(f.unfinished(), 0);
    }

    /// Feeds `[`, then `n` lines inside the open array, then its end; returns the bytes
    /// scanned (work, not time: a timed test fails on a busy machine).
    fn open_value_of(n: usize) -> usize {
        let mut f = Framer::default();
        let start = crate::proxy::lenient::SCANNED.with(std::cell::Cell::get);
        let open: &[u8] = b"[\n";
        f.feed(open, scan(open));
        let line: &[u8] = b"{\"id\":1,\"s\":\"\\ud800\"},\n";
        for _ in 0..n {
            f.feed(line, scan(line));
        }
        let close: &[u8] = b"{}]\n";
        let frame = f.feed(close, scan(close));
        assert_eq!(frame.parts[1].values.len(), 1, "the array ends");
        assert_eq!(
            frame.parts[1].seen.len(),
            n + 1,
            "each object was read alone"
        );
        crate::proxy::lenient::SCANNED.with(std::cell::Cell::get) - start
    }

    /// Regression: a client that opens a value and then sends many lines inside it costs
    /// linear time (each line was once scanned with everything carried before it): four times
    /// the lines scan about four times the bytes, not sixteen.
    #[test]
    fn many_lines_inside_one_open_value_cost_linear_time() {
        let (one, four) = (open_value_of(10_000), open_value_of(40_000));
        assert!(
            four < one * 5,
            "10,000 lines: {one:?}, 40,000 lines: {four:?}"
        );
    }

    #[test]
    fn a_carry_over_the_limit_is_dropped() {
        let mut f = Framer::default();
        let line: &[u8] = b"[\n";
        f.feed(line, scan(line));
        let big = format!("{}\n", "1,".repeat(MAX_CARRY / 2 + 1));
        let frame = f.feed(big.as_bytes(), scan(big.as_bytes()));
        assert!(frame.dropped > MAX_CARRY);
        assert_eq!(f.unfinished(), 0);
    }
}
