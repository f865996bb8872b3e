//! The activation store: residual-stream rows on disk, written in resumable shards and read
//! back in a deterministic shuffled order.
//!
//! # Layout of a store directory
//!
//! - `store.json`: `{"format": "saener-activation-store", "version": 1, "model", "layer",
//!   "corpus_checksum", "d", "dtype", "rows_per_shard"}` ([`StoreMeta`] plus a format tag).
//! - `shard-000123.bin`: `n_rows * d` values, row-major, little-endian, in the store's
//!   [`Dtype`] (`f16` by default), no header.
//! - `shard-000123.json`: the sidecar [`ShardInfo`] `{"index", "n_rows", "d", "doc_start",
//!   "doc_end", "sha256"}`, where `sha256` is the hex digest of the `.bin` file and
//!   `doc_start..doc_end` the source-document ids whose tokens the shard holds.
//!
//! Every file is written to a `.tmp` name, fsynced and renamed, and the sidecar only after its
//! data: a shard is finished exactly when its sidecar exists, so a crash mid-shard leaves at
//! most a stale `.tmp` or an orphan `.bin` that the resumed writer overwrites.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rng::Rng;
use crate::{io_err, Error, Result};

const FORMAT: &str = "saener-activation-store";
const VERSION: u32 = 1;
// Tags that keep the shard-order and row-order RNG streams apart.
const TAG_SHARD_ORDER: u64 = 1;
const TAG_ROW_ORDER: u64 = 2;
const TAG_SAMPLE: u64 = 3;

/// How values are stored in shard files.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE half: 10 mantissa bits; values beyond ±65504 are rejected at write time.
    F16,
    /// bfloat16: f32's range with 7 mantissa bits, for residuals with huge outliers.
    Bf16,
    /// Full precision, twice the disk.
    F32,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 => 4,
        }
    }

    /// Appends `values` as little-endian bytes; `Err(flat index)` for a value that is not
    /// finite or does not fit the dtype.
    fn encode(self, values: &[f32], out: &mut Vec<u8>) -> std::result::Result<(), usize> {
        out.reserve(values.len() * self.size());
        for (i, &v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(i);
            }
            match self {
                Dtype::F16 => {
                    let h = f16::from_f32(v);
                    if h.is_infinite() {
                        return Err(i);
                    }
                    out.extend_from_slice(&h.to_bits().to_le_bytes());
                }
                Dtype::Bf16 => out.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes()),
                Dtype::F32 => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        Ok(())
    }

    /// Decodes little-endian `bytes` (exactly `out.len()` values) into `out`.
    fn decode(self, bytes: &[u8], out: &mut [f32]) {
        debug_assert_eq!(bytes.len(), out.len() * self.size());
        match self {
            Dtype::F16 | Dtype::Bf16 => {
                let bits: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect();
                // The slice converters use F16C/SIMD where the CPU has it.
                if self == Dtype::F16 {
                    bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
                } else {
                    bits.reinterpret_cast::<bf16>().convert_to_f32_slice(out);
                }
            }
            Dtype::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }
}

/// What a store holds. Two runs may only write to the same store if every field matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreMeta {
    /// The LM the rows come from (e.g. a GGUF file's sha256 or a model id).
    pub model: String,
    /// The residual-stream layer the rows were read at.
    pub layer: usize,
    /// Checksum of the corpus (and its tokenisation) the rows were extracted from.
    pub corpus_checksum: String,
    /// Row width (`d_model`, 640 for Gemma 3 270M).
    pub d: usize,
    /// On-disk value type.
    pub dtype: Dtype,
    /// Nominal rows per shard; a shard may hold fewer (typically the last).
    pub rows_per_shard: usize,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    format: String,
    version: u32,
    #[serde(flatten)]
    meta: StoreMeta,
}

/// One finished shard: the contents of its `shard-NNNNNN.json` sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard number, as in the file names.
    pub index: usize,
    /// Rows in the shard.
    pub n_rows: usize,
    /// Row width; always the store's `d`.
    pub d: usize,
    /// First source-document id covered.
    pub doc_start: u64,
    /// One past the last source-document id covered.
    pub doc_end: u64,
    /// Hex sha256 of the `.bin` file.
    pub sha256: String,
}

fn bin_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("shard-{index:06}.bin"))
}

fn sidecar_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("shard-{index:06}.json"))
}

