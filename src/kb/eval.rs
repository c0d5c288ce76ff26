//! `kb eval`: how well the store finds what it should, as recall@k and MRR.
//!
//! The eval file is JSON lines: `{"question": "…", "expected": ["id", …]}`
//! (`expected` may also be a single string). A question with `"expected": []` is out
//! of domain: it must get no hit at all.
//!
//! Besides ranks, the report says what answers without a model would have shown
//! (the same [`answer::choose`] the engine uses), so a confident wrong answer
//! counts against the store even when the right entry was second.

use crate::kb::ImportError;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::answer::{self, Choice};
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

/// An out-of-domain question that got hits anyway.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseHit {
    /// The question.
    pub question: String,
    /// What it found, best first, with scores.
    pub found: Vec<(String, f32)>,
}

/// What answers without a model would have told the users, as shares of all questions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Answers {
    /// Right: the expected entry's answer, or the no-match message for an
    /// out-of-domain question.
    pub right: f64,
    /// Suggestions ("did you mean") that include an expected entry.
    pub suggested_right: f64,
    /// Suggestions that include no expected entry (or any, out of domain).
    pub suggested_wrong: f64,
    /// The no-match message for an in-domain question.
    pub no_match: f64,
    /// A confident wrong answer: another entry's answer, or any answer out of domain.
    pub wrong: f64,
}

/// The result of an eval run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The cut-off.
    pub k: usize,
    /// Number of questions.
    pub questions: usize,
    /// Questions with expected ids (in domain).
    pub in_domain: usize,
    /// Questions with no expected id (out of domain: they must get no hit).
    pub out_of_domain: usize,
    /// Over in-domain questions: share whose first hit is an expected id.
    pub recall_at_1: f64,
    /// Over in-domain questions: mean share of expected ids found in the top k.
    pub recall_at_k: f64,
    /// Over in-domain questions: mean of 1 / rank of the first expected id in the
    /// top k (0 when none is).
    pub mrr: f64,
    /// Over out-of-domain questions: share that got no hit (`None` when there are none).
    pub rejection: Option<f64>,
    /// What retrieval-only answers would have shown.
    pub answers: Answers,
    /// In-domain questions with expected ids missing from the top k.
    pub misses: Vec<Miss>,
    /// Out-of-domain questions that got hits.
    pub false_hits: Vec<FalseHit>,
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

