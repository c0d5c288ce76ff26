//! Cuts Markdown and plain text into chunks along headings and paragraphs.
//!
//! Sizes are counted in characters (`char`s), never bytes or whitespace-separated
//! words, so Chinese text without spaces chunks as well as English. A chunk never
//! crosses a heading; inside a section, paragraphs are packed up to `size` and each
//! chunk after the first repeats up to `overlap` characters of the one before.
//! Paragraphs longer than a chunk are cut at sentence ends (。！？!?；;), and a
//! sentence longer than a chunk is cut at a character count.

use super::config::ChunkConfig;

/// One chunk of a text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Heading path of the section, e.g. `指南 > 睡眠`; empty before the first heading.
    pub title: String,
    /// The chunk text.
    pub text: String,
    /// One-based line of the file where the chunk's first new paragraph starts.
    pub line: usize,
}

/// A paragraph and the line it starts on.
type Paragraph = (usize, String);

/// Chunks Markdown: `#`…`######` headings start sections (not inside code fences).
pub fn markdown(text: &str, cfg: ChunkConfig) -> Vec<Chunk> {
    split(text, cfg, true)
}

/// Chunks plain text: paragraphs separated by blank lines, no headings.
pub fn plain(text: &str, cfg: ChunkConfig) -> Vec<Chunk> {
    split(text, cfg, false)
}

/// Groups lines into sections and paragraphs, then packs each section.
fn split(text: &str, cfg: ChunkConfig, headings: bool) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    let mut current: Option<Paragraph> = None;
    let mut in_fence = false;

    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if headings && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            in_fence = !in_fence;
        }
        let heading = if headings && !in_fence {
            heading(trimmed)
        } else {
            None
        };
        if let Some((level, title)) = heading {
            paragraphs.extend(current.take());
            pack(&title_of(&path), &paragraphs, cfg, &mut chunks);
            paragraphs.clear();
            path.retain(|(l, _)| *l < level);
            path.push((level, title.to_owned()));
        } else if trimmed.is_empty() && !in_fence {
            paragraphs.extend(current.take());
        } else {
            match &mut current {
                Some((_, text)) => {
                    text.push('\n');
                    text.push_str(line.trim_end());
                }
                None => current = Some((index + 1, line.trim_end().to_owned())),
            }
        }
    }
    paragraphs.extend(current.take());
    pack(&title_of(&path), &paragraphs, cfg, &mut chunks);
    chunks
}

/// `## Title` gives `(2, "Title")`.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    let rest = &line[level..];
    if (1..=6).contains(&level) && (rest.is_empty() || rest.starts_with(' ')) {
        Some((level, rest.trim().trim_end_matches('#').trim()))
    } else {
        None
    }
}

/// `指南 > 睡眠` from the open headings.
fn title_of(path: &[(usize, String)]) -> String {
    path.iter()
        .map(|(_, t)| t.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" > ")
}

/// Packs one section's paragraphs into chunks of at most `cfg.size` characters.
fn pack(title: &str, paragraphs: &[Paragraph], cfg: ChunkConfig, out: &mut Vec<Chunk>) {
    const SEPARATOR: &str = "\n\n";
    let size = cfg.size.max(1);
    let overlap = cfg.overlap.min(size / 2);
    // A piece must fit after an overlap tail and a separator.
    let piece_max = size.saturating_sub(overlap + SEPARATOR.len()).max(1);

    let mut text = String::new();
    let mut chars = 0;
    let mut line = 0;
    for (start, paragraph) in paragraphs {
        for piece in pieces(paragraph, piece_max) {
            let piece_chars = piece.chars().count();
            if chars > 0 && chars + SEPARATOR.len() + piece_chars > size {
                let tail = tail(&text, overlap);
                out.push(Chunk {
                    title: title.to_owned(),
                    text: std::mem::take(&mut text),
                    line,
                });
                chars = tail.chars().count();
                // Sizes too small for a tail, a separator and a piece go without overlap.
                text = if chars + SEPARATOR.len() + piece_chars > size {
                    chars = 0;
                    String::new()
                } else {
                    tail
                };
                line = 0;
            }
            if line == 0 {
                line = *start;
            }
            if !text.is_empty() {
                text.push_str(SEPARATOR);
                chars += SEPARATOR.len();
            }
            text.push_str(&piece);
            chars += piece_chars;
        }
    }
    if line != 0 {
        out.push(Chunk {
            title: title.to_owned(),
            text,
            line,
        });
    }
}