/// Replaces `path` atomically: `write` fills `path.tmp`, which is fsynced and renamed over
/// `path`, then the directory is fsynced so the rename itself survives a crash.
pub(crate) fn atomic_replace(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// [`atomic_replace`] for an in-memory byte buffer.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_replace(path, |tmp| std::fs::write(tmp, bytes).map_err(io_err(tmp)))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).expect("our types always serialise");
    v.push(b'\n');
    v
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The shard indices that have a sidecar, sorted.
fn finished_shards(dir: &Path) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(num) = name
            .strip_prefix("shard-")
            .and_then(|s| s.strip_suffix(".json"))
        {
            if let Ok(i) = num.parse::<usize>() {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads a sidecar and checks it against the store and the `.bin` file's size.
fn load_sidecar(dir: &Path, meta: &StoreMeta, index: usize) -> Result<ShardInfo> {
    let path = sidecar_path(dir, index);
    let info: ShardInfo = read_json(&path)?;
    let corrupt = |reason: String| Error::CorruptShard {
        path: path.clone(),
        reason,
    };
    if info.index != index || info.d != meta.d {
        return Err(corrupt(format!(
            "sidecar says index {} d {}, expected index {index} d {}",
            info.index, info.d, meta.d
        )));
    }
    let bin = bin_path(dir, index);
    let len = std::fs::metadata(&bin).map_err(io_err(&bin))?.len();
    let want = (info.n_rows * info.d * meta.dtype.size()) as u64;
    if len != want {
        return Err(corrupt(format!(
            "{} holds {len} bytes, expected {want} for {} rows",
            bin.display(),
            info.n_rows
        )));
    }
    Ok(info)
}

/// Names the first differing field of two metas, for [`Error::StoreMismatch`].
fn meta_mismatch(dir: &Path, stored: &StoreMeta, given: &StoreMeta) -> Option<Error> {
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (
        serde_json::to_value(stored).ok()?,
        serde_json::to_value(given).ok()?,
    ) else {
        return None;
    };
    a.iter()
        .find(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| Error::StoreMismatch {
            dir: dir.to_owned(),
            field: k.clone(),
            stored: v.to_string(),
            given: b.get(k).map(|v| v.to_string()).unwrap_or_default(),
        })
}

/// Writes shards into a store directory. `write_shard` takes `&self`, so extraction threads
/// may write different shards concurrently.
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    meta: StoreMeta,
}

impl StoreWriter {
    /// Opens `dir` for writing, creating the store if absent. Returns the writer and the first
    /// shard index that is not finished (0 for a new store): the caller resumes extraction
    /// there. A store created with different [`StoreMeta`] is an [`Error::StoreMismatch`].
    pub fn create_or_resume(dir: &Path, meta: StoreMeta) -> Result<(Self, usize)> {
        if meta.d == 0 || meta.rows_per_shard == 0 {
            return Err(Error::Invalid(
                "store meta: d and rows_per_shard must be positive".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let store_json = dir.join("store.json");
        if store_json.exists() {
            let stored: StoreFile = read_json(&store_json)?;
            if stored.format != FORMAT || stored.version != VERSION {
                return Err(Error::Invalid(format!(
                    "{}: format {} v{}, expected {FORMAT} v{VERSION}",
                    store_json.display(),
                    stored.format,
                    stored.version
                )));
            }
            if let Some(e) = meta_mismatch(dir, &stored.meta, &meta) {
                return Err(e);
            }
        } else {
            let file = StoreFile {
                format: FORMAT.into(),
                version: VERSION,
                meta: meta.clone(),
            };
            atomic_write(&store_json, &to_json_bytes(&file))?;
        }
        let finished = finished_shards(dir)?;
        for &i in &finished {
            load_sidecar(dir, &meta, i)?;
        }
        let first_unfinished = finished
            .iter()
            .enumerate()
            .find(|(want, &have)| *want != have)
            .map_or(finished.len(), |(want, _)| want);
        Ok((
            StoreWriter {
                dir: dir.to_owned(),
                meta,
            },
            first_unfinished,
        ))
    }

    /// The store's metadata.
    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes shard `index` from `n_rows` row-major rows (`rows.len() == n_rows * d`) covering
    /// source documents `docs`. Data first, sidecar last, both atomically. Rewriting a finished
    /// shard is an error: its rows may already have been trained on.
    pub fn write_shard(
        &self,
        index: usize,
        rows: &[f32],
        n_rows: usize,
        docs: Range<u64>,
    ) -> Result<ShardInfo> {
        let d = self.meta.d;
        if rows.len() != n_rows * d || n_rows == 0 {
            return Err(Error::Invalid(format!(
                "shard {index}: {} values for {n_rows} rows of width {d}",
                rows.len()
            )));
        }
        let sidecar = sidecar_path(&self.dir, index);
        if sidecar.exists() {
            return Err(Error::Invalid(format!(
                "{}: shard {index} is already finished",
                sidecar.display()
            )));
        }
        let mut bytes = Vec::new();
        self.meta.dtype.encode(rows, &mut bytes).map_err(|i| {
            Error::Invalid(format!(
                "shard {index}: row {} column {} holds {}, not representable as {:?}",
                i / d,
                i % d,
                rows[i],
                self.meta.dtype
            ))
        })?;
        let info = ShardInfo {
            index,
            n_rows,
            d,
            doc_start: docs.start,
            doc_end: docs.end,
            sha256: sha256_hex(&bytes),
        };
        atomic_write(&bin_path(&self.dir, index), &bytes)?;
        atomic_write(&sidecar, &to_json_bytes(&info))?;
        Ok(info)
    }
}

/// Read access to a finished store (shards `0..m`, no gaps).
#[derive(Debug, Clone)]
pub struct StoreReader {
    dir: PathBuf,
    meta: StoreMeta,
    shards: Vec<ShardInfo>,
}

impl StoreReader {
    /// Opens a store. Only finished shards are seen; they must be numbered `0..m` without gaps
    /// (a gap means a writer is still running or crashed out of order).
    pub fn open(dir: &Path) -> Result<Self> {
        let store_json = dir.join("store.json");
        let file: StoreFile = read_json(&store_json)?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(Error::Invalid(format!(
                "{}: format {} v{}, expected {FORMAT} v{VERSION}",
                store_json.display(),
                file.format,
                file.version
            )));
        }
        let meta = file.meta;
        let mut shards = Vec::new();
        for (want, i) in finished_shards(dir)?.into_iter().enumerate() {
            if i != want {
                return Err(Error::CorruptShard {
                    path: sidecar_path(dir, want),
                    reason: format!("missing while shard {i} exists; the store has a gap"),
                });
            }
            shards.push(load_sidecar(dir, &meta, i)?);
        }
        if shards.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the store has no finished shards",
                dir.display()
            )));
        }
        Ok(StoreReader {
            dir: dir.to_owned(),
            meta,
            shards,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's metadata.
    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    /// The finished shards, by index.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// Total rows over all shards.
    pub fn n_rows(&self) -> u64 {
        self.shards.iter().map(|s| s.n_rows as u64).sum()
    }

    /// A digest of the metadata and every shard's checksum: equal fingerprints mean the same
    /// rows in the same shards. Checkpoints record it so a resumed run sees the same data.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(to_json_bytes(&self.meta));
        for s in &self.shards {
            h.update(format!("{}:{}:{}\n", s.index, s.n_rows, s.sha256));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads shard `index` as `n_rows * d` f32 values, checking its sha256.
    pub fn read_shard(&self, index: usize) -> Result<Vec<f32>> {
        let info = self.shards.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "shard {index} out of range (store has {})",
                self.shards.len()
            ))
        })?;
        let path = bin_path(&self.dir, index);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        // Hashing costs ~1 % of training time per epoch and catches disk corruption.
        let sha = sha256_hex(&bytes);
        if sha != info.sha256 || bytes.len() != info.n_rows * info.d * self.meta.dtype.size() {
            return Err(Error::CorruptShard {
                path,
                reason: format!("sha256 {sha} does not match sidecar {}", info.sha256),
            });
        }
        let mut out = vec![0.0; info.n_rows * info.d];
        self.meta.dtype.decode(&bytes, &mut out);
        Ok(out)
    }

    /// Up to `max_rows` rows of `shards`, in shard order, e.g. a held-out evaluation set.
    pub fn read_rows(&self, shards: &[usize], max_rows: usize) -> Result<Vec<f32>> {
        let d = self.meta.d;
        let mut out = Vec::new();
        for &s in shards {
            if out.len() >= max_rows * d {
                break;
            }
            let rows = self.read_shard(s)?;
            let take = (max_rows * d - out.len()).min(rows.len());
            out.extend_from_slice(&rows[..take]);
        }
        Ok(out)
    }

    /// `n` distinct rows drawn uniformly from `shards` (all of them if they hold fewer), in
    /// store order; a pure function of `seed`. Used for initialisation statistics.
    pub fn sample(&self, shards: &[usize], n: usize, seed: u64) -> Result<Vec<f32>> {
        let d = self.meta.d;
        let sizes: Vec<u64> = shards
            .iter()
            .map(|&s| self.shard(s).map(|i| i.n_rows as u64))
            .collect::<Result<_>>()?;
        let total: u64 = sizes.iter().sum();
        let n = (n as u64).min(total);
        // Floyd's algorithm: n distinct ids in O(n) without materialising 0..total.
        let mut rng = Rng::derive(seed, &[TAG_SAMPLE]);
        let mut chosen = HashSet::with_capacity(n as usize);
        for j in total - n..total {
            let t = rng.below(j + 1);
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        let mut ids: Vec<u64> = chosen.into_iter().collect();
        ids.sort_unstable();
        let row_bytes = d * self.meta.dtype.size();
        let mut out = vec![0.0; ids.len() * d];
        let mut buf = vec![0u8; row_bytes];
        let (mut shard_pos, mut shard_start) = (0usize, 0u64);
        let mut file: Option<(usize, File)> = None;
        for (k, &id) in ids.iter().enumerate() {
            while id >= shard_start + sizes[shard_pos] {
                shard_start += sizes[shard_pos];
                shard_pos += 1;
            }
            let index = shards[shard_pos];
            let path = bin_path(&self.dir, index);
            if file.as_ref().map(|(i, _)| *i) != Some(index) {
                file = Some((index, File::open(&path).map_err(io_err(&path))?));
            }
            let f = &mut file.as_mut().expect("opened above").1;
            f.seek(SeekFrom::Start((id - shard_start) * row_bytes as u64))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(io_err(&path))?;
            self.meta.dtype.decode(&buf, &mut out[k * d..(k + 1) * d]);
        }
        Ok(out)
    }

    /// A shuffled, endless stream over `shards` (see [`RowStream`]).
    pub fn stream(
        &self,
        shards: &[usize],
        seed: u64,
        window_shards: usize,
    ) -> Result<RowStream<'_>> {
        for &s in shards {
            self.shard(s)?;
        }
        let epoch_rows: u64 = shards.iter().map(|&s| self.shards[s].n_rows as u64).sum();
        if epoch_rows == 0 || window_shards == 0 {
            return Err(Error::Invalid(
                "stream needs at least one shard and window_shards >= 1".into(),
            ));
        }
        Ok(RowStream {
            reader: self,
            shards: shards.to_vec(),
            seed,
            window_shards,
            epoch_rows,
            position: 0,
            layout: None,
            window: None,
        })
    }

    fn shard(&self, index: usize) -> Result<&ShardInfo> {
        self.shards.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "shard {index} out of range (store has {})",
                self.shards.len()
            ))
        })
    }
}

