//! The term statistics of the full-text side table (`<table>_ragstream_df`: each word's
//! number of rows; `<table>_ragstream_totals`: the rows and their total length in words),
//! kept exact by every transaction that changes the side table.
//!
//! A transaction gathers what it changed in a [`TermDelta`]: the ids of the rows whose
//! terms it wrote (their words are counted in the database when the delta is applied),
//! and the words of the rows it removed or whose terms it replaced (counted as they go).
//! It ends with [`apply`], which moves the statistics by that delta in three statements;
//! or, where recounting the whole side table is cheaper (a change of more than half the
//! table, such as a first fill), recounts them ([`recount`]). Searches read the
//! statistics instead of counting.
//!
//! Concurrent writers stay exact: a delta is applied after updating the totals row, so
//! writers take turns there, and each applies its delta on top of the counts the
//! previous one committed; a recount first locks the totals table against them, and
//! counts what was committed before it.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;

use super::pool::sql;
use super::terms::{df_table, terms_table, totals_table};
use crate::kb::Error;

/// What a transaction changed in the side table, to move the term statistics by (a row
/// written and then removed in the same transaction counts neither way).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TermDelta {
    /// Rows whose terms the transaction wrote, counted from the side table by [`apply`].
    written: HashSet<String>,
    /// Per word: rows that lost it (removed rows, replaced terms), negative.
    lost: HashMap<String, i64>,
    /// Rows removed, and rows whose terms were replaced, negative.
    rows: i64,
    /// Their words (the rows' lengths), negative.
    words: i64,
}

impl TermDelta {
    /// Row `id`'s terms were written; `replaced`: the distinct words and the length of
    /// the terms it had before, if any.
    pub fn wrote(&mut self, id: &str, replaced: Option<(Vec<String>, i64)>) {
        if self.written.contains(id) {
            // Its earlier terms were this transaction's, not counted yet.
            return;
        }
        if let Some((lexemes, words)) = replaced {
            for lexeme in lexemes {
                *self.lost.entry(lexeme).or_default() -= 1;
            }
            self.rows -= 1;
            self.words -= words;
        }
        self.written.insert(id.to_owned());
    }

    /// Of `ids`, those this transaction wrote, which stop counting as written.
    pub fn unwrite(&mut self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.written.remove(id.as_str()))
            .cloned()
            .collect()
    }

    /// `rows` rows holding these words (each `(word, rows holding it)`), `words` long
    /// in all, were removed.
    pub fn removed(
        &mut self,
        counted: impl IntoIterator<Item = (String, i64)>,
        rows: i64,
        words: i64,
    ) {
        for (lexeme, n) in counted {
            *self.lost.entry(lexeme).or_default() -= n;
        }
        self.rows -= rows;
        self.words -= words;
    }

    /// Whether the transaction changed no row of the side table.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.rows == 0
    }

    /// Rows written or removed.
    fn changed(&self) -> i64 {
        i64::try_from(self.written.len()).unwrap_or(i64::MAX) - self.rows
    }

    /// The words that lost rows, with how many (negative), sorted by word.
    fn lost(&self) -> (Vec<&str>, Vec<i32>) {
        let mut lost: Vec<(&str, i32)> = self
            .lost
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(w, n)| (w.as_str(), i32::try_from(*n).unwrap_or(i32::MIN)))
            .collect();
        lost.sort_unstable();
        lost.into_iter().unzip()
    }
}

