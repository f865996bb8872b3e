//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! regression corpus. Each takes arbitrary input, must not panic, and asserts the
//! invariants its reader promises (a failed assertion is a bug found).

use std::io::Cursor;
use std::path::Path;

use crate::gemma3::Config;
use crate::gguf::GgufFile;
use crate::Tokenizer;

/// The GGUF reader on arbitrary bytes, as [`GgufFile::open`] reads a file, then the model
/// config and the tokenizer from what it parsed. Errors are fine; panics and unbounded
/// allocations are not.
pub fn gguf(data: &[u8]) {
    let path = Path::new("fuzz.gguf");
    let Ok(gguf) = GgufFile::read(path.into(), &mut Cursor::new(data), data.len() as u64) else {
        return;
    };
    let _ = Config::from_gguf(&gguf);
    let _ = Tokenizer::from_gguf_content(gguf.content(), path);
}

/// The tokenizer on arbitrary text: BOS first with span (0, 0); then spans in input order
/// that tile the text (each starts where the last ended, except that the byte-fallback
/// tokens of one character repeat its span); and each other token's piece is the text at
/// its span, reading `'▁'` as a space on both sides (the text may hold `'▁'` itself, which
/// the tokenizer cannot tell from a space).
pub fn tokenize(tokenizer: &Tokenizer, text: &str) {
    let encoding = tokenizer.encode(text);
    assert_eq!(encoding.ids.len(), encoding.offsets.len());
    assert_eq!(encoding.ids.first(), Some(&tokenizer.bos_id()));
    assert_eq!(encoding.offsets[0], (0, 0));
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let mut last = (0, 0);
    for (&id, &(start, end)) in encoding.ids.iter().zip(&encoding.offsets).skip(1) {
        assert!(start < end && end <= chars.len(), "span {start}..{end}");
        let piece = tokenizer.token(id).expect("a known id");
        let byte = piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>');
        if byte && (start, end) == last {
            continue; // another byte of the same character
        }
        assert_eq!(
            start, at,
            "token {id} ({piece:?}) does not start where the last ended"
        );
        let covered: String = chars[start..end].iter().collect();
        if byte {
            assert_eq!(end - start, 1, "a byte token covers one character");
        } else {
            assert_eq!(
                piece.replace('▁', " "),
                covered.replace('▁', " "),
                "token {id}"
            );
        }
        at = end;
        last = (start, end);
    }
    assert_eq!(at, chars.len(), "the tokens do not cover the whole text");
}
