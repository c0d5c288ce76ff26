//! The vector index: every stored vector, normalized, in one in-memory matrix.
//!
//! Why not sqlite-vec or an HNSW graph: the base is at most a few hundred thousand
//! chunks, which fits in memory (100,000 × 1,024 dimensions is 400 MB), loads from
//! SQLite in about a second, and needs no second on-disk structure to keep consistent
//! with SQLite, so imports stay atomic by construction. Small bases (up to
//! [`EXACT_LIMIT`] floats) are scanned exactly. Larger ones are first scanned on
//! one-bit codes (the sign of each component after subtracting the mean vector,
//! compared by Hamming distance, 32× less memory traffic than `f32`), and the best
//! [`OVERSAMPLE`]× candidates are then rescored exactly; `bench/kb_bench.rs` measures
//! both the latency and the recall of that two-step scan against the exact one.
//! The inner loops live in `kernels` (AVX2 + POPCNT where the CPU has them).

use std::collections::HashMap;

mod kernels;

use kernels::{dot, hamming, prefetch};

/// Matrices up to this many floats (16 MB) are scanned exactly.
pub const EXACT_LIMIT: usize = 4 * 1024 * 1024;
/// How many binary-code candidates per wanted hit are rescored exactly.
pub const OVERSAMPLE: usize = 40;
/// Never rescore fewer candidates than this.
const MIN_CANDIDATES: usize = 1000;

/// All vectors of the store, normalized to unit length.
#[derive(Debug, Default)]
pub struct VectorIndex {
    /// The SQLite generation these vectors were loaded at.
    pub generation: u64,
    /// Vector size; 0 when the store has no vectors.
    dim: usize,
    /// Rowid of each matrix row.
    rowids: Vec<i64>,
    /// Row position of each rowid.
    positions: HashMap<i64, usize>,
    /// `rowids.len() × dim` unit vectors, row-major.
    data: Vec<f32>,
    /// Mean of the rows, subtracted before taking signs.
    mean: Vec<f32>,
    /// Sign bits of each centered row, `words` u64s per row.
    codes: Vec<u64>,
    /// u64 words per code.
    words: usize,
}

/// One vector match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// SQLite rowid.
    pub rowid: i64,
    /// Cosine similarity with the query.
    pub score: f32,
}

impl VectorIndex {
    /// Builds the index from `(rowid, vector)` pairs of one size; pairs of another size are skipped.
    pub fn build(generation: u64, vectors: impl IntoIterator<Item = (i64, Vec<f32>)>) -> Self {
        let mut index = Self {
            generation,
            ..Self::default()
        };
        for (rowid, mut vector) in vectors {
            if index.dim == 0 {
                index.dim = vector.len();
            }
            if vector.len() != index.dim || vector.is_empty() {
                continue;
            }
            normalize(&mut vector);
            index.positions.insert(rowid, index.rowids.len());
            index.rowids.push(rowid);
            index.data.extend_from_slice(&vector);
        }
        if index.data.len() > EXACT_LIMIT {
            index.build_codes();
        }
        index
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.rowids.len()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.rowids.is_empty()
    }

    /// Vector size, or 0 when empty.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Cosine similarity between `query` (unit length) and the stored vector of `rowid`.
    pub fn cosine(&self, query: &[f32], rowid: i64) -> Option<f32> {
        let at = *self.positions.get(&rowid)?;
        Some(dot(query, self.row(at)))
    }

    /// The `limit` nearest rows to `query` by cosine similarity, best first.
    /// `query` must have [`VectorIndex::dim`] components.
    pub fn search(&self, query: &[f32], limit: usize) -> Vec<Match> {
        if self.is_empty() || limit == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let mut query = query.to_vec();
        normalize(&mut query);
        let scored: Vec<(f32, usize)> = if self.codes.is_empty() {
            (0..self.len())
                .map(|i| (dot(&query, self.row(i)), i))
                .collect()
        } else {
            let rows = self.candidates(&query, (limit * OVERSAMPLE).max(MIN_CANDIDATES));
            rows.iter()
                .enumerate()
                .map(|(j, &i)| {
                    if let Some(&next) = rows.get(j + 1) {
                        prefetch(self.row(next));
                    }
                    (dot(&query, self.row(i)), i)
                })
                .collect()
        };
        self.best(scored, limit)
    }

