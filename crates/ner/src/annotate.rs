//! Inference end to end: documents → tokens → residuals after the SAE's layer → the
//! profile's features only → spans with evidence.
//!
//! Only the profile's encoder columns are computed (a few hundred of the SAE's thousands),
//! which is exact for SAEs with a per-feature firing rule (ReLU, JumpReLU, BatchTopK); see
//! [`saener_sae::Sae::feature_subset`] for TopK.

use saener_lm::residuals::Extractor;
use saener_sae::{FeatureSubset, Sae};
use serde::Serialize;

use crate::align::Alignment;
use crate::corpus::Document;
use crate::decode::{Activations, Decoder, Evidence, Span};
use crate::params::DecodeParams;
use crate::profile::Profile;
use crate::{Error, Result};

/// A profile ready to annotate text with one model and SAE.
pub struct Annotator<'a> {
    extractor: Extractor<'a>,
    subset: FeatureSubset<'a>,
    decoder: Decoder,
}

/// One document's result: its spans and how many tokens the model read (BOS included).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub spans: Vec<Span>,
    pub tokens: usize,
}

/// An entity as `annotate` and the HTTP API write it: character span, its text, type,
/// score and evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityRecord {
    /// Code points into the document text, half-open.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub label: String,
    /// Mean word score for `label`, in 0–1.
    pub score: f64,
    /// The features that voted for `label`, by precision.
    pub evidence: Vec<Evidence>,
}

/// Slices a text by code-point offsets, walking forward from the last slice (spans come in
/// order), so a long text needs no table of its characters.
pub struct CharSlicer<'a> {
    text: &'a str,
    byte: usize,
    char: usize,
}

impl<'a> CharSlicer<'a> {
    pub fn new(text: &'a str) -> Self {
        CharSlicer {
            text,
            byte: 0,
            char: 0,
        }
    }

    fn byte_of(&mut self, char: usize) -> usize {
        if char < self.char {
            (self.byte, self.char) = (0, 0);
        }
        let rest = &self.text[self.byte..];
        let step = rest
            .char_indices()
            .nth(char - self.char)
            .map_or(rest.len(), |(b, _)| b);
        self.byte += step;
        self.char = char;
        self.byte
    }

    /// The text of code points `start..end`.
    pub fn slice(&mut self, start: usize, end: usize) -> &'a str {
        let start = self.byte_of(start);
        let end = self.byte_of(end);
        &self.text[start..end]
    }
}

impl EntityRecord {
    /// The records of `spans` in `text`.
    pub fn all(text: &str, spans: &[Span]) -> Vec<EntityRecord> {
        let mut chars = CharSlicer::new(text);
        spans
            .iter()
            .map(|s| EntityRecord {
                start: s.start,
                end: s.end,
                text: chars.slice(s.start, s.end).to_string(),
                label: s.label.clone(),
                score: s.score,
                evidence: s.evidence.clone(),
            })
            .collect()
    }
}

