//! Black-box tests of the embedded store on a real on-disk data directory, full text only.

mod support;

use ragstream::kb::import::Options;
use ragstream::kb::{KnowledgeBase, SearchParams, eval, open, score};
use ragstream::kb::{KnowledgeBaseAdmin, Selection};
use support::kb::{config, ids, import, params, sample, sample_eval, write};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_sample_base_imports_and_answers_with_question_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let report = import(&store, &[sample()]).await.unwrap();
    assert_eq!(report.added, 47);
    assert_eq!(report.embedded, 0);

    let hits = store
        .search("孩子老是打自己的头，自伤怎么办", &params(3))
        .await
        .unwrap();
    assert_eq!(hits[0].id, "self-injury");
    assert_eq!(
        hits[0].title,
        "孩子有自伤行为（撞头、打头、咬手），该怎么办？"
    );
    assert!(
        hits[0]
            .answer
            .as_deref()
            .unwrap()
            .contains("首先保证孩子安全")
    );
    assert!(hits[0].text.is_empty());
    assert!(hits[0].source.contains("不能替代专业诊断"));
    assert!(
        hits[0].score > 0.25 && hits[0].score <= 1.0,
        "{}",
        hits[0].score
    );
    // Full text alone: scores fall with the BM25 rank.
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "{hits:?}"
    );
}

#[tokio::test]
async fn full_text_alone_reaches_recall_at_3_of_0_9_on_the_sample_eval() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = open(&cfg).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    let cases = eval::load(&sample_eval()).unwrap();
    assert!(cases.len() >= 40);
    let report = eval::run(&store, &cases, 3, &cfg.search_params())
        .await
        .unwrap();
    assert!(report.recall_at_k >= 0.98, "{report:#?}");
    assert!(report.mrr >= 0.9, "{report:#?}");
    assert!(report.rejection.unwrap() >= 0.5, "{report:#?}");
}

#[tokio::test]
async fn scores_separate_and_differ_and_questions_from_elsewhere_get_no_hit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = open(&cfg).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    for question in ["孩子总是咳嗽", "孩子总是咳嗽怎么办", "宝宝长痱子怎么办"]
    {
        let hits = store.search(question, &cfg.search_params()).await.unwrap();
        assert!(hits.is_empty(), "{question}: {hits:?}");
    }
    let hits = store
        .search("自闭症孩子自伤怎么办", &params(5))
        .await
        .unwrap();
    let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] != w[1]), "{scores:?}");
    // Issue 11: hits come best scored first (the fused order once put 0.801 under 0.762).
    assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
    assert!(
        scores.iter().filter(|s| **s >= 1.0).count() <= 1,
        "{scores:?}"
    );
    assert!(
        ids(&hits[..3]).contains(&"self-injury".to_owned()),
        "{hits:?}"
    );
    // Paraphrase through shared characters: 撞墙 is not a word of the stored question.
    let hits = store
        .search("孩子一生气就撞墙", &cfg.search_params())
        .await
        .unwrap();
    assert!(ids(&hits).contains(&"self-injury".to_owned()), "{hits:?}");
}

/// `kb eval -k 3` of the eval file `name` (beside the sample eval) on a store holding
/// only the sample, with the default config.
async fn eval_on_the_sample(name: &str) -> (Vec<eval::Case>, eval::Report) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = open(&cfg).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    let cases = eval::load(&sample_eval().with_file_name(name)).unwrap();
    let report = eval::run(&store, &cases, 3, &cfg.search_params())
        .await
        .unwrap();
    (cases, report)
}