    /// The `limit` best of `(score, row)` pairs, as matches.
    fn best(&self, mut scored: Vec<(f32, usize)>, limit: usize) -> Vec<Match> {
        top(&mut scored, limit);
        scored
            .into_iter()
            .map(|(score, i)| Match {
                rowid: self.rowids[i],
                score,
            })
            .collect()
    }

    /// The exact `limit` nearest rows, scanning every vector (the reference the two-step
    /// scan is measured against).
    pub fn search_exact(&self, query: &[f32], limit: usize) -> Vec<Match> {
        if self.is_empty() || limit == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let query = Self::normalized(query);
        let scored: Vec<(f32, usize)> = (0..self.len())
            .map(|i| (dot(&query, self.row(i)), i))
            .collect();
        self.best(scored, limit)
    }

    /// Whether searches use the binary-code prefilter (large indexes) or scan exactly.
    pub fn is_quantized(&self) -> bool {
        !self.codes.is_empty()
    }

    /// Normalizes a query the way stored rows are normalized.
    pub fn normalized(query: &[f32]) -> Vec<f32> {
        let mut query = query.to_vec();
        normalize(&mut query);
        query
    }

    /// Row `i` of the matrix.
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Computes the mean and the sign codes of every row.
    fn build_codes(&mut self) {
        let n = self.len();
        let mut mean = vec![0.0f32; self.dim];
        for i in 0..n {
            for (m, x) in mean.iter_mut().zip(self.row(i)) {
                *m += x;
            }
        }
        for m in &mut mean {
            *m /= n as f32;
        }
        self.words = self.dim.div_ceil(64);
        let mut codes = vec![0u64; n * self.words];
        for i in 0..n {
            encode(
                self.row(i),
                &mean,
                &mut codes[i * self.words..(i + 1) * self.words],
            );
        }
        self.mean = mean;
        self.codes = codes;
    }

    /// The `count` rows whose codes are nearest to the query's code by Hamming
    /// distance (ties: lower rows first), in row order.
    fn candidates(&self, query: &[f32], count: usize) -> Vec<usize> {
        let mut code = vec![0u64; self.words];
        encode(query, &self.mean, &mut code);
        let mut distances = vec![0u32; self.len()];
        hamming(&self.codes, &code, &mut distances);
        nearest(&distances, self.words * 64, count)
    }
}

/// The `count` smallest of `distances` (each at most `max`), ties to the lower index,
/// as indexes in increasing order: a counting sort's threshold instead of a selection
/// over (distance, index) pairs, since distances are small integers.
fn nearest(distances: &[u32], max: usize, count: usize) -> Vec<usize> {
    if distances.len() <= count {
        return (0..distances.len()).collect();
    }
    let mut histogram = vec![0usize; max + 1];
    for &d in distances {
        // Distances never exceed `max`; clamping keeps a wrong caller from panicking.
        histogram[(d as usize).min(max)] += 1;
    }
    let mut below = 0;
    let mut threshold = 0;
    while below + histogram[threshold] < count {
        below += histogram[threshold];
        threshold += 1;
    }
    let mut ties = count - below;
    let mut out = Vec::with_capacity(count);
    for (i, &d) in distances.iter().enumerate() {
        let d = (d as usize).min(max);
        if d < threshold {
            out.push(i);
        } else if d == threshold && ties > 0 {
            ties -= 1;
            out.push(i);
        }
    }
    out
}

/// Keeps the `limit` highest scores, sorted best first; equal scores (duplicate
/// vectors) go to the lower row, whatever order the pairs came in.
fn top(scored: &mut Vec<(f32, usize)>, limit: usize) {
    let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if scored.len() > limit {
        scored.select_nth_unstable_by(limit, order);
        scored.truncate(limit);
    }
    scored.sort_unstable_by(order);
}

/// Sets bit `j` when component `j` is above the mean.
fn encode(vector: &[f32], mean: &[f32], code: &mut [u64]) {
    for (j, (x, m)) in vector.iter().zip(mean).enumerate() {
        if x > m {
            code[j / 64] |= 1 << (j % 64);
        }
    }
}