impl<'a> Annotator<'a> {
    /// Prepares `profile` (calibrated for `sae` and the extractor's layer; check with
    /// [`Profile::check_compatible`]) with decoding parameters `params`. The residuals are
    /// read as the profile's were (echo or not), whatever the extractor's setting.
    pub fn new(
        mut extractor: Extractor<'a>,
        sae: &'a Sae,
        profile: &Profile,
        params: DecodeParams,
    ) -> Result<Annotator<'a>> {
        extractor.options.echo = profile.origin.echo;
        Ok(Annotator {
            extractor,
            subset: sae.feature_subset(&profile.features())?,
            decoder: Decoder::new(profile, params)?,
        })
    }

    /// The spans of each document, in order. The model runs on all documents together
    /// (batched by length); an error fails the whole call, so callers that must isolate a
    /// bad document retry it alone.
    pub fn annotate(&self, documents: &[Document]) -> Result<Vec<Vec<Span>>> {
        Ok(self
            .annotate_counted(documents)?
            .into_iter()
            .map(|a| a.spans)
            .collect())
    }

    /// Like [`Annotator::annotate`], with each document's token count (for throughput
    /// metrics).
    pub fn annotate_counted(&self, documents: &[Document]) -> Result<Vec<Annotation>> {
        let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
        let residuals = self.extractor.run(&texts, |_| {})?;
        documents
            .iter()
            .zip(residuals)
            .map(|(document, r)| {
                let alignment = Alignment::new(document, &r.encoding.offsets)?;
                let activations = self.subset.encode(&r.rows)?;
                let spans =
                    self.decoder
                        .decode(document, &alignment, Activations::Dense(&activations))?;
                Ok(Annotation {
                    spans,
                    tokens: r.encoding.ids.len(),
                })
            })
            .collect()
    }

    /// The spans of each document, or why it failed: annotated together, and one by one if
    /// that fails, so one bad document costs only its own result. A document for which
    /// `in_pieces` holds is annotated alone, piece by piece ([`Annotator::annotate_long`]).
    pub fn annotate_each(
        &self,
        documents: &[Document],
        in_pieces: impl Fn(&Document) -> bool,
    ) -> Vec<Result<Vec<Span>>> {
        let together: Vec<Document> = documents
            .iter()
            .filter(|d| !in_pieces(d))
            .cloned()
            .collect();
        let mut together = self.annotate(&together).ok().map(Vec::into_iter);
        documents
            .iter()
            .map(|document| {
                if in_pieces(document) {
                    let mut spans = Vec::new();
                    self.annotate_long(&document.id, &document.text, |span| {
                        spans.push(span);
                        Ok::<_, Error>(())
                    })?;
                    return Ok(spans);
                }
                match together.as_mut() {
                    Some(spans) => Ok(spans.next().expect("one result per document")),
                    None => self
                        .annotate(std::slice::from_ref(document))
                        .map(|mut v| v.remove(0)),
                }
            })
            .collect()
    }

    /// The spans of one text of any length, in order, each passed to `emit` as soon as its
    /// piece is done. A text longer than [`PIECE_BYTES`] is annotated piece by piece (see
    /// [`Annotator::annotate_pieces`]), so memory is bounded by a piece rather than the text.
    /// A shorter text gets exactly what [`Annotator::annotate`] gives it.
    pub fn annotate_long<E: From<Error>>(
        &self,
        id: &str,
        text: &str,
        mut emit: impl FnMut(Span) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for piece in self.annotate_pieces(id, text, PIECE_BYTES) {
            for span in piece?.spans {
                emit(span)?;
            }
        }
        Ok(())
    }

    /// One text annotated piece by piece (see [`pieces`]), lazily: each item is one piece's
    /// spans and the tokens the model read for it, and the model runs only when the next item
    /// is asked for, so a caller can stop between pieces (a server whose client gave up).
    /// Span `start`/`end` are code points into the whole text, while `sentence` and `word_*`
    /// count within the piece. A span that crosses a piece boundary is cut there, which is
    /// why pieces end at line breaks or sentence ends where they can. A text of at most
    /// `piece_bytes` is one piece and gets exactly what [`Annotator::annotate_counted`]
    /// gives it.
    pub fn annotate_pieces<'t>(
        &'t self,
        id: &'t str,
        text: &'t str,
        piece_bytes: usize,
    ) -> impl Iterator<Item = Result<Annotation>> + 't {
        // Code points of text[..at], advanced piece by piece (contexts never move back).
        let (mut at, mut chars_before) = (0, 0);
        pieces(text, piece_bytes, CONTEXT_BYTES)
            .into_iter()
            .map(move |piece| {
                chars_before += text[at..piece.context].chars().count();
                at = piece.context;
                let own_from = text[piece.context..piece.start].chars().count();
                let document =
                    Document::from_text(id.to_string(), text[piece.context..piece.end].to_string());
                let annotation = self
                    .annotate_counted(std::slice::from_ref(&document))?
                    .remove(0);
                let spans = annotation
                    .spans
                    .into_iter()
                    // A span starting in the context was found by the piece before.
                    .filter(|span| span.start >= own_from)
                    .map(|mut span| {
                        span.start += chars_before;
                        span.end += chars_before;
                        span
                    })
                    .collect();
                Ok(Annotation {
                    spans,
                    tokens: annotation.tokens,
                })
            })
    }
}

