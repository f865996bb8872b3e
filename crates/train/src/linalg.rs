//! Top-k selection over the encoder's output rows. The dense kernels (encoder product, dot,
//! axpy) are in `saener-kernels`.

// Latents per panel of the encoder product, whose maxima let selection skip panels.
use saener_kernels::gemm::NR;

/// Keeps the `k` largest positive `(value, index)` pairs offered to it. Ties keep the pair
/// offered first, so with indices offered in increasing order the lower index wins and the
/// selection is deterministic.
#[derive(Default)]
pub(crate) struct TopK {
    k: usize,
    /// Values at or below this never enter (0 by default: only positives are kept).
    min_floor: f32,
    // Binary min-heap whose root is the worst kept pair.
    heap: Vec<(f32, u32)>,
    scratch: Vec<f32>,
}

/// `a` is worse than `b`: smaller value, or equal value offered later (higher index).
#[inline]
fn worse(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
}

impl TopK {
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.min_floor = 0.0;
        self.heap.clear();
    }

    /// Values at or below this cannot enter.
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            self.min_floor
        } else {
            self.heap[0].0.max(self.min_floor)
        }
    }

    /// Offers a pair; the caller has checked `value > self.floor()`.
    #[inline]
    pub(crate) fn push(&mut self, value: f32, index: u32) {
        let h = &mut self.heap;
        if h.len() < self.k {
            h.push((value, index));
            let mut i = h.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if worse(h[i], h[p]) {
                    h.swap(i, p);
                    i = p;
                } else {
                    break;
                }
            }
        } else {
            h[0] = (value, index);
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < h.len() && worse(h[l], h[m]) {
                    m = l;
                }
                if r < h.len() && worse(h[r], h[m]) {
                    m = r;
                }
                if m == i {
                    break;
                }
                h.swap(i, m);
                i = m;
            }
        }
    }

    /// Offers `row[j]` for every `j`.
    pub(crate) fn scan(&mut self, row: &[f32]) {
        const W: usize = 16;
        let mut floor = self.floor();
        for (c, chunk) in row.chunks(W).enumerate() {
            // Cheap vectorised chunk maximum first: once the heap is full almost every chunk
            // is rejected here.
            let mx = chunk
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            if mx > floor {
                self.scan_from(chunk, c * W, &mut floor);
            }
        }
    }

    /// Offers `row[j]` for every `j`, skipping each 16-latent panel whose maximum (from
    /// [`Encoder::matmul`]) cannot enter, without reading it.
    ///
    /// The k-th largest panel maximum `m` is a lower bound on the k-th largest value (k
    /// panels each hold a value `>= m`), so values below it are skipped from the start: far
    /// fewer heap pushes than a scan whose floor has to climb from 0, same result.
    pub(crate) fn scan_panels(&mut self, row: &[f32], maxima: &[f32]) {
        if self.k > 0 && self.k <= maxima.len() {
            self.scratch.clear();
            self.scratch.extend_from_slice(maxima);
            let m = *self
                .scratch
                .select_nth_unstable_by(self.k - 1, |a, b| b.total_cmp(a))
                .1;
            if m > 0.0 && m.is_finite() {
                // The largest float below m, so that m itself still enters.
                self.min_floor = f32::from_bits(m.to_bits() - 1);
            }
        }
        let mut floor = self.floor();
        for (p, &m) in maxima.iter().enumerate() {
            if m > floor {
                let start = p * NR;
                self.scan_from(&row[start..(start + NR).min(row.len())], start, &mut floor);
            }
        }
    }

    #[inline]
    fn scan_from(&mut self, values: &[f32], first: usize, floor: &mut f32) {
        for (i, &v) in values.iter().enumerate() {
            if v > *floor {
                self.push(v, (first + i) as u32);
                *floor = self.floor();
            }
        }
    }

    /// Offers `row[j]` for the listed `j` only (ascending).
    pub(crate) fn scan_subset(&mut self, row: &[f32], subset: &[u32]) {
        let mut floor = self.floor();
        for &j in subset {
            let v = row[j as usize];
            if v > floor {
                self.push(v, j);
                floor = self.floor();
            }
        }
    }

    /// The kept pairs as `(index, value)`, sorted by index, replacing `out`'s contents.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<(u32, f32)>) {
        out.clear();
        out.extend(self.heap.drain(..).map(|(v, j)| (j, v)));
        out.sort_unstable_by_key(|&(j, _)| j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saener_kernels::Encoder;

    #[test]
    fn encoder_matches_naive_for_ragged_shapes() {
        // 13 rows (two full tiles and a partial one) and 37 latents (a partial panel).
        let (rows, d, n) = (13, 11, 37);
        let x: Vec<f32> = (0..rows * d).map(|i| ((i * 7) % 19) as f32 - 9.0).collect();
        let w: Vec<f32> = (0..n * d)
            .map(|i| ((i * 5) % 17) as f32 * 0.25 - 2.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 - 20.0).collect();
        let mut enc = Encoder::default();
        enc.pack(&w, &bias, n, d);
        let np = enc.panel_count();
        let mut out = vec![f32::NAN; rows * n];
        let mut maxima = vec![f32::NAN; rows * np];
        enc.matmul(&x, &w, &mut out, &mut maxima);
        for i in 0..rows {
            for j in 0..n {
                let want: f32 = (0..d).map(|c| x[i * d + c] * w[j * d + c]).sum::<f32>() + bias[j];
                assert_eq!(out[i * n + j], want, "({i}, {j})"); // small integers: exact
            }
            for p in 0..np {
                let panel = &out[i * n + p * NR..i * n + ((p + 1) * NR).min(n)];
                let mx = panel.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                // The padded lanes of the last panel hold 0, so its maximum is at least 0.
                let mx = if (p + 1) * NR > n { mx.max(0.0) } else { mx };
                assert_eq!(maxima[i * np + p], mx, "row {i} panel {p}");
            }
        }
        // Panel-skipping selection agrees with a full scan.
        let (mut a, mut b) = (TopK::default(), TopK::default());
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for i in 0..rows {
            a.reset(3);
            a.scan_panels(&out[i * n..(i + 1) * n], &maxima[i * np..(i + 1) * np]);
            a.drain_into(&mut got);
            b.reset(3);
            b.scan(&out[i * n..(i + 1) * n]);
            b.drain_into(&mut want);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn topk_keeps_largest_positive_with_index_tiebreak() {
        let row: Vec<f32> = (0..50)
            .map(|i| ((i * 37) % 50) as f32 - 20.0)
            .chain([29.0, 29.0, -1.0])
            .collect();
        let mut t = TopK::default();
        t.reset(4);
        t.scan(&row);
        let mut out = Vec::new();
        t.drain_into(&mut out);
        let mut want: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .map(|(j, &v)| (j as u32, v))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(4);
        want.sort_by_key(|x| x.0);
        assert_eq!(out, want);
        // Only positives enter, and a subset scan respects the subset.
        t.reset(10);
        t.scan_subset(&[-1.0, 2.0, 3.0, 0.0], &[0, 1, 3]);
        t.drain_into(&mut out);
        assert_eq!(out, [(1, 2.0)]);
    }
}