/// Cuts a paragraph into pieces of at most `max` characters, at sentence ends where possible.
fn pieces(paragraph: &str, max: usize) -> Vec<String> {
    if paragraph.chars().count() <= max {
        return vec![paragraph.to_owned()];
    }
    let mut out = Vec::new();
    let mut piece = String::new();
    let mut piece_chars = 0;
    for sentence in sentences(paragraph) {
        let mut sentence_chars = sentence.chars().count();
        let mut sentence = sentence;
        if piece_chars + sentence_chars > max && piece_chars > 0 {
            out.push(std::mem::take(&mut piece));
            piece_chars = 0;
        }
        while sentence_chars > max {
            let cut = sentence
                .char_indices()
                .nth(max)
                .map_or(sentence.len(), |(i, _)| i);
            out.push(sentence[..cut].to_owned());
            sentence = &sentence[cut..];
            sentence_chars -= max;
        }
        piece.push_str(sentence);
        piece_chars += sentence_chars;
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    // A cut at a character count can leave a piece of whitespace alone.
    out.retain(|p| !p.trim().is_empty());
    out
}

/// Splits after each sentence end, keeping the punctuation with its sentence.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n') {
            let end = i + c.len_utf8();
            out.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The last `overlap` characters of `text`, starting after a sentence end when one is
/// in reach, so that the repeated context reads as whole sentences.
fn tail(text: &str, overlap: usize) -> String {
    if overlap == 0 {
        return String::new();
    }
    let total = text.chars().count();
    let skip = total.saturating_sub(overlap);
    let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    let tail = &text[start..];
    let sentence_start = tail
        .char_indices()
        .find(|(_, c)| matches!(c, '。' | '！' | '？' | '!' | '?' | '\n'))
        .map(|(i, c)| i + c.len_utf8())
        .filter(|i| *i < tail.len());
    match sentence_start {
        Some(i) => tail[i..].trim_start().to_owned(),
        None => tail.trim_start().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(size: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig { size, overlap }
    }

    #[test]
    fn headings_start_new_chunks_with_their_path_as_title() {
        let text = "# 指南\n\n引言。\n\n## 睡眠\n\n规律作息。\n\n## 饮食\n\n逐步加新食物。\n";
        let chunks = markdown(text, cfg(800, 100));
        let titles: Vec<_> = chunks.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["指南", "指南 > 睡眠", "指南 > 饮食"]);
        assert_eq!(chunks[1].text, "规律作息。");
        assert_eq!(chunks[1].line, 7);
    }

    #[test]
    fn chinese_without_spaces_is_cut_by_characters_within_the_size() {
        let paragraph = "孩子需要稳定的日常安排和清晰的视觉提示。".repeat(30);
        let chunks = plain(&paragraph, cfg(100, 20));
        assert!(chunks.len() > 5, "{}", chunks.len());
        for chunk in &chunks {
            assert!(
                chunk.text.chars().count() <= 100,
                "{}",
                chunk.text.chars().count()
            );
        }
    }

    #[test]
    fn consecutive_chunks_of_a_section_overlap() {
        let text = (1..=12)
            .map(|i| format!("第{i}段，内容说明了一件具体的事情。"))
            .collect::<Vec<_>>()
            .join("\n\n");
        let chunks = plain(&text, cfg(60, 20));
        assert!(chunks.len() >= 3);
        for pair in chunks.windows(2) {
            let last_paragraph = pair[0].text.rsplit("\n\n").next().unwrap();
            assert!(pair[1].text.starts_with(last_paragraph), "{pair:?}");
        }
    }

    #[test]
    fn a_heading_inside_a_code_fence_is_text() {
        let text = "# 真标题\n\n```\n# 注释\n```\n";
        let chunks = markdown(text, cfg(800, 0));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.contains("# 注释"));
    }

    #[test]
    fn plain_text_keeps_hash_lines_as_text() {
        let chunks = plain("#1 第一\n\n第二段", cfg(800, 0));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].title, "");
        assert_eq!(chunks[0].text, "#1 第一\n\n第二段");
    }

    // Found by the chunk property in tests/properties.rs (issue 10).
    #[test]
    fn sizes_too_small_for_overlap_still_bound_every_chunk() {
        for chunk in plain("ab\n\ncd", cfg(2, 1)) {
            assert!(chunk.text.chars().count() <= 2, "{chunk:?}");
        }
    }

    #[test]
    fn a_cut_never_leaves_a_chunk_of_whitespace() {
        let chunks = plain("a\u{b}\tb", cfg(1, 0));
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
    }

    #[test]
    fn an_empty_file_gives_no_chunks() {
        assert!(markdown("\n\n# 空\n\n", cfg(800, 100)).is_empty());
    }
}
