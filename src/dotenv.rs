//! The `.env` file: found in the working directory or above, applied all or
//! nothing.
//!
//! The whole file is parsed before any variable is set, so a bad line leaves
//! the environment as it was. Errors name the file and the line number but
//! never the line, because `.env` lines carry API keys.

use std::path::PathBuf;

/// Why a `.env` file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line does not parse; nothing of the file was applied.
    #[error(
        "{path} line {line} does not parse (an unterminated quote, or a space in an unquoted value?); \
         none of its variables were applied"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// One-based number of the first line of the bad entry.
        line: usize,
    },
}

/// Finds `.env` in the working directory or the nearest parent that has one,
/// and sets its variables, keeping variables already set. Returns the file
/// applied, or `None` when there is none.
///
/// Call it before any other thread starts: it changes the process environment.
pub fn load() -> Result<Option<PathBuf>, Error> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    let Some(path) = cwd
        .ancestors()
        .map(|dir| dir.join(".env"))
        .find(|path| path.is_file())
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Unreadable {
        path: path.clone(),
        source,
    })?;
    check(&text).map_err(|line| Error::Malformed {
        path: path.clone(),
        line,
    })?;
    dotenvy::from_read(text.as_bytes()).map_err(|_| Error::Malformed {
        path: path.clone(),
        line: 1,
    })?;
    Ok(Some(path))
}

/// Parses every entry of `text`; on failure, the number of the line where
/// the bad entry starts.
fn check(text: &str) -> Result<(), usize> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if parses(body) {
        return Ok(());
    }
    // dotenvy's error quotes the line but does not number it. The bad entry
    // starts right after the longest run of whole lines that parses (a quoted
    // value may span lines, so a shorter run can fail on its own).
    let ends: Vec<usize> = body.match_indices('\n').map(|(i, _)| i + 1).collect();
    let good = ends.iter().rposition(|&end| parses(&body[..end]));
    Err(good.map_or(1, |n| n + 2))
}

/// Whether every entry of `text` parses.
fn parses(text: &str) -> bool {
    dotenvy::Iter::new(text.as_bytes()).all(|item| item.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses() {
        assert_eq!(check("A=1\n# note\nB=\"two words\"\nC='x'\n"), Ok(()));
    }

    #[test]
    fn the_bad_line_is_found_by_number() {
        assert_eq!(check("A=1\n\nB=two words\n"), Err(3));
        assert_eq!(check("A=1\nB=\"open\nC=3\n"), Err(2));
        assert_eq!(check("\u{feff}A=1 2\n"), Err(1));
        assert_eq!(check("A=\"multi\nline\"\nB=1\nC=x y"), Err(4));
    }
}
