//! The term statistics of the full-text side table (`<table>_ragstream_df`: each word's
//! number of rows; `<table>_ragstream_totals`: the rows and their total length in words),
//! kept exact by every transaction that changes the side table.
//!
//! A transaction gathers what it changed in a [`TermDelta`] (the words of each row it
//! writes or removes, and of the row a write replaced) and ends with [`apply`], which
//! moves the statistics by that delta; or, where recounting the whole side table is
//! cheaper (a change about as large as the table, a first fill), recounts them
//! ([`recount`]). Searches read the statistics instead of counting.
//!
//! Concurrent writers stay exact: a delta is applied after updating the totals row, so
//! writers take turns there, and each applies its delta on top of the counts the
//! previous one committed; a recount first locks the totals table against them, and
//! counts what was committed before it.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::fulltext::{df_table, terms_table, totals_table};
use super::pool::sql;
use crate::kb::Error;

/// Recount instead of applying a delta when the delta holds more distinct words than
/// this share of the side table's rows after the change: upserting a word of the delta
/// costs about as much as counting this many rows (bench/kb_pg_writes.rs, BENCHMARKS.md).
const RECOUNT_WORDS_PER_ROW: f64 = 2.0;

/// What a transaction changed in the side table, to move the term statistics by.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TermDelta {
    /// Per word: rows that gained it minus rows that lost it.
    docs: HashMap<String, i64>,
    /// Rows added minus rows removed.
    rows: i64,
    /// Words added minus words removed (the rows' lengths).
    words: i64,
    /// Whether anything changed.
    changed: bool,
}

impl TermDelta {
    /// A row holding the distinct words `lexemes`, `words` long, was added.
    pub fn add(&mut self, lexemes: impl IntoIterator<Item = impl AsRef<str>>, words: i64) {
        self.count(lexemes, 1, 1, words);
    }

    /// A row holding the distinct words `lexemes`, `words` long, was removed.
    pub fn remove(&mut self, lexemes: impl IntoIterator<Item = impl AsRef<str>>, words: i64) {
        self.count(lexemes, -1, -1, -words);
    }

    /// `rows` rows holding these words (each `(word, rows holding it)`), `words` long
    /// in all, were removed.
    pub fn remove_counted(
        &mut self,
        counted: impl IntoIterator<Item = (String, i64)>,
        rows: i64,
        words: i64,
    ) {
        for (lexeme, n) in counted {
            *self.docs.entry(lexeme).or_default() -= n;
        }
        self.rows -= rows;
        self.words -= words;
        self.changed |= rows != 0;
    }

    /// Whether the transaction changed no row of the side table.
    pub fn is_empty(&self) -> bool {
        !self.changed
    }

    fn count(
        &mut self,
        lexemes: impl IntoIterator<Item = impl AsRef<str>>,
        per_word: i64,
        rows: i64,
        words: i64,
    ) {
        for lexeme in lexemes {
            let lexeme = lexeme.as_ref();
            match self.docs.get_mut(lexeme) {
                Some(n) => *n += per_word,
                None => {
                    self.docs.insert(lexeme.to_owned(), per_word);
                }
            }
        }
        self.rows += rows;
        self.words += words;
        self.changed = true;
    }

    /// The words whose number of rows changed, with the change, sorted by word (so that
    /// writers update the statistics' rows in one order).
    fn moved(&self) -> (Vec<&str>, Vec<i32>) {
        let mut moved: Vec<(&str, i32)> = self
            .docs
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(w, n)| {
                let n = i32::try_from(*n).unwrap_or(if *n < 0 { i32::MIN } else { i32::MAX });
                (w.as_str(), n)
            })
            .collect();
        moved.sort_unstable();
        moved.into_iter().unzip()
    }
}

/// Whether recounting a side table of `rows` rows (after the change) is cheaper than
/// applying a delta of `words` distinct words.
fn recount_is_cheaper(words: usize, rows: i64) -> bool {
    words as f64 > RECOUNT_WORDS_PER_ROW * rows.max(0) as f64
}

