//! The generated knowledge base the benchmarks share: Chinese Markdown sections
//! built from the sample base's words, and an in-process embedder whose dense
//! vectors put texts sharing words close together.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use ragstream::kb::embed::{Failure, Provide, Purpose};

/// The embedder's model name, as stores record it.
pub const MODEL: &str = "local-bigram-projection";

/// A small deterministic generator (no extra dependency, same text on every run).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Words of the sample knowledge base and the domain dictionary.
pub fn vocabulary() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let text = std::fs::read_to_string(root.join("autism-qa.jsonl")).expect("sample base");
    let segmenter = ragstream::kb::segment::Segmenter::new(None).expect("dictionary");
    let mut words: Vec<String> = segmenter.words(&text);
    words.retain(|w| w.chars().count() >= 2 && w.chars().all(|c| !c.is_ascii()));
    words.sort();
    words.dedup();
    words
}

/// Writes the chunks as Markdown files, one `##` section per chunk.
pub fn generate(dir: &Path, chunks: usize, words: &[String]) -> Vec<String> {
    let mut rng = Lcg(42);
    let files = 100;
    let mut samples = Vec::new();
    for f in 0..files {
        let mut text = format!("# 生成文档 {f}\n\n");
        for c in (f..chunks).step_by(files) {
            let mut para = String::new();
            let target = 150 + rng.below(100);
            while para.chars().count() < target {
                para.push_str(&words[rng.below(words.len())]);
                para.push(if rng.below(8) == 0 { '。' } else { '，' });
            }
            if c % 997 == 0 {
                samples.push(para.clone());
            }
            text.push_str(&format!("## 第{c}节\n\n{para}\n\n"));
        }
        std::fs::write(dir.join(format!("doc-{f:03}.md")), text).expect("write");
    }
    samples
}

/// An in-process embedder producing dense vectors like real embedding models do:
/// the sum of a fixed pseudo-random dense vector per character bigram (a random
/// projection of the bag of bigrams), so texts sharing words get similar vectors.
#[derive(Debug)]
pub struct LocalEmbedder {
    /// Vector size.
    pub dim: usize,
}

/// The dense random vector of one bigram (uniform in -1..1, seeded by the bigram).
pub fn bigram_vector(a: char, b: char, dim: usize) -> Vec<f32> {
    let mut rng = Lcg(((a as u64) << 32) ^ (b as u64) ^ 0x9e37_79b9_7f4a_7c15);
    (0..dim)
        .map(|_| rng.next() as f32 / (1u64 << 30) as f32 - 1.0)
        .collect()
}

pub fn fake_vector(text: &str, dim: usize) -> Vec<f32> {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<(char, char), Vec<f32>>> = RefCell::new(HashMap::new());
    }
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut v = vec![0.0f32; dim];
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        for pair in chars.windows(2) {
            let basis = cache
                .entry((pair[0], pair[1]))
                .or_insert_with(|| bigram_vector(pair[0], pair[1], dim));
            for (x, y) in v.iter_mut().zip(basis.iter()) {
                *x += y;
            }
        }
    });
    v
}

#[async_trait]
impl Provide for LocalEmbedder {
    fn model(&self) -> &str {
        MODEL
    }

    async fn embed_batch(&self, texts: &[String], _: Purpose) -> Result<Vec<Vec<f32>>, Failure> {
        Ok(texts.iter().map(|t| fake_vector(t, self.dim)).collect())
    }
}