#[tokio::test]
async fn the_unseen_eval_set_does_not_fall_below_the_recorded_figures() {
    let (cases, report) = eval_on_the_sample("autism-eval-unseen.jsonl").await;
    assert!(cases.iter().filter(|c| c.expected.is_empty()).count() >= 20);
    assert!(cases.iter().filter(|c| !c.expected.is_empty()).count() >= 60);
    // docs/knowledge-base.md records these figures: recall@3 0.767, rejection 0.423,
    // wrong answers 0.098 with the built-in synonyms (0.756, 0.462, 0.107 without them;
    // before the calibrated ranking 0.698, 0.192, 0.571). Rejection rose from 0.385 and
    // wrong answers fell from 0.116 when interrogatives (哪里, 多少 …) became query filler. The recall floor was 0.77
    // (0.779) until hits were ordered by their scores (issue 11): a full-text score now
    // weighs the evidence by BM25, and one held-out question's right entry, below the
    // best by BM25, fell under min_score (孩子怕吵，去商场就受不了).
    assert!(report.recall_at_k >= 0.76, "{report:#?}");
    assert!(report.rejection.unwrap() >= 0.42, "{report:#?}");
    assert!(report.answers.wrong <= 0.10, "{report:#?}");
}

#[tokio::test]
async fn the_fresh_eval_set_does_not_fall_below_the_recorded_figures() {
    let (cases, report) = eval_on_the_sample("autism-eval-fresh.jsonl").await;
    assert!(cases.iter().filter(|c| c.expected.is_empty()).count() >= 30);
    assert!(cases.iter().filter(|c| !c.expected.is_empty()).count() >= 100);
    // docs/knowledge-base.md records these figures (recall@3 0.686, rejection 0.281
    // before homophone slips were read as domain words).
    assert!(report.recall_at_k >= 0.69, "{report:#?}");
    assert!(report.rejection.unwrap() >= 0.28, "{report:#?}");
    assert!(report.answers.wrong <= 0.05, "{report:#?}");
}

/// Three entries, none with the word 医生.
const DOCTORS: &str = "{\"id\":\"a\",\"question\":\"怎样找一位好大夫\",\"answer\":\"看口碑和资质\"}\n\
{\"id\":\"b\",\"question\":\"睡眠问题\",\"answer\":\"固定作息\"}\n\
{\"id\":\"c\",\"question\":\"挑食怎么办\",\"answer\":\"逐步尝试\"}\n";

// Issue 11: synonyms from an openly licensed resource, weighted below the word itself
// and below an operator's synonyms, which still apply on top.
#[tokio::test]
async fn a_word_the_base_lacks_is_found_through_the_builtin_synonyms_below_an_operator_synonym() {
    let dir = tempfile::tempdir().unwrap();
    let faq = write(dir.path(), "faq.jsonl", DOCTORS);
    let mut cfg = config(dir.path());
    let store = open(&cfg).await.unwrap();
    import(&store, std::slice::from_ref(&faq)).await.unwrap();
    // 医生 and 大夫 share a synset in the Chinese Open Wordnet.
    let hits = store.search("医生", &params(3)).await.unwrap();
    assert_eq!(ids(&hits), ["a"], "{hits:?}");
    assert!((hits[0].score - score::RELATED).abs() < 1e-4, "{hits:?}");
    drop(store);

    cfg.builtin_synonyms = false;
    let store = open(&cfg).await.unwrap();
    assert!(store.search("医生", &params(3)).await.unwrap().is_empty());
    drop(store);

    cfg.builtin_synonyms = true;
    cfg.synonyms = Some(write(dir.path(), "synonyms.txt", "医生 大夫\n"));
    let store = open(&cfg).await.unwrap();
    let hits = store.search("医生", &params(3)).await.unwrap();
    assert_eq!(ids(&hits), ["a"], "{hits:?}");
    assert!((hits[0].score - score::SYNONYM).abs() < 1e-4, "{hits:?}");
}