/// Ends a transaction's changes of the side table: moves the term statistics by `delta`,
/// or recounts them where that is cheaper, in the caller's transaction. Does nothing
/// when nothing changed, or where the statistics do not exist (a side table from an
/// older version, searched by counting until `kb migrate` or an import creates them).
pub async fn apply(
    client: &impl GenericClient,
    table_name: &str,
    delta: &TermDelta,
) -> Result<(), Error> {
    if delta.is_empty() {
        return Ok(());
    }
    let (df, totals) = (df_table(table_name), totals_table(table_name));
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
            &[&df, &totals],
        )
        .await
        .map_err(sql)?
        .get(0);
    if !exists {
        return Ok(());
    }
    let (words, docs) = delta.moved();
    // An estimate (no lock yet): taking the totals row's lock and then the table's, for a
    // recount, could deadlock with a writer waiting for the row.
    let rows: Option<i64> = client
        .query_opt(&format!("SELECT docs FROM {totals}"), &[])
        .await
        .map_err(sql)?
        .map(|r| r.get(0));
    if rows.is_none_or(|rows| recount_is_cheaper(words.len(), rows + delta.rows)) {
        return recount(client, table_name).await;
    }
    // The totals row first: concurrent writers take turns from here on, each applying
    // its delta to the counts the one before it committed.
    let updated = client
        .execute(
            &format!("UPDATE {totals} SET docs = docs + $1, words = words + $2"),
            &[&delta.rows, &delta.words],
        )
        .await
        .map_err(sql)?;
    if updated != 1 {
        return recount(client, table_name).await;
    }
    if words.is_empty() {
        return Ok(());
    }
    client
        .execute(
            &format!(
                "INSERT INTO {df} AS d (lexeme, docs) SELECT * FROM unnest($1::text[], $2::int[]) \
                 ON CONFLICT (lexeme) DO UPDATE SET docs = d.docs + excluded.docs"
            ),
            &[&words, &docs],
        )
        .await
        .map_err(sql)?;
    let lost: Vec<&str> = words
        .iter()
        .zip(&docs)
        .filter(|(_, n)| **n < 0)
        .map(|(w, _)| *w)
        .collect();
    if !lost.is_empty() {
        // A word no row holds any more leaves the statistics, as a recount leaves it out.
        client
            .execute(
                &format!("DELETE FROM {df} WHERE lexeme = ANY($1) AND docs <= 0"),
                &[&lost],
            )
            .await
            .map_err(sql)?;
    }
    Ok(())
}

/// Recounts the term statistics from the whole side table (`ts_stat`), in the caller's
/// transaction: for a first fill, and for changes about as large as the table.
/// Concurrent writers wait for it (it locks the totals table first) and apply their
/// deltas to its counts after it commits; searches are not blocked and see the old
/// counts until then.
pub async fn recount(client: &impl GenericClient, table_name: &str) -> Result<(), Error> {
    let terms = terms_table(table_name);
    let df = df_table(table_name);
    let totals = totals_table(table_name);
    client
        .batch_execute(&format!(
            "LOCK TABLE {totals} IN SHARE ROW EXCLUSIVE MODE; \
             DELETE FROM {totals}; DELETE FROM {df}; \
             INSERT INTO {totals} (docs, words) SELECT count(*), coalesce(sum(words), 0) FROM {terms}"
        ))
        .await
        .map_err(sql)?;
    client
        .execute(
            &format!("INSERT INTO {df} (lexeme, docs) SELECT word, ndoc FROM ts_stat($1)"),
            &[&format!("SELECT terms FROM {terms}")],
        )
        .await
        .map_err(sql)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_nets_what_rows_gained_and_lost() {
        let mut delta = TermDelta::default();
        assert!(delta.is_empty());
        delta.add(["自伤", "孩子"], 5);
        delta.remove(["孩子", "训练"], 3);
        delta.remove_counted([("自伤".to_owned(), 2)], 2, 9);
        assert!(!delta.is_empty());
        assert_eq!(delta.moved(), (vec!["自伤", "训练"], vec![-1, -1]));
        assert_eq!((delta.rows, delta.words), (-2, -7));
    }

    #[test]
    fn recounting_wins_only_for_changes_as_large_as_the_table() {
        assert!(!recount_is_cheaper(200, 20_000));
        assert!(recount_is_cheaper(30_000, 20_000));
        assert!(recount_is_cheaper(1, 0));
    }
}
