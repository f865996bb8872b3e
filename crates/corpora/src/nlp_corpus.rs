//! npm `nlp-corpus`: `package/builds/doc-*.json`, each a JSON array of unrelated single
//! sentences. Its README asks that the texts not be republished: we read them at run
//! time only, and never commit them.

use crate::packages::tgz_files;
use crate::{Error, Result, TextDocument};
use std::path::Path;

/// Sentences per document: unrelated sentences packed together, as LM pre-training packs
/// text, so every position sees some left context.
const SENTENCES_PER_DOCUMENT: usize = 8;

pub(crate) fn documents(tgz: &Path) -> Result<Vec<TextDocument>> {
    let is_build = |path: &str| path.contains("/builds/doc-") && path.ends_with(".json");
    let mut documents = Vec::new();
    for (path, bytes) in tgz_files(tgz, is_build)? {
        let sentences: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| {
            Error::format(
                tgz,
                format!("{path}: expected a JSON array of strings: {e}"),
            )
        })?;
        let stem = path
            .rsplit('/')
            .next()
            .unwrap_or(&path)
            .trim_end_matches(".json");
        for (i, group) in sentences.chunks(SENTENCES_PER_DOCUMENT).enumerate() {
            documents.push(TextDocument {
                id: format!("nlp-corpus/{stem}/{i}"),
                source: "nlp-corpus".into(),
                text: group.join(" "),
            });
        }
    }
    if documents.is_empty() {
        return Err(Error::format(tgz, "no package/builds/doc-*.json files"));
    }
    Ok(documents)
}
