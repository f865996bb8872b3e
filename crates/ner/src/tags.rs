//! Tag strings (`O`, `B-PER`, `E-LOC`, …) and the two ways of cutting tag sequences into
//! chunks. Shared by the corpus reader (which repairs input tags) and the metrics.

/// The prefix of a non-`O` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    B,
    I,
    E,
    S,
}

/// A parsed tag: `None` is `O`, otherwise the prefix and the entity type.
pub(crate) type Tag<'a> = Option<(Prefix, &'a str)>;

/// Parses `O` or `P-TYPE` with `P` one of B, I, E, S and a non-empty type (which may itself
/// contain hyphens, as conlleval allows). `None` means the string is not a tag.
pub(crate) fn parse_tag(s: &str) -> Option<Tag<'_>> {
    if s == "O" {
        return Some(None);
    }
    let (prefix, label) = s.split_once('-')?;
    let prefix = match prefix {
        "B" => Prefix::B,
        "I" => Prefix::I,
        "E" => Prefix::E,
        "S" => Prefix::S,
        _ => return None,
    };
    (!label.is_empty()).then_some(Some((prefix, label)))
}

/// A chunk over tag positions `start..end` (exclusive end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Chunk<'a> {
    pub start: usize,
    pub end: usize,
    pub label: &'a str,
}

/// conlleval's chunking, extended with `S-`: an `I-X`/`E-X` continues the open chunk only when
/// the previous tag is `B-X` or `I-X`; otherwise it starts a new chunk. `B-` and `S-` always
/// start one. On IOB2 input this is conlleval's startOfChunk/endOfChunk; it is also how IOB1
/// and broken IOB2/BIOES are repaired (the offending tag becomes the start of an entity).
pub(crate) fn lenient_chunks<'a>(tags: &[Tag<'a>]) -> Vec<Chunk<'a>> {
    let mut chunks: Vec<Chunk<'a>> = Vec::new();
    let mut prev: Tag<'a> = None;
    for (i, &tag) in tags.iter().enumerate() {
        if let Some((prefix, label)) = tag {
            let continues = matches!(prefix, Prefix::I | Prefix::E)
                && matches!(prev, Some((Prefix::B | Prefix::I, l)) if l == label);
            match chunks.last_mut() {
                Some(last) if continues => last.end = i + 1,
                _ => chunks.push(Chunk {
                    start: i,
                    end: i + 1,
                    label,
                }),
            }
        }
        prev = tag;
    }
    chunks
}

/// seqeval's `mode='strict', scheme=IOB2` chunking: an entity is `B-X` followed by `I-X`*;
/// an `I-` that does not continue an open entity of its type is ignored, and so is every
/// `I-` after it until the next `B-`. Expects only `O`, `B-` and `I-` tags.
pub(crate) fn strict_chunks<'a>(tags: &[Tag<'a>]) -> Vec<Chunk<'a>> {
    let mut chunks: Vec<Chunk<'a>> = Vec::new();
    let mut open = false;
    for (i, &tag) in tags.iter().enumerate() {
        match tag {
            Some((Prefix::B, label)) => {
                chunks.push(Chunk {
                    start: i,
                    end: i + 1,
                    label,
                });
                open = true;
            }
            Some((Prefix::I, label)) if open => match chunks.last_mut() {
                Some(last) if last.label == label => last.end = i + 1,
                _ => open = false,
            },
            _ => open = false,
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tags: &[&'static str]) -> Vec<Tag<'static>> {
        tags.iter().map(|t| parse_tag(t).unwrap()).collect()
    }

    fn spans(chunks: Vec<Chunk<'_>>) -> Vec<(usize, usize, String)> {
        chunks
            .into_iter()
            .map(|c| (c.start, c.end, c.label.to_string()))
            .collect()
    }

    fn s(start: usize, end: usize, label: &str) -> (usize, usize, String) {
        (start, end, label.to_string())
    }

    #[test]
    fn parses_tags() {
        assert_eq!(parse_tag("O"), Some(None));
        assert_eq!(parse_tag("B-PER"), Some(Some((Prefix::B, "PER"))));
        assert_eq!(parse_tag("I-foo-bar"), Some(Some((Prefix::I, "foo-bar"))));
        for bad in ["", "o", "PER", "B-", "X-PER", "B_PER", "BI-PER"] {
            assert_eq!(parse_tag(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strict_ignores_stray_inside_tags() {
        let tags = parse(&[
            "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-ORG", "I-ORG", "B-X",
        ]);
        assert_eq!(
            spans(strict_chunks(&tags)),
            vec![s(3, 5, "LOC"), s(7, 8, "X")]
        );
        // B-X I-Y I-Y: the I-Y run never becomes an entity.
        let tags = parse(&["B-X", "I-Y", "I-Y", "I-X"]);
        assert_eq!(spans(strict_chunks(&tags)), vec![s(0, 1, "X")]);
    }

    #[test]
    fn lenient_starts_chunks_like_conlleval() {
        let tags = parse(&[
            "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-ORG", "I-ORG", "B-ORG",
        ]);
        assert_eq!(
            spans(lenient_chunks(&tags)),
            vec![
                s(0, 2, "PER"),
                s(3, 5, "LOC"),
                s(5, 7, "ORG"),
                s(7, 8, "ORG")
            ]
        );
    }

    #[test]
    fn lenient_handles_bioes() {
        let tags = parse(&["S-A", "I-A", "B-A", "I-A", "E-A", "E-A", "B-A", "S-A"]);
        assert_eq!(
            spans(lenient_chunks(&tags)),
            vec![
                s(0, 1, "A"),
                s(1, 2, "A"),
                s(2, 5, "A"),
                s(5, 6, "A"),
                s(6, 7, "A"),
                s(7, 8, "A")
            ]
        );
    }
}
