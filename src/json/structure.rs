//! The first pass over a line's blocks and the fast grammar check it enables.
//!
//! For each 64-byte block, the kernel's classes become two masks: the stops of plain string
//! text (for [`super::Cursor`], which handles escapes) and, as simdjson's stage 1 does, the
//! structural positions: `{ } [ ] : ,` and opening quotes outside strings, and the first byte
//! of every other run of non-whitespace outside strings (a number, a literal, or garbage).
//! Where a line has no backslash, its quotes alone say where its strings are (a prefix XOR of
//! the quote mask), and [`grammar`] checks the value by walking the structural positions
//! with one bit scan each, instead of byte by byte through a dependency chain.

use super::simd::{BLOCK, Kernel};
use super::{Cursor, MAX_DEPTH};

/// What the first pass found besides the masks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Summary {
    /// A byte is 0x80 or above (UTF-8 must be checked).
    pub non_ascii: bool,
    /// A backslash is present: the structural masks do not apply (escaped quotes).
    pub backslash: bool,
    /// Without backslashes: the quotes pair up and no string holds a control byte.
    pub strings_ok: bool,
}

/// Bit `k` of the result: the XOR of bits `0..=k` of `x`.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Classifies `bytes` block by block, calling `each` with every block first (whole blocks,
/// then the tail, which may be empty). Fills `stops` (bits set past the end too, so a scan
/// for the next stop always ends at the end of the input) and `structural` (nothing past the
/// end; left empty without `FULL`), `bytes.len() / 64 + 1` words each.
#[inline]
pub(super) fn scan<const FULL: bool>(
    kernel: Kernel,
    bytes: &[u8],
    stops: &mut [u64],
    structural: &mut [u64],
    mut each: impl FnMut(&[u8]),
) -> Summary {
    let (blocks, tail) = bytes.as_chunks::<BLOCK>();
    let mut last = [0u8; BLOCK];
    last[..tail.len()].copy_from_slice(tail);
    let mut state = State::default();
    for (k, block) in blocks.iter().enumerate() {
        each(block);
        (stops[k], structural[k]) = state.block::<FULL>(kernel, block, u64::MAX);
    }
    each(tail);
    let k = blocks.len();
    (stops[k], structural[k]) = state.block::<FULL>(kernel, &last, (1u64 << tail.len()) - 1);
    Summary {
        non_ascii: state.high,
        backslash: state.backslash,
        strings_ok: !state.bad && state.in_string == 0,
    }
}

/// What carries from one block to the next.
#[derive(Default)]
struct State {
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// 1 when the previous block ended in a run of non-whitespace outside strings.
    in_scalar: u64,
    high: bool,
    backslash: bool,
    bad: bool,
}

impl State {
    /// The stop and structural masks of one block whose real bytes are those of `valid`.
    #[inline]
    fn block<const FULL: bool>(
        &mut self,
        kernel: Kernel,
        block: &[u8; BLOCK],
        valid: u64,
    ) -> (u64, u64) {
        let c = kernel.block::<FULL>(block);
        let stops = c.quote | c.backslash | c.control | !valid;
        self.high |= c.high;
        if !FULL {
            return (stops, 0);
        }
        let quote = c.quote & valid;
        // Set from an opening quote up to (not including) its closing quote.
        let strings = prefix_xor(quote) ^ self.in_string;
        self.in_string = 0u64.wrapping_sub(strings >> 63);
        let outside = !strings & !quote & valid;
        let scalar = outside & !c.op & !c.space;
        let starts = scalar & !(scalar << 1 | self.in_scalar);
        self.in_scalar = scalar >> 63;
        self.backslash |= c.backslash & valid != 0;
        self.bad |= c.control & strings & valid != 0;
        (stops, (c.op & outside) | (quote & strings) | starts)
    }
}

/// The structural positions of a line, in order.
#[derive(Clone, Copy)]
struct Structurals<'m> {
    masks: &'m [u64],
    w: usize,
    bits: u64,
}

impl Structurals<'_> {
    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.bits != 0 {
                let at = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some(self.w * BLOCK + at);
            }
            self.w += 1;
            self.bits = *self.masks.get(self.w)?;
        }
    }

    #[inline]
    fn peek(&self) -> Option<usize> {
        let mut ahead = *self;
        ahead.next()
    }
}

/// Whether `b`, a line without backslashes whose strings are well formed, is exactly one
/// JSON value, from its structural positions (`structural` from [`scan`]).
pub(super) fn grammar(b: &[u8], structural: &[u64]) -> bool {
    let mut s = Structurals {
        masks: structural,
        w: 0,
        bits: structural.first().copied().unwrap_or(0),
    };
    let at = |p: usize| b.get(p).copied().unwrap_or(0);
    // Whether the next two positions are a key's opening quote and its colon.
    let key = |s: &mut Structurals| {
        s.next().is_some_and(|p| at(p) == b'"') && s.next().is_some_and(|p| at(p) == b':')
    };
    // true: an object.
    let mut stack = [false; MAX_DEPTH + 1];
    let mut depth = 0usize;
    'value: loop {
        let Some(p) = s.next() else {
            return false;
        };
        match at(p) {
            open @ (b'{' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
                let object = open == b'{';
                stack[depth] = object;
                let close = if object { b'}' } else { b']' };
                if s.peek().map(at) == Some(close) {
                    s.next();
                    depth -= 1;
                } else if object && !key(&mut s) {
                    return false;
                } else {
                    continue 'value;
                }
            }
            b'"' => {}
            b't' if literal(b, p, b"true") => {}
            b'f' if literal(b, p, b"false") => {}
            b'n' if literal(b, p, b"null") => {}
            b'-' | b'0'..=b'9' => {
                let mut c = Cursor {
                    b,
                    i: p,
                    masks: &[],
                };
                if !(c.number() && ends_token(b, c.i)) {
                    return false;
                }
            }
            _ => return false,
        }
        // After a value: the end, or a comma or the close of the innermost container.
        loop {
            if depth == 0 {
                return s.next().is_none();
            }
            let Some(p) = s.next() else {
                return false;
            };
            match at(p) {
                b',' => {
                    if stack[depth] && !key(&mut s) {
                        return false;
                    }
                    continue 'value;
                }
                b'}' if stack[depth] => depth -= 1,
                b']' if !stack[depth] => depth -= 1,
                _ => return false,
            }
        }
    }
}

/// Whether `word` is at `p` and the run of non-whitespace ends with it.
#[inline]
fn literal(b: &[u8], p: usize, word: &[u8]) -> bool {
    b[p..].starts_with(word) && ends_token(b, p + word.len())
}

/// Whether a token ending at `e` is followed by the end, whitespace, structure or a quote
/// (which the grammar then refuses where it does not belong), not by more of the same run.
#[inline]
fn ends_token(b: &[u8], e: usize) -> bool {
    b.get(e).is_none_or(|c| {
        matches!(
            c,
            b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"'
        )
    })
}