// Issue 11: a query word that the base lacks but whose synonym is in every entry (宝宝
// for 孩子) is as common as that synonym, not as rare as an unseen word; else any
// question about 宝宝 passed min_score on 孩子 alone.
#[tokio::test]
async fn a_question_sharing_only_a_synonym_of_a_common_word_gets_no_hit() {
    let dir = tempfile::tempdir().unwrap();
    let faq = write(
        dir.path(),
        "faq.jsonl",
        "{\"id\":\"sleep\",\"question\":\"孩子睡眠不好\",\"answer\":\"固定作息\"}\n\
         {\"id\":\"food\",\"question\":\"孩子挑食\",\"answer\":\"逐步尝试\"}\n\
         {\"id\":\"talk\",\"question\":\"孩子不说话\",\"answer\":\"多互动\"}\n\
         {\"id\":\"hit\",\"question\":\"孩子打人\",\"answer\":\"找原因\"}\n\
         {\"id\":\"toilet\",\"question\":\"孩子如厕训练\",\"answer\":\"看信号\"}\n",
    );
    let mut cfg = config(dir.path());
    cfg.synonyms = Some(write(dir.path(), "synonyms.txt", "宝宝 孩子\n"));
    let store = open(&cfg).await.unwrap();
    import(&store, std::slice::from_ref(&faq)).await.unwrap();
    let hits = store
        .search("宝宝打嗝", &cfg.search_params())
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let hits = store
        .search("宝宝睡眠", &cfg.search_params())
        .await
        .unwrap();
    assert_eq!(ids(&hits[..1]), ["sleep"], "{hits:?}");
}

#[tokio::test]
async fn unrelated_questions_score_below_the_default_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = open(&cfg).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    let hits = store
        .search("明天上海的天气怎么样", &cfg.search_params())
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let hits = store
        .search("stock market prices", &cfg.search_params())
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
}

#[tokio::test]
async fn reimporting_the_same_content_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    let again = import(&store, &[sample()]).await.unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 47));
    assert_eq!(store.count().unwrap(), 47);
    assert_eq!(store.stats().unwrap().fulltext_documents, 47);
}

#[tokio::test]
async fn replace_removes_what_the_file_no_longer_holds_and_updates_changed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let file = write(
        dir.path(),
        "faq.jsonl",
        "{\"id\":\"a\",\"question\":\"睡眠不好怎么办\",\"answer\":\"固定作息\"}\n{\"id\":\"b\",\"question\":\"挑食怎么办\",\"answer\":\"逐步尝试\"}\n",
    );
    import(&store, std::slice::from_ref(&file)).await.unwrap();
    write(
        dir.path(),
        "faq.jsonl",
        "{\"id\":\"a\",\"question\":\"睡眠不好怎么办\",\"answer\":\"固定作息，睡前不看屏幕\"}\n{\"id\":\"c\",\"question\":\"如厕训练\",\"answer\":\"看准备信号\"}\n",
    );
    let report = store
        .import(
            std::slice::from_ref(&file),
            &Options { replace: true },
            &CancellationToken::new(),
            &ragstream::kb::import::Silent,
        )
        .await
        .unwrap();
    assert_eq!((report.added, report.updated, report.removed), (1, 1, 1));
    let listed: Vec<String> = store
        .list(None, 10, 0)
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed, ["a", "c"]);
    let hits = store.search("睡眠", &params(3)).await.unwrap();
    assert_eq!(hits[0].answer.as_deref(), Some("固定作息，睡前不看屏幕"));
    assert!(store.search("挑食", &params(3)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_row_fails_the_whole_import_and_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    import(&store, &[sample()]).await.unwrap();
    let before = store.stats().unwrap();

    let input = dir.path().join("input");
    write(
        &input,
        "a-good.md",
        "# 新主题\n\n关于尤克里里课程的新段落。\n",
    );
    write(
        &input,
        "b-bad.jsonl",
        "{\"question\":\"尤克里里课有用吗\",\"answer\":\"可以作为兴趣\"}\n\n{\"question\":\"缺答案\"}\n",
    );
    let err = import(&store, &[input]).await.unwrap_err().to_string();
    assert!(err.ends_with("b-bad.jsonl:3: missing `answer`"), "{err}");

    assert_eq!(store.stats().unwrap(), before);
    let hits = store.search("尤克里里", &params(10)).await.unwrap();
    assert!(
        hits.iter()
            .all(|h| !h.title.contains("尤克里里") && !h.text.contains("尤克里里")),
        "{hits:?}"
    );
}

#[tokio::test]
async fn documents_persist_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = open(&cfg).await.unwrap();
        import(&store, &[sample()]).await.unwrap();
    }
    let store = open(&cfg).await.unwrap();
    assert_eq!(store.count().unwrap(), 47);
    let hits = store.search("晚上睡不着", &params(1)).await.unwrap();
    assert_eq!(ids(&hits), ["sleep"]);
}

