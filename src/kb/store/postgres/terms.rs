//! ragstream's Chinese terms of a PostgreSQL table's rows. PostgreSQL's parsers do not
//! segment Chinese, so ragstream keeps its own side table `<table>_ragstream_terms`
//! (`id text primary key` = the row's id as text, `terms tsvector` of jieba-segmented
//! words with positions, `words int` = the text's length in words) with a GIN index.
//! LangChain's columns are never touched. `kb import` fills it for ragstream's rows,
//! `kb migrate` for every row that has none (rows written by other tools). Beside it,
//! the term statistics: `<table>_ragstream_df` (each word's number of rows) and
//! `<table>_ragstream_totals` (rows, total words), which every transaction that changes
//! the side table moves by what it changed ([`super::term_stats`]: [`write()`], [`forget`],
//! [`prune`] and [`backfill`] gather a [`TermDelta`]), so a search
//! ([`super::fulltext`]) reads them instead of counting.

use std::fmt::Write as _;

use deadpool_postgres::GenericClient;

use super::config::quoted;
use super::pool::{cached, sql};
use super::term_stats::{self, TermDelta};
use crate::kb::Error;
use crate::kb::segment::Segmenter;

/// The side table's name (quoted, in the table's schema) for `kb.postgres.table`.
pub fn terms_table(table: &str) -> String {
    quoted(&format!("{table}_ragstream_terms"))
}

/// The table of per-word document counts of the side table (`lexeme text primary key`,
/// `docs int`), for IDF without counting rows on every search.
pub fn df_table(table: &str) -> String {
    quoted(&format!("{table}_ragstream_df"))
}

/// The one-row table of the side table's row count and total length in words (`docs`,
/// `words`), for BM25's mean length without a scan on every search.
pub fn totals_table(table: &str) -> String {
    quoted(&format!("{table}_ragstream_totals"))
}

/// What [`ensure`] created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The side table and its GIN index.
    pub terms: bool,
    /// The term statistics tables (filled from the side table).
    pub stats: bool,
}

/// Creates the side table and its GIN index, and the term statistics (filled), where
/// missing. Call it in a transaction: when something is missing it takes a transaction
/// lock on the table's name first, because `CREATE TABLE IF NOT EXISTS` is not safe
/// against a concurrent one (two first imports at once failed on a duplicate type).
pub async fn ensure(client: &impl GenericClient, table_name: &str) -> Result<Ensured, Error> {
    let terms = terms_table(table_name);
    let (mut has_terms, mut has_stats) = existing(client, table_name).await?;
    if !(has_terms && has_stats) {
        client
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext('ragstream full text ' || $1))",
                &[&table_name],
            )
            .await
            .map_err(sql)?;
        (has_terms, has_stats) = existing(client, table_name).await?;
    }
    if !has_terms {
        let name = table_name.rsplit('.').next().unwrap_or(table_name);
        let index = quoted(&format!("{name}_ragstream_terms_gin"));
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {terms} (id text PRIMARY KEY, terms tsvector NOT NULL, \
                 words int NOT NULL); \
                 CREATE INDEX IF NOT EXISTS {index} ON {terms} USING gin (terms)"
            ))
            .await
            .map_err(sql)?;
    }
    if !has_stats {
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (lexeme text PRIMARY KEY, docs int NOT NULL); \
                 CREATE TABLE IF NOT EXISTS {} (one boolean PRIMARY KEY DEFAULT true CHECK (one), \
                 docs bigint NOT NULL, words bigint NOT NULL)",
                df_table(table_name),
                totals_table(table_name)
            ))
            .await
            .map_err(sql)?;
        term_stats::recount(client, table_name).await?;
    }
    Ok(Ensured {
        terms: !has_terms,
        stats: !has_stats,
    })
}