/// Whether recounting is cheaper than applying a delta: when the rows changed are more
/// than half the rows of the side table after the change. Measured on 100,000 rows
/// (BENCHMARKS.md): a recount took 2.0–2.3 s; counting and upserting the words of
/// 10,000 written rows 0.32–0.38 s, of 50,000 1.6–2.0 s, of all 100,000 3.6–3.7 s.
fn recount_is_cheaper(changed: i64, rows_after: i64) -> bool {
    changed.saturating_mul(2) > rows_after.max(0)
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
    let (side, df, totals) = (
        terms_table(table_name),
        df_table(table_name),
        totals_table(table_name),
    );
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
    // An estimate (no lock yet): taking the totals row's lock and then the table's, for a
    // recount, could deadlock with a writer waiting for the row.
    let rows: Option<i64> = client
        .query_opt(&format!("SELECT docs FROM {totals}"), &[])
        .await
        .map_err(sql)?
        .map(|r| r.get(0));
    let written: Vec<&str> = delta.written.iter().map(String::as_str).collect();
    let after = |rows: i64| rows + delta.rows + i64::try_from(written.len()).unwrap_or(0);
    if rows.is_none_or(|rows| recount_is_cheaper(delta.changed(), after(rows))) {
        return recount(client, table_name).await;
    }
    // The totals row first: concurrent writers take turns from here on, each applying
    // its delta to the counts the one before it committed.
    let updated = client
        .execute(
            &format!(
                "UPDATE {totals} t SET docs = t.docs + $1 + w.n, words = t.words + $2 + w.len \
                 FROM (SELECT count(*) AS n, coalesce(sum(words), 0) AS len \
                       FROM {side} WHERE id = ANY($3)) w"
            ),
            &[&delta.rows, &delta.words, &written],
        )
        .await
        .map_err(sql)?;
    if updated != 1 {
        return recount(client, table_name).await;
    }
    // Each word's rows: those the written rows hold, less those lost, in word order.
    let (lost, lost_by) = delta.lost();
    let gone = client
        .query(
            &format!(
                "WITH moved AS (INSERT INTO {df} AS d (lexeme, docs) \
                   SELECT lexeme, sum(n)::int FROM ( \
                     SELECT w AS lexeme, 1 AS n FROM {side}, unnest(tsvector_to_array(terms)) w \
                       WHERE id = ANY($1) \
                     UNION ALL SELECT * FROM unnest($2::text[], $3::int[])) c \
                   GROUP BY lexeme HAVING sum(n) <> 0 ORDER BY lexeme \
                   ON CONFLICT (lexeme) DO UPDATE SET docs = d.docs + excluded.docs \
                   RETURNING lexeme, docs) \
                 SELECT lexeme FROM moved WHERE docs <= 0"
            ),
            &[&written, &lost, &lost_by],
        )
        .await
        .map_err(sql)?;
    if !gone.is_empty() {
        // A word no row holds any more leaves the statistics, as a recount leaves it out.
        let gone: Vec<String> = gone.iter().map(|r| r.get(0)).collect();
        client
            .execute(
                &format!("DELETE FROM {df} WHERE lexeme = ANY($1) AND docs <= 0"),
                &[&gone],
            )
            .await
            .map_err(sql)?;
    }
    Ok(())
}

/// Recounts the term statistics from the whole side table (`ts_stat`), in the caller's
/// transaction: for a first fill, and for changes of more than half the table.
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
        delta.wrote("1", None);
        delta.wrote("2", Some((vec!["孩子".into(), "训练".into()], 3)));
        // Written twice in one transaction: the first terms were never counted.
        delta.wrote("2", Some((vec!["自伤".into()], 1)));
        delta.removed([("孩子".to_owned(), 2)], 2, 9);
        assert!(!delta.is_empty());
        assert_eq!(delta.lost(), (vec!["孩子", "训练"], vec![-3, -1]));
        assert_eq!((delta.rows, delta.words, delta.changed()), (-3, -12, 5));
        assert_eq!(delta.unwrite(&["2".into(), "7".into()]), ["2"]);
        assert_eq!(delta.written.len(), 1);
    }

    #[test]
    fn recounting_wins_only_for_changes_of_more_than_half_the_table() {
        assert!(!recount_is_cheaper(1, 20_000));
        assert!(!recount_is_cheaper(2_000, 22_000));
        assert!(recount_is_cheaper(12_000, 22_000));
        assert!(recount_is_cheaper(20_000, 20_000));
        assert!(recount_is_cheaper(20_000, 0));
    }
}