#[tokio::test]
async fn a_lost_fulltext_index_is_rebuilt_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = open(&cfg).await.unwrap();
        import(&store, &[sample()]).await.unwrap();
    }
    std::fs::remove_dir_all(cfg.data_dir.join("fulltext")).unwrap();
    let store = open(&cfg).await.unwrap();
    assert_eq!(store.stats().unwrap().fulltext_documents, 47);
    assert_eq!(
        ids(&store.search("挑食", &params(1)).await.unwrap()),
        ["picky-eating"]
    );
}

#[tokio::test]
async fn chinese_is_segmented_into_words_with_the_domain_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let file = write(
        dir.path(),
        "notes.md",
        "# 自伤\n\n孩子出现自伤时先保证安全。\n\n# 伤心\n\n孩子自己很伤心时，先陪伴。\n\n# 刻板行为\n\n重复刻板行为可以用替代活动。\n",
    );
    import(&store, &[file]).await.unwrap();
    // 自伤 is one word: the passage about 自己 and 伤心 must not match it.
    let hits = store.search("自伤", &params(5)).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].title, "自伤");
    // A sub-word of a dictionary word still finds it (search mode).
    let hits = store.search("刻板", &params(5)).await.unwrap();
    assert_eq!(hits[0].title, "刻板行为");
}

// Issue 11: pinyin input turns 自伤 into 自商; the slip is read as the domain word,
// unless a dictionary word of the question reaches into it (自上 in 自上周).
#[tokio::test]
async fn a_homophone_slip_of_a_domain_word_finds_the_entry_for_the_word() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let file = write(
        dir.path(),
        "notes.md",
        "# 自伤\n\n孩子出现自伤时先保证安全。\n\n# 商店\n\n带孩子去商店前先讲好规则。\n",
    );
    import(&store, &[file]).await.unwrap();
    let hits = store
        .search("孩子总是自商怎么办", &params(5))
        .await
        .unwrap();
    assert_eq!(
        hits.first().map(|h| h.title.as_str()),
        Some("自伤"),
        "{hits:?}"
    );
    assert!(hits[0].score > 0.5, "{hits:?}");
    let hits = store.search("我自上周开始失眠", &params(5)).await.unwrap();
    assert!(hits.iter().all(|h| h.title != "自伤"), "{hits:?}");
}

#[tokio::test]
async fn every_format_imports() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let input = dir.path().join("kb");
    write(
        &input,
        "faq.csv",
        "id,question,answer,tags,age\ncsv-1,孩子怕理发怎么办,先看视频熟悉,生活,3-6\n",
    );
    write(
        &input,
        "guide.md",
        "# 指南\n\n## 出行\n\n乘坐地铁前先看图片。\n",
    );
    write(
        &input,
        "legacy.txt",
        "question: 音乐课有帮助吗？\nanswer: 可以作为兴趣活动。\n",
    );
    write(
        &input,
        "notes/prose.txt",
        "户外活动每天至少一小时。\n\n游泳要有人看护。\n",
    );
    let report = import(&store, &[input]).await.unwrap();
    assert_eq!((report.files, report.added), (4, 4));

    let hits = store.search("理发", &params(1)).await.unwrap();
    assert_eq!(hits[0].id, "csv-1");
    assert_eq!(hits[0].answer.as_deref(), Some("先看视频熟悉"));
    let hits = store.search("地铁", &params(1)).await.unwrap();
    assert_eq!(hits[0].title, "指南 > 出行");
    assert_eq!(hits[0].answer, None);
    assert_eq!(hits[0].text, "乘坐地铁前先看图片。");
    assert_eq!(hits[0].source, "guide.md");
    let hits = store.search("音乐课", &params(1)).await.unwrap();
    assert_eq!(hits[0].answer.as_deref(), Some("可以作为兴趣活动。"));
    let hits = store.search("游泳", &params(1)).await.unwrap();
    assert_eq!(hits[0].source, "prose.txt");
}

