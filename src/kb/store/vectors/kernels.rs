//! The vector index's inner loops: dot products and Hamming distances.
//!
//! The default `x86_64` target promises only SSE2: no 256-bit lanes and no `popcnt`
//! instruction, so `u64::count_ones` becomes a dozen shifts and masks, and a dot product
//! runs four floats at a time. Each loop is therefore written once, portably, and also
//! compiled for AVX2 + POPCNT; the CPU is asked at run time which one to use (the
//! answer is cached by the standard library, so asking costs one load).
//!
//! Both builds of a loop give bit-identical results: the dot product keeps eight
//! independent running sums whichever build runs (one 256-bit register, or two 128-bit
//! ones), adds them in the same order, and uses no fused multiply-add, so the ranking of
//! the vector index does not depend on the machine it runs on.

/// Dot product of two slices of the same length (the shorter one decides otherwise).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// [`dot`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

/// Dot product in eight independent lanes (vectorized by the compiler), then the
/// lanes in order, then the tail.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let chunks = n / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] += ca[k] * cb[k];
        }
    }
    let tail: f32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// Asks the CPU to start loading `data` into its caches, without waiting for it.
/// The exact rescoring reads 2,000 rows of 4 KB scattered over a matrix far larger than
/// the caches; fetching the next row while the current one is multiplied hides most of
/// the wait for memory. Changes no result.
pub fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults and reads nothing the program sees; the
        // pointer is inside `data` anyway. (Safe to call since Rust 1.87.)
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Writes to `out[i]` the Hamming distance between `query` and the `i`-th code of
/// `codes` (codes of `query.len()` words each, one after the other). Stops at the
/// shorter of `out` and the codes.
pub fn hamming(codes: &[u64], query: &[u64], out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU supports AVX2 and POPCNT, checked just above.
        return unsafe { hamming_avx2(codes, query, out) };
    }
    hamming_portable(codes, query, out);
}

/// [`hamming`] compiled for AVX2 and POPCNT.
///
/// # Safety
/// The CPU must support AVX2 and POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn hamming_avx2(codes: &[u64], query: &[u64], out: &mut [u32]) {
    hamming_portable(codes, query, out);
}

