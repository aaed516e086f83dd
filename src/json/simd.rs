//! The validator's block kernel: for 64 bytes of input, a mask per class of byte (quotes,
//! backslashes, control bytes, whitespace, `{ } [ ] : ,`) and whether any byte is outside
//! ASCII. AVX2 or SSE2 where the CPU has them (detected once), SWAR on other targets.
//!
//! This is the crate's one module of `unsafe` besides the file map: SIMD loads and calls of
//! functions compiled for a CPU feature that is checked at run time first.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, __m256i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    _mm256_cmpeq_epi8, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
};

/// Bytes per block, one mask bit each.
pub(super) const BLOCK: usize = 64;

/// One block's bytes by class: bit `k` of each mask stands for byte `k`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Classes {
    /// `"`.
    pub quote: u64,
    /// `\`.
    pub backslash: u64,
    /// Below 0x20.
    pub control: u64,
    /// JSON whitespace: space, tab, LF, CR.
    pub space: u64,
    /// `{`, `}`, `[`, `]`, `:` and `,`.
    pub op: u64,
    /// Whether a byte is 0x80 or above.
    pub high: bool,
}

/// Which implementation classifies the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    /// Eight bytes at a time in a `u64` (any CPU).
    #[cfg_attr(
        all(target_arch = "x86_64", not(test)),
        expect(dead_code, reason = "only other CPUs and the tests use it")
    )]
    Swar,
    /// 16 bytes at a time (every `x86_64` CPU).
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// 32 bytes at a time (checked at run time).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs, detected on the first call.
    #[inline]
    pub(super) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::atomic::{AtomicU8, Ordering};
            // 0: not yet detected, 1: SSE2, 2: AVX2.
            static CHOSEN: AtomicU8 = AtomicU8::new(0);
            match CHOSEN.load(Ordering::Relaxed) {
                1 => Kernel::Sse2,
                2 => Kernel::Avx2,
                _ => {
                    let avx2 = std::arch::is_x86_feature_detected!("avx2");
                    CHOSEN.store(if avx2 { 2 } else { 1 }, Ordering::Relaxed);
                    if avx2 { Kernel::Avx2 } else { Kernel::Sse2 }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Kernel::Swar
        }
    }

    /// The classes of one block's bytes; without `FULL`, only the quotes, backslashes,
    /// control bytes and `high` (what the field scanner needs), the other masks empty.
    #[inline]
    pub(super) fn block<const FULL: bool>(self, b: &[u8; BLOCK]) -> Classes {
        match self {
            Kernel::Swar => block_swar::<FULL>(b),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86_64 baseline; every x86_64 CPU has it.
            Kernel::Sse2 => unsafe { block_sse2::<FULL>(b) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx2` is only made by `detect`, after
            // `is_x86_feature_detected!("avx2")` said this CPU has AVX2, and by tests that
            // check the same first.
            Kernel::Avx2 => unsafe { block_avx2::<FULL>(b) },
        }
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes of `x` that are zero get their high bit set (exact; no false positives).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    // Exact variant: ((x & 0x7f..) + 0x7f..) | x has the high bit set for non-zero bytes.
    !(((x & !HI).wrapping_add(!HI)) | x) & HI
}

/// High bit set for each byte of `x` equal to `c`.
#[inline]
fn eq(x: u64, c: u8) -> u64 {
    zero_bytes(x ^ (LO * u64::from(c)))
}

/// The high bits of the eight bytes of `x` (which has no other bits set) as an 8-bit mask.
#[inline]
fn high_bits(x: u64) -> u64 {
    // Each byte's bit lands in a distinct bit of the top byte; no two products overlap.
    (x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The index of the first `"`, `\\` or control byte of `s`, eight bytes at a time: where the
/// plain run of a JSON string's text ends (the append fast path's string scan).
#[inline]
pub(crate) fn string_stop(s: &[u8]) -> Option<usize> {
    let (words, rest) = s.as_chunks::<8>();
    for (k, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        let stop = eq(w, b'"') | eq(w, b'\\') | zero_bytes(w & (LO * 0xe0));
        if stop != 0 {
            return Some(8 * k + (stop.trailing_zeros() / 8) as usize);
        }
    }
    rest.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| 8 * words.len() + i)
}

fn block_swar<const FULL: bool>(b: &[u8; BLOCK]) -> Classes {
    let mut c = Classes::default();
    let mut any = 0u64;
    for (k, word) in b.as_chunks::<8>().0.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        let at = 8 * k;
        c.quote |= high_bits(eq(w, b'"')) << at;
        c.backslash |= high_bits(eq(w, b'\\')) << at;
        c.control |= high_bits(zero_bytes(w & (LO * 0xe0))) << at;
        if FULL {
            c.space |= high_bits(eq(w, b' ') | eq(w, b'\t') | eq(w, b'\n') | eq(w, b'\r')) << at;
            let op =
                eq(w, b'{') | eq(w, b'}') | eq(w, b'[') | eq(w, b']') | eq(w, b':') | eq(w, b',');
            c.op |= high_bits(op) << at;
        }
        any |= w;
    }
    c.high = any & HI != 0;
    c
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_sse2<const FULL: bool>(b: &[u8; BLOCK]) -> Classes {
    let is = |v, c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c.cast_signed()));
    let bits = |m| u64::from(_mm_movemask_epi8(m).cast_unsigned() & 0xffff);
    let mut c = Classes::default();
    let mut any = _mm_set1_epi8(0);
    for (k, bytes) in b.as_chunks::<16>().0.iter().enumerate() {
        // SAFETY: 16 bytes to a 16-byte vector, whose every bit pattern is valid (an
        // unaligned load).
        let v = unsafe { std::mem::transmute::<[u8; 16], __m128i>(*bytes) };
        let at = 16 * k;
        c.quote |= bits(is(v, b'"')) << at;
        c.backslash |= bits(is(v, b'\\')) << at;
        // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
        c.control |= bits(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v)) << at;
        if FULL {
            let space = _mm_or_si128(
                _mm_or_si128(is(v, b' '), is(v, b'\t')),
                _mm_or_si128(is(v, b'\n'), is(v, b'\r')),
            );
            c.space |= bits(space) << at;
            let op = _mm_or_si128(
                _mm_or_si128(_mm_or_si128(is(v, b'{'), is(v, b'}')), is(v, b'[')),
                _mm_or_si128(_mm_or_si128(is(v, b']'), is(v, b':')), is(v, b',')),
            );
            c.op |= bits(op) << at;
        }
        any = _mm_or_si128(any, v);
    }
    c.high = _mm_movemask_epi8(any) != 0;
    c
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_avx2<const FULL: bool>(b: &[u8; BLOCK]) -> Classes {
    let is = |v, c: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c.cast_signed()));
    let or = _mm256_or_si256;
    let [lo, hi] = *b.as_chunks::<32>().0 else {
        unreachable!("64 bytes are two 32-byte halves")
    };
    // SAFETY: 32 bytes to a 32-byte vector, whose every bit pattern is valid (unaligned
    // loads).
    let (lo, hi) = unsafe {
        (
            std::mem::transmute::<[u8; 32], __m256i>(lo),
            std::mem::transmute::<[u8; 32], __m256i>(hi),
        )
    };
    let both = |f: &dyn Fn(__m256i) -> __m256i| {
        let l = u64::from(_mm256_movemask_epi8(f(lo)).cast_unsigned());
        let h = u64::from(_mm256_movemask_epi8(f(hi)).cast_unsigned());
        l | h << 32
    };
    Classes {
        quote: both(&|v| is(v, b'"')),
        backslash: both(&|v| is(v, b'\\')),
        // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
        control: both(&|v| _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v)),
        space: if FULL {
            both(&|v| {
                or(
                    or(is(v, b' '), is(v, b'\t')),
                    or(is(v, b'\n'), is(v, b'\r')),
                )
            })
        } else {
            0
        },
        op: if FULL {
            both(&|v| {
                or(
                    or(or(is(v, b'{'), is(v, b'}')), is(v, b'[')),
                    or(or(is(v, b']'), is(v, b':')), is(v, b',')),
                )
            })
        } else {
            0
        },
        high: _mm256_movemask_epi8(or(lo, hi)) != 0,
    }
}