#[tokio::test]
async fn delete_by_id_origin_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let other = write(
        dir.path(),
        "other.jsonl",
        "{\"id\":\"x\",\"question\":\"音乐\",\"answer\":\"好\"}\n",
    );
    import(&store, &[sample(), other.clone()]).await.unwrap();

    assert_eq!(
        store.delete(&Selection::Ids(vec!["sleep".into()])).unwrap(),
        1
    );
    assert!(!ids(&store.search("睡不着", &params(3)).await.unwrap()).contains(&"sleep".to_owned()));
    let err = store
        .delete(&Selection::Ids(vec!["nope".into()]))
        .unwrap_err();
    assert!(err.to_string().contains("no document with id `nope`"));

    let origin = std::fs::canonicalize(&other).unwrap().display().to_string();
    assert_eq!(store.delete(&Selection::Origin(origin)).unwrap(), 1);
    assert_eq!(store.count().unwrap(), 46);
    assert_eq!(store.delete(&Selection::All).unwrap(), 46);
    assert!(store.search("自伤", &params(3)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reader_keeps_answering_during_an_import_and_then_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // Two handles on one directory, as `serve` and `kb import` in two processes.
    let serve = open(&cfg).await.unwrap();
    let importer = open(&cfg).await.unwrap();
    import(&importer, &[sample()]).await.unwrap();
    wait_for(&serve, "自伤", 1).await;

    let big: String = (0..3000)
        .map(|i| format!("{{\"question\":\"第{i}个关于音乐治疗的问题\",\"answer\":\"回答{i}\"}}\n"))
        .collect();
    let file = write(dir.path(), "big.jsonl", &big);
    let task = tokio::spawn(async move { import(&importer, &[file]).await });
    let mut answered = 0;
    while !task.is_finished() {
        let hits = serve.search("自伤", &params(1)).await.unwrap();
        assert_eq!(ids(&hits), ["self-injury"]);
        answered += 1;
    }
    assert!(answered > 0);
    task.await.unwrap().unwrap();
    wait_for(&serve, "音乐治疗", 1).await;
}

/// Polls until `query` finds at least `n` hits (the tantivy reader reloads asynchronously).
async fn wait_for(store: &ragstream::kb::Store, query: &str, n: usize) {
    for _ in 0..100 {
        if store.search(query, &params(n)).await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("`{query}` never found {n} hits");
}

/// Two `serve` processes starting on one empty directory both seed it; the
/// second must find the work done, not fail on the first one's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_of_the_same_content_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = open(&cfg).await.unwrap();
    let second = open(&cfg).await.unwrap();
    let sample = sample();

    let (a, b) = tokio::join!(
        ragstream::kb::seed_if_empty(&first, &sample),
        ragstream::kb::seed_if_empty(&second, &sample)
    );

    let (a, b) = (a.unwrap(), b.unwrap());
    let added: usize = [a, b].iter().flatten().map(|report| report.added).sum();
    let stored = first.count().unwrap();
    assert!(stored > 40, "{stored}");
    assert_eq!(added as u64, stored, "each document was added exactly once");
}

/// The classic article's own question must find the self-injury answer first:
/// a match in the question outweighs an answer that mentions the same words.
#[tokio::test]
async fn the_reference_question_finds_its_answer_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    import(&store, &[sample()]).await.unwrap();

    let hits = store
        .search("自闭症孩子自伤怎么办？", &SearchParams::default())
        .await
        .unwrap();

    assert_eq!(ids(&hits)[0], "self-injury", "{:?}", ids(&hits));
}