/// Scales to unit length (leaves zero vectors alone).
fn normalize(vector: &mut [f32]) {
    let norm = dot(vector, vector).sqrt();
    if norm > 0.0 {
        for x in vector {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random vector.
    fn vector(seed: u64, dim: usize) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..dim)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn exact_search_ranks_by_cosine() {
        let index = VectorIndex::build(
            1,
            vec![
                (10, vec![1.0, 0.0]),
                (11, vec![0.7, 0.7]),
                (12, vec![0.0, -3.0]),
            ],
        );
        let hits = index.search(&[2.0, 0.1], 2);
        assert_eq!(hits.iter().map(|m| m.rowid).collect::<Vec<_>>(), [10, 11]);
        assert!((hits[0].score - 0.9988).abs() < 1e-3, "{hits:?}");
        assert!(
            (index
                .cosine(&VectorIndex::normalized(&[0.0, 1.0]), 12)
                .unwrap()
                + 1.0)
                .abs()
                < 1e-6
        );
    }

    #[test]
    fn a_query_of_the_wrong_size_finds_nothing() {
        let index = VectorIndex::build(1, vec![(1, vec![1.0, 0.0])]);
        assert!(index.search(&[1.0, 0.0, 0.0], 3).is_empty());
    }

    #[test]
    fn the_binary_prefilter_finds_what_the_exact_scan_finds() {
        let dim = 256;
        let n = EXACT_LIMIT / dim + 1000;
        let index = VectorIndex::build(1, (0..n as i64).map(|i| (i, vector(i as u64, dim))));
        assert!(
            !index.codes.is_empty(),
            "large enough for the two-step scan"
        );
        // Queries near stored vectors must find them first.
        for target in [5i64, 777, 12_345] {
            let mut query = vector(target as u64, dim);
            query
                .iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x += 0.05 * ((j % 3) as f32 - 1.0));
            let hits = index.search(&query, 10);
            assert_eq!(hits[0].rowid, target);
        }
    }

    /// The candidate selection as it was: a selection over (distance, row) pairs.
    fn old_nearest(distances: &[u32], count: usize) -> Vec<usize> {
        let mut pairs: Vec<(u32, usize)> = distances.iter().copied().zip(0..).collect();
        if pairs.len() > count {
            pairs.select_nth_unstable(count);
            pairs.truncate(count);
        }
        let mut rows: Vec<usize> = pairs.into_iter().map(|(_, i)| i).collect();
        rows.sort_unstable();
        rows
    }

    #[test]
    fn the_nearest_codes_are_the_ones_the_pair_selection_chose() {
        let mut state = 5u64;
        for (n, max, count) in [(10_000, 1024, 2000), (5000, 64, 1000), (300, 8, 299)] {
            // Few distinct distances, so that the threshold falls inside a run of ties.
            let distances: Vec<u32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 33) % (max as u64 / 4 + 1)) as u32
                })
                .collect();
            let got = nearest(&distances, max, count);
            assert_eq!(got.len(), count);
            assert_eq!(got, old_nearest(&distances, count), "n {n}, count {count}");
        }
        assert_eq!(
            nearest(&[3, 1, 2], 64, 5),
            [0, 1, 2],
            "fewer rows than wanted"
        );
        assert_eq!(nearest(&[3, 1, 1, 0], 64, 2), [1, 3]);
        assert!(nearest(&[3, 1], 64, 0).is_empty());
        assert_eq!(nearest(&[900, 1], 64, 1), [1], "out of range is clamped");
    }

    #[test]
    fn duplicate_vectors_rank_by_row_whatever_the_scan_order() {
        let mut scored = vec![(0.5, 7), (0.9, 4), (0.9, 2), (0.1, 0), (0.9, 3)];
        top(&mut scored, 2);
        assert_eq!(scored, [(0.9, 2), (0.9, 3)]);
        let index = VectorIndex::build(
            1,
            vec![
                (30, vec![0.0, 1.0]),
                (20, vec![1.0, 1.0]),
                (10, vec![1.0, 1.0]),
            ],
        );
        let hits = index.search(&[1.0, 1.0], 1);
        assert_eq!(hits[0].rowid, 20, "the first stored of two equal vectors");
    }
}
