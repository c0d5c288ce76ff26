//! `kb eval`: how well the store finds what it should, as recall@k and MRR.
//!
//! The eval file is JSON lines: `{"question": "…", "expected": ["id", …]}`
//! (`expected` may also be a single string).

use crate::kb::ImportError;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Error, KnowledgeBase, SearchParams};

/// One eval question.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The question as a user might ask it.
    pub question: String,
    /// Ids of the documents that answer it.
    #[serde(deserialize_with = "one_or_many")]
    pub expected: Vec<String>,
}

/// Accepts `"id"` or `["id", …]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(id) => vec![id],
        OneOrMany::Many(ids) => ids,
    })
}

/// A question whose expected documents were not all in the top k.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// The question.
    pub question: String,
    /// What it should find.
    pub expected: Vec<String>,
    /// What it found, best first.
    pub found: Vec<String>,
}

/// The result of an eval run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The cut-off.
    pub k: usize,
    /// Number of questions.
    pub questions: usize,
    /// Mean share of expected ids found in the top k.
    pub recall_at_k: f64,
    /// Mean of 1 / rank of the first expected id in the top k (0 when none is).
    pub mrr: f64,
    /// Questions with expected ids missing from the top k.
    pub misses: Vec<Miss>,
}

/// Reads an eval file.
pub fn load(path: &Path) -> Result<Vec<Case>, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| {
        Error::Import(ImportError::Io {
            path: shown.clone(),
            source,
        })
    })?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(line).map_err(|err| {
            Error::Import(ImportError::Parse {
                path: shown.clone(),
                line: i + 1,
                message: format!("expected {{\"question\": …, \"expected\": [ids]}}: {err}"),
            })
        })?;
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(Error::Import(ImportError::Parse {
            path: shown,
            line: 1,
            message: "no questions; write one {\"question\": …, \"expected\": [ids]} per line"
                .into(),
        }));
    }
    Ok(cases)
}

/// Runs every question against `kb` with `params.top_k` replaced by `k`.
pub async fn run(
    kb: &dyn KnowledgeBase,
    cases: &[Case],
    k: usize,
    params: &SearchParams,
) -> Result<Report, Error> {
    let params = SearchParams {
        top_k: k,
        ..*params
    };
    let mut recall = 0.0;
    let mut mrr = 0.0;
    let mut misses = Vec::new();
    for case in cases {
        let found: Vec<String> = kb
            .search(&case.question, &params)
            .await?
            .into_iter()
            .map(|h| h.id)
            .collect();
        let hits = case.expected.iter().filter(|id| found.contains(id)).count();
        if !case.expected.is_empty() {
            recall += hits as f64 / case.expected.len() as f64;
        }
        if let Some(rank) = found.iter().position(|id| case.expected.contains(id)) {
            mrr += 1.0 / (rank + 1) as f64;
        }
        if hits < case.expected.len() {
            misses.push(Miss {
                question: case.question.clone(),
                expected: case.expected.clone(),
                found,
            });
        }
    }
    let n = cases.len().max(1) as f64;
    Ok(Report {
        k,
        questions: cases.len(),
        recall_at_k: recall / n,
        mrr: mrr / n,
        misses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::{DetailedHit, Hit};

    /// Fixed rankings, so the arithmetic is what is tested here; `kb eval` on the
    /// real store is tested in tests/kb_cli.rs.
    struct Ranked;

    #[async_trait::async_trait]
    impl KnowledgeBase for Ranked {
        async fn embed_query(&self, _: &str) -> Option<Vec<f32>> {
            None
        }

        async fn search_with_vector(
            &self,
            query: &str,
            _: Option<Vec<f32>>,
            params: &SearchParams,
        ) -> Result<Vec<DetailedHit>, Error> {
            let ids: &[&str] = match query {
                "孩子自伤" => &["b", "a", "c"],
                "挑食" => &["c"],
                _ => &[],
            };
            Ok(ids
                .iter()
                .take(params.top_k)
                .enumerate()
                .map(|(i, id)| DetailedHit {
                    hit: Hit {
                        id: (*id).into(),
                        title: String::new(),
                        answer: None,
                        text: String::new(),
                        source: String::new(),
                        score: 1.0,
                    },
                    rank: i + 1,
                    fulltext_rank: Some(i + 1),
                    fulltext_score: Some(1.0),
                    vector_rank: None,
                    vector_score: None,
                    rrf_score: 0.0,
                    tags: Vec::new(),
                })
                .collect())
        }

        async fn ready(&self) -> Result<(), Error> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn recall_and_mrr_count_ranks_within_k() {
        let kb = Ranked;
        let cases = vec![
            Case {
                question: "孩子自伤".into(),
                expected: vec!["a".into()],
            },
            Case {
                question: "挑食".into(),
                expected: vec!["c".into()],
            },
            Case {
                question: "睡眠".into(),
                expected: vec!["z".into()],
            },
        ];
        let report = run(&kb, &cases, 2, &SearchParams::default()).await.unwrap();
        assert_eq!(report.questions, 3);
        assert!((report.recall_at_k - 2.0 / 3.0).abs() < 1e-9, "{report:?}");
        // a is second for "孩子自伤" (b matches exactly), c is first: (1/2 + 1) / 3.
        assert!((report.mrr - 0.5).abs() < 1e-9, "{report:?}");
        assert_eq!(report.misses.len(), 1);
        assert_eq!(report.misses[0].question, "睡眠");
    }

    #[test]
    fn expected_may_be_one_id_or_a_list() {
        let a: Case = serde_json::from_str(r#"{"question":"q","expected":"x"}"#).unwrap();
        let b: Case = serde_json::from_str(r#"{"question":"q","expected":["x","y"]}"#).unwrap();
        assert_eq!(a.expected, ["x"]);
        assert_eq!(b.expected, ["x", "y"]);
    }
}