/// One epoch's windows: `(shard indices, first row offset in the epoch, rows)`.
struct EpochLayout {
    epoch: u64,
    windows: Vec<(Vec<usize>, u64, u64)>,
}

struct LoadedWindow {
    epoch: u64,
    window: usize,
    rows: Vec<f32>,
    order: Vec<u32>,
}

/// An endless stream of rows from a set of shards, epoch after epoch.
///
/// The order is a pure function of `(seed, position)`: epoch `e` shuffles the shard list with
/// a stream keyed by `(seed, e)`, cuts it into windows of `window_shards` consecutive shards,
/// and emits each window's rows in a permutation keyed by `(seed, e, window)`. Resuming is
/// [`seek`](Self::seek) to the saved position; memory is one window of decoded rows
/// (`window_shards * rows_per_shard * d * 4` bytes).
pub struct RowStream<'a> {
    reader: &'a StoreReader,
    shards: Vec<usize>,
    seed: u64,
    window_shards: usize,
    epoch_rows: u64,
    position: u64,
    layout: Option<EpochLayout>,
    window: Option<LoadedWindow>,
}

impl RowStream<'_> {
    /// Rows emitted so far (over all epochs).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Rows per epoch.
    pub fn epoch_rows(&self) -> u64 {
        self.epoch_rows
    }

    /// Continues from absolute row `position`, as if that many rows had been read.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// Replaces `out` with the next `n_rows` rows (`n_rows * d` values).
    pub fn next_batch(&mut self, n_rows: usize, out: &mut Vec<f32>) -> Result<()> {
        let d = self.reader.meta.d;
        out.clear();
        out.reserve(n_rows * d);
        let mut left = n_rows as u64;
        while left > 0 {
            let epoch = self.position / self.epoch_rows;
            let offset = self.position % self.epoch_rows;
            self.ensure_layout(epoch);
            let layout = self.layout.as_ref().expect("set by ensure_layout");
            let w = layout
                .windows
                .partition_point(|&(_, start, _)| start <= offset)
                - 1;
            let (_, start, len) = layout.windows[w];
            self.ensure_window(epoch, w)?;
            let window = self.window.as_ref().expect("set by ensure_window");
            let take = left.min(start + len - offset);
            for &r in &window.order[(offset - start) as usize..(offset - start + take) as usize] {
                let r = r as usize;
                out.extend_from_slice(&window.rows[r * d..(r + 1) * d]);
            }
            self.position += take;
            left -= take;
        }
        Ok(())
    }

    fn ensure_layout(&mut self, epoch: u64) {
        if self.layout.as_ref().is_some_and(|l| l.epoch == epoch) {
            return;
        }
        let mut order = self.shards.clone();
        Rng::derive(self.seed, &[TAG_SHARD_ORDER, epoch]).shuffle(&mut order);
        let mut start = 0;
        let windows = order
            .chunks(self.window_shards)
            .map(|c| {
                let len: u64 = c.iter().map(|&s| self.reader.shards[s].n_rows as u64).sum();
                start += len;
                (c.to_vec(), start - len, len)
            })
            .collect();
        self.layout = Some(EpochLayout { epoch, windows });
    }

    fn ensure_window(&mut self, epoch: u64, w: usize) -> Result<()> {
        if self
            .window
            .as_ref()
            .is_some_and(|l| l.epoch == epoch && l.window == w)
        {
            return Ok(());
        }
        // Drop the old window first so peak memory stays at one window.
        let mut rows = self.window.take().map(|l| l.rows).unwrap_or_default();
        rows.clear();
        let layout = self.layout.as_ref().expect("layout precedes window");
        for &s in &layout.windows[w].0 {
            rows.extend_from_slice(&self.reader.read_shard(s)?);
        }
        let n = rows.len() / self.reader.meta.d;
        let mut order: Vec<u32> = (0..n as u32).collect();
        Rng::derive(self.seed, &[TAG_ROW_ORDER, epoch, w as u64]).shuffle(&mut order);
        self.window = Some(LoadedWindow {
            epoch,
            window: w,
            rows,
            order,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(d: usize) -> StoreMeta {
        StoreMeta {
            model: "gemma-3-270m".into(),
            layer: 6,
            corpus_checksum: "abc".into(),
            d,
            dtype: Dtype::F16,
            rows_per_shard: 5,
        }
    }

    /// Row `r` of the store is `[r, r + 0.5, ...]`, so rows identify themselves.
    fn write_store(dir: &Path, d: usize, sizes: &[usize]) -> StoreWriter {
        let (w, first) = StoreWriter::create_or_resume(dir, meta(d)).unwrap();
        assert_eq!(first, 0);
        let mut r = 0;
        for (i, &n) in sizes.iter().enumerate() {
            let rows: Vec<f32> = (0..n * d)
                .map(|k| (r + k / d) as f32 + (k % d) as f32 * 0.5)
                .collect();
            w.write_shard(i, &rows, n, i as u64 * 10..i as u64 * 10 + 10)
                .unwrap();
            r += n;
        }
        w
    }

    #[test]
    fn writer_resumes_and_refuses_other_meta() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), 3, &[5, 5]);
        // A crash mid-shard: data without sidecar does not count as finished.
        std::fs::write(bin_path(dir.path(), 2), b"partial").unwrap();
        let (w, first) = StoreWriter::create_or_resume(dir.path(), meta(3)).unwrap();
        assert_eq!(first, 2);
        assert!(
            w.write_shard(1, &[0.0; 3], 1, 0..1).is_err(),
            "finished shards are final"
        );
        w.write_shard(2, &[1.0; 6], 2, 20..25).unwrap();
        assert_eq!(
            StoreWriter::create_or_resume(dir.path(), meta(3))
                .unwrap()
                .1,
            3
        );
        let mut other = meta(3);
        other.layer = 7;
        let err = StoreWriter::create_or_resume(dir.path(), other).unwrap_err();
        assert!(
            matches!(&err, Error::StoreMismatch { field, .. } if field == "layer"),
            "{err}"
        );
        let r = StoreReader::open(dir.path()).unwrap();
        assert_eq!(r.n_rows(), 12);
        assert_eq!(r.shards()[2].doc_start, 20);
    }

    #[test]
    fn f16_overflow_and_nan_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = StoreWriter::create_or_resume(dir.path(), meta(2)).unwrap();
        let err = w.write_shard(0, &[1.0, 7e4], 1, 0..1).unwrap_err();
        assert!(err.to_string().contains("column 1"), "{err}");
        assert!(w.write_shard(0, &[f32::NAN, 0.0], 1, 0..1).is_err());
    }

    #[test]
    fn corruption_and_gaps_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), 2, &[5, 5, 5]);
        let bin = bin_path(dir.path(), 1);
        let mut bytes = std::fs::read(&bin).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&bin, bytes).unwrap();
        let r = StoreReader::open(dir.path()).unwrap();
        assert!(matches!(r.read_shard(1), Err(Error::CorruptShard { .. })));
        std::fs::remove_file(sidecar_path(dir.path(), 1)).unwrap();
        assert!(StoreReader::open(dir.path()).is_err());
    }

    #[test]
    fn stream_is_a_seeded_permutation_per_epoch_and_seekable() {
        let dir = tempfile::tempdir().unwrap();
        let d = 2;
        write_store(dir.path(), d, &[5, 5, 5, 5, 3]);
        let r = StoreReader::open(dir.path()).unwrap();
        let shards: Vec<usize> = (0..5).collect();
        let mut s = r.stream(&shards, 9, 2).unwrap();
        let mut all = Vec::new();
        let mut batch = Vec::new();
        for _ in 0..10 {
            s.next_batch(7, &mut batch).unwrap(); // 70 rows: 3 epochs of 23 and a bit
            all.extend_from_slice(&batch);
        }
        let ids: Vec<u32> = all.chunks(d).map(|row| row[0] as u32).collect();
        for epoch in ids.chunks(23).take(3) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            assert_eq!(
                e,
                (0..23).collect::<Vec<_>>(),
                "each epoch visits each row once"
            );
        }
        assert_ne!(&ids[..23], &ids[23..46], "epochs are reshuffled");
        assert_ne!(&ids[..23], &(0..23).collect::<Vec<_>>()[..]);
        // Rows decode exactly (small integers and halves are exact in f16).
        assert!(all.chunks(d).all(|row| row[1] == row[0] + 0.5));
        // Seeking reproduces the continuation, from a fresh stream.
        let mut t = r.stream(&shards, 9, 2).unwrap();
        t.seek(33);
        t.next_batch(20, &mut batch).unwrap();
        assert_eq!(&batch[..], &all[33 * d..53 * d]);
        // Another seed, another order.
        let mut u = r.stream(&shards, 10, 2).unwrap();
        u.next_batch(23, &mut batch).unwrap();
        assert_ne!(&batch[..], &all[..23 * d]);
    }

    #[test]
    fn sample_and_read_rows() {
        let dir = tempfile::tempdir().unwrap();
        let d = 2;
        write_store(dir.path(), d, &[5, 5, 5]);
        let r = StoreReader::open(dir.path()).unwrap();
        let s = r.sample(&[0, 2], 6, 1).unwrap();
        let ids: Vec<u32> = s.chunks(d).map(|row| row[0] as u32).collect();
        assert_eq!(ids.len(), 6);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "distinct, in store order"
        );
        assert!(
            ids.iter().all(|i| !(5..10).contains(i)),
            "only from the chosen shards"
        );
        assert_eq!(s, r.sample(&[0, 2], 6, 1).unwrap());
        assert_eq!(r.sample(&[1], 99, 1).unwrap().len(), 5 * d);
        let held = r.read_rows(&[2], 3).unwrap();
        assert_eq!(
            held.chunks(d).map(|x| x[0] as u32).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        assert_eq!(
            r.fingerprint(),
            StoreReader::open(dir.path()).unwrap().fingerprint()
        );
    }
}