/// Texts longer than this many bytes are annotated piece by piece by
/// [`Annotator::annotate_long`], so memory does not grow with the text (~16k tokens a piece,
/// well inside the model's 32k context, about 0.6 GB of activations).
pub const PIECE_BYTES: usize = 64 * 1024;
/// Text before each piece that the model reads as left context (~2k tokens, as the model's
/// window overlap, four times the local attention span), so no token loses context at a
/// piece boundary and no seam makes a spurious massive activation (`WindowOptions`).
const CONTEXT_BYTES: usize = 8 * 1024;

/// One piece of a long text: the model reads `text[context..end]` and spans starting in
/// `text[start..end]` are kept. All three are byte offsets on char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub context: usize,
    pub start: usize,
    pub end: usize,
}

/// Cuts `text` into consecutive pieces of at most `piece_bytes` (when a cut can be found:
/// a line break, else a sentence end, else a space in the second half of the piece, else
/// the nearest char boundary), each with up to `context_bytes` of the text before it as
/// context, starting after a space. The `start..end` ranges tile the text.
pub fn pieces(text: &str, piece_bytes: usize, context_bytes: usize) -> Vec<Piece> {
    let piece_bytes = piece_bytes.max(8);
    let mut out: Vec<Piece> = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = if text.len() - start <= piece_bytes {
            text.len()
        } else {
            cut(text, start, start + piece_bytes)
        };
        let mut context = floor_char_boundary(text, start.saturating_sub(context_bytes));
        if context < start {
            // Begin the context at a word start, not inside a word.
            context = text[context..start]
                .find(char::is_whitespace)
                .map_or(start, |i| context + i);
        }
        // Never before the previous piece's context, so contexts only move forward.
        context = context.max(out.last().map_or(0, |p| p.context));
        out.push(Piece {
            context,
            start,
            end,
        });
        start = end;
    }
    out
}

/// Where to end a piece that may reach `limit`: just after the last line break, sentence end
/// or space in `text[start + half..limit]`, else at `limit` (on a char boundary).
fn cut(text: &str, start: usize, limit: usize) -> usize {
    let limit = floor_char_boundary(text, limit);
    let half = ceil_char_boundary(text, start + (limit - start) / 2);
    let window = &text[half..limit];
    let after = |i: Option<usize>, len: usize| i.map(|i| half + i + len);
    after(window.rfind('\n'), 1)
        .or_else(|| after(window.rfind(". "), 2))
        .or_else(|| after(window.rfind(char::is_whitespace), 1))
        .map(|i| ceil_char_boundary(text, i))
        .filter(|&i| i > start && i <= limit)
        .unwrap_or(if limit > start {
            limit
        } else {
            ceil_char_boundary(text, start + 1)
        })
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::check_pieces;

    #[test]
    fn pieces_end_at_line_breaks_then_sentences_then_spaces() {
        let text = "Alpha beta.\nGamma delta. Epsilon zeta eta theta iota kappa";
        let p = pieces(text, 20, 6);
        assert_eq!(&text[p[0].start..p[0].end], "Alpha beta.\n");
        assert_eq!(&text[p[1].start..p[1].end], "Gamma delta. ");
        // Context starts after a space: whole words only.
        assert_eq!(&text[p[1].context..p[1].start], "\n");
        for (piece, context) in [(8, 0), (20, 6), (64, 16), (1000, 100)] {
            check_pieces(text, piece, context);
            check_pieces(
                "ééééééééééééééééééééé 日本語日本語日本語日本語",
                piece,
                context,
            );
            check_pieces(&"x".repeat(100), piece, context);
        }
        assert!(pieces("", 10, 2).is_empty());
    }
}