/// Every kernel this CPU runs, the SWAR one (the fallback of other CPUs) always: the tests
/// run each path on this machine.
#[cfg(test)]
pub(super) fn kernels() -> Vec<Kernel> {
    let mut all = vec![Kernel::Swar];
    #[cfg(target_arch = "x86_64")]
    {
        all.push(Kernel::Sse2);
        if std::arch::is_x86_feature_detected!("avx2") {
            all.push(Kernel::Avx2);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(b: &[u8; BLOCK]) -> Classes {
        let mut c = Classes::default();
        for (k, &x) in b.iter().enumerate() {
            let bit = 1u64 << k;
            let set = |m: &mut u64, yes: bool| {
                if yes {
                    *m |= bit;
                }
            };
            set(&mut c.quote, x == b'"');
            set(&mut c.backslash, x == b'\\');
            set(&mut c.control, x < 0x20);
            set(&mut c.space, matches!(x, b' ' | b'\t' | b'\n' | b'\r'));
            set(
                &mut c.op,
                matches!(x, b'{' | b'}' | b'[' | b']' | b':' | b','),
            );
        }
        c.high = b.iter().any(|&x| x >= 0x80);
        c
    }

    #[test]
    fn every_kernel_classifies_every_byte_value_at_every_position() {
        #[cfg(target_arch = "x86_64")]
        assert!(
            kernels().contains(&Kernel::Avx2),
            "this test machine is expected to have AVX2; the SIMD path would go untested"
        );
        for kernel in kernels() {
            for pos in 0..BLOCK {
                for c in 0..=255u8 {
                    let mut b = [b'a'; BLOCK];
                    b[pos] = c;
                    let want = reference(&b);
                    assert_eq!(kernel.block::<true>(&b), want, "{kernel:?} {c:#x} at {pos}");
                    let stops = Classes {
                        space: 0,
                        op: 0,
                        ..want
                    };
                    assert_eq!(
                        kernel.block::<false>(&b),
                        stops,
                        "{kernel:?} {c:#x} at {pos}"
                    );
                }
            }
            let mut b = [0u8; BLOCK];
            for (k, c) in b.iter_mut().enumerate() {
                *c = (k as u8).wrapping_mul(37).wrapping_add(11);
            }
            assert_eq!(kernel.block::<true>(&b), reference(&b), "{kernel:?}");
        }
    }

    #[test]
    fn detect_picks_avx2_on_a_cpu_that_has_it() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            Kernel::detect() == Kernel::Avx2,
            std::arch::is_x86_feature_detected!("avx2")
        );
    }
}