/// Whether the side table, and both statistics tables, exist.
async fn existing(client: &impl GenericClient, table_name: &str) -> Result<(bool, bool), Error> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, \
                    to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL",
            &[
                &terms_table(table_name),
                &df_table(table_name),
                &totals_table(table_name),
            ],
        )
        .await
        .map_err(sql)?;
    Ok((row.get(0), row.get(1)))
}

/// Tries to store the terms of row `id` a few times: each retry needs a concurrent
/// change of that very row, which the next attempt sees.
const WRITE_ATTEMPTS: usize = 5;

/// Stores (or replaces) the segmented terms of row `id`, and adds the change to `delta`
/// (the terms it replaced, read under a row lock, are taken out).
pub async fn write(
    client: &impl GenericClient,
    table_name: &str,
    segmenter: &Segmenter,
    id: &str,
    content: &str,
    delta: &mut TermDelta,
) -> Result<(), Error> {
    let (vector, words) = tsvector(&segmenter.words(content));
    let side = terms_table(table_name);
    for _ in 0..WRITE_ATTEMPTS {
        // Prepared once per connection: an import writes a row at a time, and a new row
        // (the usual case) takes this one statement.
        let inserted = cached(
            client,
            &format!(
                "INSERT INTO {side} (id, terms, words) VALUES ($1, $2::text::tsvector, $3) \
                 ON CONFLICT (id) DO NOTHING RETURNING true"
            ),
            &[&id, &vector, &words],
        )
        .await?;
        if !inserted.is_empty() {
            delta.wrote(id, None);
            return Ok(());
        }
        // The row has terms (a row re-segmented, or terms left by a row another tool
        // deleted): the old ones leave the statistics, read under the row's lock.
        let old = cached(
            client,
            &format!("SELECT tsvector_to_array(terms), words FROM {side} WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await?;
        let Some(old) = old.first() else {
            continue; // deleted meanwhile: insert again
        };
        cached(
            client,
            &format!("UPDATE {side} SET terms = $2::text::tsvector, words = $3 WHERE id = $1"),
            &[&id, &vector, &words],
        )
        .await?;
        let replaced = (old.get(0), i64::from(old.get::<_, i32>(1)));
        delta.wrote(id, Some(replaced));
        return Ok(());
    }
    Err(Error::store(format!(
        "the full-text terms of row {id} kept changing under concurrent writers; retry"
    )))
}

/// Removes the terms of the rows `ids` (as text), deleted in the same transaction, and
/// takes them out of `delta`.
pub async fn forget(
    client: &impl GenericClient,
    table_name: &str,
    ids: &[String],
    delta: &mut TermDelta,
) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let side = terms_table(table_name);
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&side])
        .await
        .map_err(sql)?
        .get(0);
    if exists {
        // Rows this transaction wrote were not counted yet: they go uncounted.
        let uncounted = delta.unwrite(ids);
        if !uncounted.is_empty() {
            client
                .execute(
                    &format!("DELETE FROM {side} WHERE id = ANY($1)"),
                    &[&uncounted],
                )
                .await
                .map_err(sql)?;
        }
        let gone = client
            .query(
                &removed(&format!("DELETE FROM {side} WHERE id = ANY($1)")),
                &[&ids],
            )
            .await
            .map_err(sql)?;
        count_removed(&gone, delta);
    }
    Ok(())
}

/// Removes the terms of rows that no longer exist (deleted by another tool, e.g.
/// LangChain), takes them out of `delta`, and returns how many. Searches already ignore
/// them.
pub async fn prune(
    client: &impl GenericClient,
    table_name: &str,
    delta: &mut TermDelta,
) -> Result<u64, Error> {
    let gone = client
        .query(
            &removed(&format!(
                "DELETE FROM {} f WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE t.id::text = f.id)",
                terms_table(table_name),
                quoted(table_name)
            )),
            &[],
        )
        .await
        .map_err(sql)?;
    Ok(count_removed(&gone, delta))
}

