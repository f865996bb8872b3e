//! The tokenizer against the golden reference (`tokenizer.jsonl`, produced by Hugging Face /
//! SentencePiece from the same GGUF): the 635 cases in `fixtures/golden/gemma3-270m/`, and all
//! 1,035 in the shared folder when it is there. Needs the model file, fetched on first use.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use saener_lm::Tokenizer;

struct Case {
    text: String,
    ids: Vec<u32>,
}

fn read_cases(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("golden line is JSON");
            Case {
                text: v["text"].as_str().expect("text").to_string(),
                ids: v["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|x| x.as_u64().expect("id") as u32)
                    .collect(),
            }
        })
        .collect()
}

/// The repository's golden cases: the reference's biomedical sentences and edge cases (its
/// CoNLL-2003 sentences may not live in the repository).
fn golden() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        read_cases(&saener_test_support::fixture(
            "golden/gemma3-270m/tokenizer.jsonl",
        ))
    })
}

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = saener_lm::ensure_default_model().expect("fetching the default model");
        let t0 = Instant::now();
        let tok = Tokenizer::from_gguf(&path).expect("load tokenizer");
        eprintln!("tokenizer loaded in {:.3} s", t0.elapsed().as_secs_f64());
        tok
    })
}

/// Every case's ids equal the reference's; prints a rough throughput (best of three).
fn check_ids(cases: &[Case]) {
    let tok = tokenizer();
    let piece = |id: &u32| tok.token(*id).unwrap_or("?").to_string();
    let mut secs = f64::INFINITY;
    let mut encodings = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        encodings = cases.iter().map(|c| tok.encode(&c.text)).collect();
        secs = secs.min(t0.elapsed().as_secs_f64());
    }
    let n_tokens: usize = encodings.iter().map(|e| e.ids.len()).sum();
    eprintln!(
        "encoded {} texts, {n_tokens} tokens in {secs:.4} s ({:.0} tokens/s)",
        cases.len(),
        n_tokens as f64 / secs
    );
    let mismatches: Vec<_> = cases
        .iter()
        .zip(&encodings)
        .filter(|(c, e)| c.ids != e.ids)
        .collect();
    let matched = cases.len() - mismatches.len();
    eprintln!("golden: {matched}/{} match", cases.len());
    for (c, e) in mismatches.iter().take(5) {
        eprintln!("text {:?}", c.text);
        eprintln!("  ours   {:?}", e.ids.iter().map(piece).collect::<Vec<_>>());
        eprintln!("  golden {:?}", c.ids.iter().map(piece).collect::<Vec<_>>());
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} golden cases differ",
        mismatches.len(),
        cases.len()
    );
}

#[test]
fn golden_ids_match_exactly() {
    assert_eq!(golden().len(), 635, "fixture should have 635 cases");
    check_ids(golden());
}

#[test]
fn golden_ids_match_exactly_on_the_full_shared_set() {
    let Some(path) = saener_test_support::shared("golden/gemma3-270m/tokenizer.jsonl") else {
        return;
    };
    let cases = read_cases(&path);
    assert_eq!(cases.len(), 1035, "golden file should have 1,035 cases");
    check_ids(&cases);
}

#[test]
fn offsets_tile_the_text_and_slice_to_the_pieces() {
    let tok = tokenizer();
    for case in golden() {
        let chars: Vec<char> = case.text.chars().collect();
        let enc = tok.encode(&case.text);
        assert_eq!(enc.ids.len(), enc.offsets.len());
        assert_eq!(enc.offsets[0], (0, 0), "BOS span");
        let mut end = 0;
        for (&id, &(s, e)) in enc.ids.iter().zip(&enc.offsets).skip(1) {
            let piece = tok.token(id).unwrap();
            assert!(
                s < e && e <= chars.len(),
                "{:?}: bad span {s}..{e}",
                case.text
            );
            if is_byte_piece(piece) {
                // Byte pieces of one character share its span; a new character starts at `end`.
                assert!(
                    s == end || (e == end && e == s + 1),
                    "{:?}: gap at {s}",
                    case.text
                );
                assert_eq!(e, s + 1, "{:?}: byte piece spans one char", case.text);
            } else {
                assert_eq!(
                    s, end,
                    "{:?}: token {piece:?} does not start at {end}",
                    case.text
                );
                let slice: String = chars[s..e].iter().collect();
                assert_eq!(
                    slice,
                    piece.replace('▁', " "),
                    "{:?}: span {s}..{e}",
                    case.text
                );
            }
            end = e;
        }
        assert_eq!(
            end,
            chars.len(),
            "{:?}: offsets do not reach the end",
            case.text
        );
    }
}

#[test]
fn decode_round_trips_the_golden_texts() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.bos_id(), 2);
    for case in golden() {
        assert_eq!(tok.decode(&case.ids), case.text);
        assert_eq!(tok.encode_without_bos(&case.text).ids, case.ids[1..]);
    }
}

fn is_byte_piece(piece: &str) -> bool {
    piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>')
}

#[test]
fn long_document_is_fast_and_tiles() {
    let tok = tokenizer();
    // ~88k characters, a single BPE segment wherever no newline or double space intervenes.
    let text = golden()
        .iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let t0 = Instant::now();
    let enc = tok.encode(&text);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "one document of {} chars: {} tokens in {secs:.4} s",
        text.chars().count(),
        enc.ids.len()
    );
    assert_eq!(enc.offsets.last().unwrap().1, text.chars().count());
    assert!(enc
        .offsets
        .windows(2)
        .all(|w| w[0].1 <= w[1].1 && w[0].0 <= w[1].0));
    assert_eq!(tok.decode(&enc.ids), text);
}