/// The Hamming distances, one code at a time, four words at a time within a code
/// (four independent counts, so that the AVX2 build counts them in one register).
#[inline(always)]
fn hamming_portable(codes: &[u64], query: &[u64], out: &mut [u32]) {
    if query.is_empty() {
        out.iter_mut().for_each(|d| *d = 0);
        return;
    }
    let whole = query.len() / 4 * 4;
    for (code, d) in codes.chunks_exact(query.len()).zip(out) {
        let mut lanes = [0u64; 4];
        for (c, q) in code[..whole]
            .chunks_exact(4)
            .zip(query[..whole].chunks_exact(4))
        {
            for k in 0..4 {
                lanes[k] += u64::from((c[k] ^ q[k]).count_ones());
            }
        }
        let tail: u32 = code[whole..]
            .iter()
            .zip(&query[whole..])
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        *d = lanes.iter().sum::<u64>() as u32 + tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0
        }

        fn float(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Whether this machine runs the AVX2 builds (the tests compare both builds there,
    /// and the portable one against itself elsewhere).
    fn simd() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The dot product as the index computed it before the AVX2 build (copied verbatim):
    /// the reference both builds must match bit for bit.
    fn old_dot(a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0.0f32; 8];
        let chunks = a.len() / 8 * 8;
        for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
            for k in 0..8 {
                lanes[k] += ca[k] * cb[k];
            }
        }
        let tail: f32 = a[chunks..]
            .iter()
            .zip(&b[chunks..])
            .map(|(x, y)| x * y)
            .sum();
        lanes.iter().sum::<f32>() + tail
    }

    /// Both builds of the dot product, where this machine runs both.
    fn dots(a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = vec![dot(a, b), dot_portable(a, b)];
        #[cfg(target_arch = "x86_64")]
        if simd() {
            // SAFETY: simd() checked AVX2.
            out.push(unsafe { dot_avx2(a, b) });
        }
        out
    }

    #[test]
    fn the_dot_product_is_bit_identical_to_the_scalar_one_at_every_length() {
        let mut rng = Lcg(1);
        // Lengths that are and are not multiples of the 8 lanes, and real model sizes.
        for n in (0..=70).chain([255, 256, 257, 384, 768, 1023, 1024, 1536, 3072]) {
            let a: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.float() * 1e3).collect();
            let want = old_dot(&a, &b).to_bits();
            for got in dots(&a, &b) {
                assert_eq!(got.to_bits(), want, "length {n}");
            }
            // Signed zeros come out as before too.
            let zeros = vec![-0.0f32; n];
            for got in dots(&zeros, &b) {
                assert_eq!(got.to_bits(), old_dot(&zeros, &b).to_bits(), "length {n}");
            }
        }
    }

    #[test]
    fn the_dot_product_handles_zeros_nan_infinity_and_unequal_lengths_as_before() {
        let all = |a: &[f32], b: &[f32], check: &dyn Fn(f32) -> bool| {
            dots(a, b).into_iter().all(check) && check(old_dot(a, b))
        };
        assert!(all(&[], &[], &|d| d == 0.0));
        assert!(all(&[0.0; 1024], &[1.0; 1024], &|d| d == 0.0));
        let mut a = vec![1.0f32; 19];
        a[17] = f32::NAN;
        assert!(all(&a, &[1.0; 19], &f32::is_nan), "a NaN in the tail");
        a[17] = 1.0;
        a[3] = f32::NAN;
        assert!(all(&a, &[1.0; 19], &f32::is_nan), "a NaN in a lane");
        a[3] = f32::INFINITY;
        assert!(all(&a, &[1.0; 19], &|d| d == f32::INFINITY));
        assert!(all(&a, &[0.0; 19], &f32::is_nan), "infinity times zero");
        // The index only multiplies vectors of one size; given two sizes the shorter
        // decides (the old code panicked when the second was shorter than the first's
        // whole lanes).
        for got in dots(&[1.0, 2.0, 3.0], &[1.0, 1.0]) {
            assert_eq!(got, 3.0);
        }
        for got in dots(&[2.0; 20], &[3.0; 9]) {
            assert_eq!(got, 54.0);
        }
    }

    #[test]
    fn the_dot_product_of_large_vectors_stays_within_float_tolerance_of_f64() {
        let mut rng = Lcg(9);
        let a: Vec<f32> = (0..1536).map(|_| rng.float()).collect();
        let b: Vec<f32> = (0..1536).map(|_| rng.float()).collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - exact).abs() < 1e-4, "{exact}");
    }

    /// Hamming distances the slow, obvious way.
    fn reference_hamming(codes: &[u64], query: &[u64]) -> Vec<u32> {
        codes
            .chunks(query.len())
            .filter(|c| c.len() == query.len())
            .map(|c| {
                let mut d = 0;
                for (a, b) in c.iter().zip(query) {
                    for bit in 0..64 {
                        d += u32::from((a >> bit) & 1 != (b >> bit) & 1);
                    }
                }
                d
            })
            .collect()
    }

    #[test]
    fn hamming_distances_equal_bit_by_bit_counts() {
        let mut rng = Lcg(3);
        for words in [1, 2, 3, 6, 16, 24] {
            let rows = 37;
            let mut codes: Vec<u64> = (0..rows * words).map(|_| rng.next()).collect();
            // Edge codes: all zeros and all ones.
            codes[..words].fill(0);
            codes[words..2 * words].fill(u64::MAX);
            let query: Vec<u64> = (0..words).map(|_| rng.next()).collect();
            let mut got = vec![u32::MAX; rows];
            hamming(&codes, &query, &mut got);
            assert_eq!(got, reference_hamming(&codes, &query), "{words} words");
            let mut portable = vec![u32::MAX; rows];
            hamming_portable(&codes, &query, &mut portable);
            assert_eq!(portable, got);
            #[cfg(target_arch = "x86_64")]
            if simd() {
                let mut avx2 = vec![u32::MAX; rows];
                // SAFETY: simd() checked AVX2 and POPCNT.
                unsafe { hamming_avx2(&codes, &query, &mut avx2) };
                assert_eq!(avx2, got);
            }
            let mut same = vec![u32::MAX; 1];
            hamming(&query, &query, &mut same);
            assert_eq!(same, [0]);
            let flipped: Vec<u64> = query.iter().map(|w| !w).collect();
            hamming(&flipped, &query, &mut same);
            assert_eq!(same, [64 * words as u32]);
        }
    }

    #[test]
    fn hamming_stops_at_the_shorter_of_codes_and_output() {
        let codes = [0u64, 1, 3, 7];
        let mut out = [9u32; 6];
        hamming(&codes, &[0], &mut out);
        assert_eq!(out, [0, 1, 2, 3, 9, 9]);
        let mut out = [9u32; 2];
        hamming(&codes, &[0], &mut out);
        assert_eq!(out, [0, 1]);
        let mut out = [9u32; 2];
        hamming(&codes, &[], &mut out);
        assert_eq!(out, [0, 0]);
    }
}
