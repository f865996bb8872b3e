//! Filling an activation store from text: the LM runs over documents in order and their
//! residual rows (BOS excluded) are cut into shards of whole documents.
//!
//! Shard boundaries depend only on the documents and `rows_per_shard`, so a killed run
//! resumes after the last finished shard (its sidecar records where it ended) and produces
//! the same store as an uninterrupted one.

use crate::{Error, Result, StoreReader, StoreWriter};
use saener_lm::residuals::Extractor;

/// Documents handed to the LM per call: enough for length-sorted batching to pay off.
const DOCS_PER_CALL: usize = 64;

/// Extracts `documents` into `writer`'s store, starting at shard `first_shard` (as returned
/// by [`StoreWriter::create_or_resume`]) and stopping once `max_shards` shards exist (a
/// reproducible prefix of the corpus). `progress(tokens)` is called as work finishes.
pub fn extract_to_store(
    documents: &[&str],
    extractor: &Extractor,
    writer: &StoreWriter,
    first_shard: usize,
    max_shards: Option<usize>,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    let meta = writer.meta().clone();
    let mut next_doc = if first_shard == 0 {
        0
    } else {
        let reader = StoreReader::open(writer.dir())?;
        reader.shards()[first_shard - 1].doc_end as usize
    };
    let mut shard = first_shard;
    let mut rows: Vec<f32> = Vec::with_capacity(meta.rows_per_shard * meta.d);
    let mut shard_start = next_doc;
    while next_doc < documents.len() && max_shards.is_none_or(|max| shard < max) {
        let end = (next_doc + DOCS_PER_CALL).min(documents.len());
        let batch = extractor
            .run(&documents[next_doc..end], &mut progress)
            .map_err(|e| Error::Invalid(format!("documents {next_doc}..{end}: {e}")))?;
        for (i, residuals) in batch.into_iter().enumerate() {
            // Row 0 is the BOS: its norm dwarfs every other row's and it carries no text.
            rows.extend_from_slice(&residuals.rows[meta.d..]);
            let doc_end = next_doc + i + 1;
            if rows.len() >= meta.rows_per_shard * meta.d || doc_end == documents.len() {
                if !rows.is_empty() {
                    let n_rows = rows.len() / meta.d;
                    writer.write_shard(shard, &rows, n_rows, shard_start as u64..doc_end as u64)?;
                    shard += 1;
                    if max_shards.is_some_and(|max| shard >= max) {
                        return Ok(());
                    }
                }
                rows.clear();
                shard_start = doc_end;
            }
        }
        next_doc = end;
    }
    Ok(())
}