/// Runs every question against `kb`: ranks are measured on the top `k`, the
/// retrieval-only answer on the top `params.top_k`, both with `params.min_score`.
pub async fn run(
    kb: &dyn KnowledgeBase,
    cases: &[Case],
    k: usize,
    params: &SearchParams,
) -> Result<Report, Error> {
    let wide = SearchParams {
        top_k: k.max(params.top_k),
        ..*params
    };
    let (mut at1, mut recall, mut mrr, mut rejected) = (0.0, 0.0, 0.0, 0usize);
    let mut answers = Answers::default();
    let mut misses = Vec::new();
    let mut false_hits = Vec::new();
    let in_domain = cases.iter().filter(|c| !c.expected.is_empty()).count();
    let out_of_domain = cases.len() - in_domain;
    for case in cases {
        let hits = kb.search(&case.question, &wide).await?;
        let expected = |id: &String| case.expected.contains(id);
        match answer::choose(&hits[..hits.len().min(params.top_k)]) {
            Choice::NoMatch if case.expected.is_empty() => answers.right += 1.0,
            Choice::NoMatch => answers.no_match += 1.0,
            Choice::Answer(hit) if expected(&hit.id) => answers.right += 1.0,
            Choice::Answer(_) => answers.wrong += 1.0,
            Choice::Suggest(shown) if shown.iter().any(|h| expected(&h.id)) => {
                answers.suggested_right += 1.0;
            }
            Choice::Suggest(_) => answers.suggested_wrong += 1.0,
        }
        if case.expected.is_empty() {
            if hits.is_empty() {
                rejected += 1;
            } else {
                false_hits.push(FalseHit {
                    question: case.question.clone(),
                    found: hits.iter().map(|h| (h.id.clone(), h.score)).collect(),
                });
            }
            continue;
        }
        let found: Vec<String> = hits.into_iter().take(k).map(|h| h.id).collect();
        let hits = case.expected.iter().filter(|id| found.contains(id)).count();
        recall += hits as f64 / case.expected.len() as f64;
        if let Some(rank) = found.iter().position(expected) {
            mrr += 1.0 / (rank + 1) as f64;
            if rank == 0 {
                at1 += 1.0;
            }
        }
        if hits < case.expected.len() {
            misses.push(Miss {
                question: case.question.clone(),
                expected: case.expected.clone(),
                found,
            });
        }
    }
    let n = in_domain.max(1) as f64;
    let all = cases.len().max(1) as f64;
    for share in [
        &mut answers.right,
        &mut answers.suggested_right,
        &mut answers.suggested_wrong,
        &mut answers.no_match,
        &mut answers.wrong,
    ] {
        *share /= all;
    }
    Ok(Report {
        k,
        questions: cases.len(),
        in_domain,
        out_of_domain,
        recall_at_1: at1 / n,
        recall_at_k: recall / n,
        mrr: mrr / n,
        rejection: (out_of_domain > 0).then(|| rejected as f64 / out_of_domain as f64),
        answers,
        misses,
        false_hits,
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
                        score: 1.0 - 0.4 * i as f32,
                    },
                    rank: i + 1,
                    fulltext_rank: Some(i + 1),
                    fulltext_score: Some(1.0),
                    vector_rank: None,
                    vector_score: None,
                    rrf_score: 0.0,
                    reranked_from: None,
                    tags: Vec::new(),
                })
                .collect())
        }

        async fn ready(&self) -> Result<(), Error> {
            Ok(())
        }
    }

    fn case(question: &str, expected: &[&str]) -> Case {
        Case {
            question: question.into(),
            expected: expected.iter().map(|id| (*id).into()).collect(),
        }
    }

    #[tokio::test]
    async fn recall_and_mrr_count_ranks_within_k() {
        let kb = Ranked;
        let cases = vec![
            case("孩子自伤", &["a"]),
            case("挑食", &["c"]),
            case("睡眠", &["z"]),
        ];
        let params = SearchParams {
            top_k: 1,
            ..SearchParams::default()
        };
        let report = run(&kb, &cases, 2, &params).await.unwrap();
        assert_eq!(report.questions, 3);
        assert_eq!(report.in_domain, 3);
        assert_eq!(report.rejection, None);
        assert!((report.recall_at_k - 2.0 / 3.0).abs() < 1e-9, "{report:?}");
        assert!((report.recall_at_1 - 1.0 / 3.0).abs() < 1e-9, "{report:?}");
        // a is second for "孩子自伤" (b matches exactly), c is first: (1/2 + 1) / 3.
        assert!((report.mrr - 0.5).abs() < 1e-9, "{report:?}");
        assert_eq!(report.misses.len(), 1);
        assert_eq!(report.misses[0].question, "睡眠");
        // Without a model: 挑食 right, 孩子自伤 answered with b (wrong), 睡眠 no match.
        let third = 1.0 / 3.0;
        assert!((report.answers.right - third).abs() < 1e-9, "{report:?}");
        assert!((report.answers.wrong - third).abs() < 1e-9, "{report:?}");
        assert!((report.answers.no_match - third).abs() < 1e-9, "{report:?}");
    }

    #[tokio::test]
    async fn out_of_domain_questions_count_as_rejection_not_recall() {
        let kb = Ranked;
        let cases = vec![
            case("挑食", &["c"]),
            case("天气", &[]),
            case("孩子自伤", &[]),
        ];
        let report = run(&kb, &cases, 3, &SearchParams::default()).await.unwrap();
        assert_eq!((report.in_domain, report.out_of_domain), (1, 2));
        assert_eq!(report.recall_at_k, 1.0, "{report:?}");
        assert_eq!(report.rejection, Some(0.5), "{report:?}");
        assert_eq!(report.false_hits.len(), 1);
        assert_eq!(report.false_hits[0].question, "孩子自伤");
        // 挑食 and 天气 are right; an answer to the out-of-domain 孩子自伤 is wrong.
        assert!(
            (report.answers.right - 2.0 / 3.0).abs() < 1e-9,
            "{report:?}"
        );
        assert!(
            (report.answers.wrong - 1.0 / 3.0).abs() < 1e-9,
            "{report:?}"
        );
    }

    #[test]
    fn expected_may_be_one_id_or_a_list() {
        let a: Case = serde_json::from_str(r#"{"question":"q","expected":"x"}"#).unwrap();
        let b: Case = serde_json::from_str(r#"{"question":"q","expected":["x","y"]}"#).unwrap();
        assert_eq!(a.expected, ["x"]);
        assert_eq!(b.expected, ["x", "y"]);
    }
}
