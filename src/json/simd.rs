//! The validator's block kernel: for 64 bytes of input, one bit per byte that ends a run of
//! plain string text (`"`, `\` or a byte below 0x20), and whether any byte is outside ASCII.
//! AVX2 or SSE2 where the CPU has them (detected once), SWAR on other targets.
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

    /// The special-byte mask of one block (bit `k` for byte `k`) and whether it holds a byte
    /// of 0x80 or above.
    #[inline]
    pub(super) fn block(self, b: &[u8; BLOCK]) -> (u64, bool) {
        match self {
            Kernel::Swar => block_swar(b),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86_64 baseline; every x86_64 CPU has it.
            Kernel::Sse2 => unsafe { block_sse2(b) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx2` is only made by `detect`, after
            // `is_x86_feature_detected!("avx2")` said this CPU has AVX2, and by tests that
            // check the same first.
            Kernel::Avx2 => unsafe { block_avx2(b) },
        }
    }

    /// Fills `masks` (`bytes.len() / 64 + 1` words) with the special-byte masks of `bytes`,
    /// calling `each` with every block first (whole blocks, then the tail, which may be
    /// empty). Bits past the end are set, so a scan for the next special byte always stops
    /// at the end of the input. Returns whether a byte is 0x80 or above.
    #[inline]
    pub(super) fn scan(self, bytes: &[u8], masks: &mut [u64], mut each: impl FnMut(&[u8])) -> bool {
        debug_assert_eq!(masks.len(), bytes.len() / BLOCK + 1);
        let mut non_ascii = false;
        let (blocks, tail) = bytes.as_chunks::<BLOCK>();
        for (mask, block) in masks.iter_mut().zip(blocks) {
            each(block);
            let (m, high) = self.block(block);
            *mask = m;
            non_ascii |= high;
        }
        each(tail);
        // NOTE: the padding is zero bytes, which are control bytes: special, as wanted.
        let mut last = [0u8; BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        let (m, high) = self.block(&last);
        if let Some(mask) = masks.last_mut() {
            *mask = m;
        }
        non_ascii | high
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

/// High bit set for each byte of `x` that is `"`, `\` or below 0x20.
#[inline]
pub(super) fn special_bytes(x: u64) -> u64 {
    let quote = zero_bytes(x ^ (LO * u64::from(b'"')));
    let backslash = zero_bytes(x ^ (LO * u64::from(b'\\')));
    // Bytes < 0x20: their top three bits are zero.
    let control = zero_bytes(x & (LO * 0xe0));
    quote | backslash | control
}

/// The high bits of the eight bytes of `x` (which has no other bits set) as an 8-bit mask.
#[inline]
fn high_bits(x: u64) -> u64 {
    // Each byte's bit lands in a distinct bit of the top byte; no two products overlap.
    (x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

fn block_swar(b: &[u8; BLOCK]) -> (u64, bool) {
    let mut mask = 0u64;
    let mut any = 0u64;
    for (k, word) in b.as_chunks::<8>().0.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        mask |= high_bits(special_bytes(w)) << (8 * k);
        any |= w;
    }
    (mask, any & HI != 0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_sse2(b: &[u8; BLOCK]) -> (u64, bool) {
    let quote = _mm_set1_epi8(b'"'.cast_signed());
    let backslash = _mm_set1_epi8(b'\\'.cast_signed());
    let below = _mm_set1_epi8(0x1f);
    let mut mask = 0u64;
    let mut any = _mm_set1_epi8(0);
    for (k, bytes) in b.as_chunks::<16>().0.iter().enumerate() {
        // SAFETY: 16 bytes to a 16-byte vector, whose every bit pattern is valid (an
        // unaligned load).
        let v = unsafe { std::mem::transmute::<[u8; 16], __m128i>(*bytes) };
        let special = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
            _mm_cmpeq_epi8(_mm_min_epu8(v, below), v),
        );
        mask |= u64::from(_mm_movemask_epi8(special).cast_unsigned() & 0xffff) << (16 * k);
        any = _mm_or_si128(any, v);
    }
    (mask, _mm_movemask_epi8(any) != 0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_avx2(b: &[u8; BLOCK]) -> (u64, bool) {
    let quote = _mm256_set1_epi8(b'"'.cast_signed());
    let backslash = _mm256_set1_epi8(b'\\'.cast_signed());
    let below = _mm256_set1_epi8(0x1f);
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
    let special = |v| {
        _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
            _mm256_cmpeq_epi8(_mm256_min_epu8(v, below), v),
        )
    };
    let lo_mask = u64::from(_mm256_movemask_epi8(special(lo)).cast_unsigned());
    let hi_mask = u64::from(_mm256_movemask_epi8(special(hi)).cast_unsigned());
    let any = _mm256_movemask_epi8(_mm256_or_si256(lo, hi));
    (lo_mask | hi_mask << 32, any != 0)
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

    fn reference(b: &[u8; BLOCK]) -> (u64, bool) {
        let mut mask = 0;
        for (k, &c) in b.iter().enumerate() {
            if c == b'"' || c == b'\\' || c < 0x20 {
                mask |= 1 << k;
            }
        }
        (mask, b.iter().any(|&c| c >= 0x80))
    }

    #[test]
    fn every_kernel_marks_exactly_the_special_bytes_at_every_position() {
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
                    assert_eq!(
                        kernel.block(&b),
                        reference(&b),
                        "{kernel:?} byte {c:#x} at {pos}"
                    );
                }
            }
            let mut b = [0u8; BLOCK];
            for (k, c) in b.iter_mut().enumerate() {
                *c = (k as u8).wrapping_mul(37).wrapping_add(11);
            }
            assert_eq!(kernel.block(&b), reference(&b), "{kernel:?}");
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

    #[test]
    fn scan_pads_the_tail_with_special_bits_and_feeds_every_byte() {
        for kernel in kernels() {
            for len in [0, 1, 63, 64, 65, 127, 128, 200] {
                let bytes = vec![b'x'; len];
                let mut masks = vec![0; len / BLOCK + 1];
                let mut fed = Vec::new();
                let high = kernel.scan(&bytes, &mut masks, |b| fed.extend_from_slice(b));
                assert!(!high);
                assert_eq!(fed, bytes);
                for (i, m) in masks.iter().enumerate() {
                    for k in 0..BLOCK {
                        let at = i * BLOCK + k;
                        assert_eq!(m >> k & 1 == 1, at >= len, "{kernel:?} len {len} at {at}");
                    }
                }
            }
        }
    }
}