/// `delete` (a `DELETE` from the side table) returning what it removed, counted: a row
/// with no word (`NULL`, the number of rows, their words), then each word with its
/// number of rows.
fn removed(delete: &str) -> String {
    format!(
        "WITH gone AS ({delete} RETURNING terms, words) \
         SELECT NULL::text, count(*), coalesce(sum(words), 0)::bigint FROM gone \
         UNION ALL \
         SELECT w, count(*), 0 FROM gone, unnest(tsvector_to_array(terms)) w GROUP BY w"
    )
}

/// Takes the rows [`removed`] counted out of `delta`; returns how many rows.
fn count_removed(counted: &[tokio_postgres::Row], delta: &mut TermDelta) -> u64 {
    let (mut rows, mut words) = (0, 0);
    let mut per_word = Vec::with_capacity(counted.len());
    for r in counted {
        match r.get::<_, Option<String>>(0) {
            Some(word) => per_word.push((word, r.get::<_, i64>(1))),
            None => (rows, words) = (r.get::<_, i64>(1), r.get::<_, i64>(2)),
        }
    }
    delta.removed(per_word, rows, words);
    u64::try_from(rows).unwrap_or(0)
}

/// Segments every row of `table_name` (`kb.postgres.table`) that has no terms yet, adds
/// them to `delta`, and returns how many.
pub async fn backfill(
    client: &impl GenericClient,
    table_name: &str,
    segmenter: &Segmenter,
    delta: &mut TermDelta,
) -> Result<usize, Error> {
    let missing = client
        .query(
            &format!(
                "SELECT t.id::text, coalesce(t.content, '') FROM {} t WHERE NOT EXISTS \
                 (SELECT 1 FROM {} f WHERE f.id = t.id::text)",
                quoted(table_name),
                terms_table(table_name)
            ),
            &[],
        )
        .await
        .map_err(sql)?;
    for row in &missing {
        let (id, content): (String, String) = (row.get(0), row.get(1));
        write(client, table_name, segmenter, &id, &content, delta).await?;
    }
    Ok(missing.len())
}

/// A `tsvector` literal of `words` with positions (PostgreSQL keeps at most 256
/// positions per word, each at most 16383), and the number of words. Built in one
/// string, for an import writes one per row.
fn tsvector(words: &[String]) -> (String, i32) {
    let mut positions: Vec<(&str, usize)> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), (i + 1).min(16383)))
        .collect();
    positions.sort_unstable();
    let mut out = String::with_capacity(words.iter().map(|w| w.len() + 6).sum());
    let (mut word, mut kept) = (None, 0);
    for (w, p) in positions {
        if word == Some(w) {
            if kept == 256 {
                continue;
            }
            out.push(',');
        } else {
            if word.is_some() {
                out.push(' ');
            }
            push_literal(&mut out, w);
            out.push(':');
            (word, kept) = (Some(w), 0);
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{p}");
        kept += 1;
    }
    (out, i32::try_from(words.len()).unwrap_or(i32::MAX))
}

/// A quoted lexeme for `tsvector`/`tsquery` input.
pub(super) fn literal(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    push_literal(&mut out, word);
    out
}

/// Appends `word` quoted for `tsvector`/`tsquery` input to `out`.
fn push_literal(out: &mut String, word: &str) {
    out.push('\'');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsvector_literal_counts_repeats_and_escapes_quotes() {
        let words: Vec<String> = ["自伤", "it's", "自伤", "a\\b"].map(String::from).to_vec();
        assert_eq!(
            tsvector(&words),
            ("'a\\\\b':4 'it''s':2 '自伤':1,3".to_owned(), 4)
        );
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn a_tsvector_literal_keeps_at_most_256_positions_per_word() {
        let words: Vec<String> = (0..300).map(|_| "字".to_owned()).collect();
        let (vector, n) = tsvector(&words);
        assert_eq!(n, 300);
        assert_eq!(vector.matches(',').count(), 255);
        assert!(vector.ends_with(",256"), "{vector}");
    }
}
