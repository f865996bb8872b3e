//! Which kernels run: the CPU's features (detected at run time, so one binary serves every
//! x86-64 CPU) and the arithmetic the caller asks for.

use crate::bf16::{amx_usable, bf16_shape_ok, Bf16Matrix};
use crate::gemm::F32Matrix;
use crate::int8::{int8_shape_ok, Int8Matrix};
use std::fmt;
use std::str::FromStr;

/// The instruction sets the kernels can use, detected at run time (std caches the probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpu {
    /// AVX2 and FMA: the reference f32 kernels.
    pub avx2_fma: bool,
    /// AVX-512F: the wide f32 GEMM.
    pub avx512f: bool,
    /// AVX-512BW and AVX512-VNNI (`vpdpbusd` on 512-bit registers): the int8 GEMM.
    pub avx512_vnni: bool,
    /// AVX512-BF16 (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AMX-TILE and AMX-BF16, with the operating system's permission to use the tiles:
    /// the bf16 GEMM.
    pub amx_bf16: bool,
}

impl Cpu {
    /// This CPU's features.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Self {
                avx2_fma: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                avx512f: is_x86_feature_detected!("avx512f"),
                avx512_vnni: is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni"),
                avx512_bf16: is_x86_feature_detected!("avx512bf16"),
                amx_bf16: amx_usable(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::default()
        }
    }

    /// Whether the AVX512-VNNI int8 kernel can run.
    pub fn has_int8_vnni(&self) -> bool {
        self.avx512_vnni
    }

    /// The features present, for messages and benchmark headers, e.g.
    /// `avx2+fma avx512f avx512vnni`.
    pub fn describe(&self) -> String {
        let names = [
            (self.avx2_fma, "avx2+fma"),
            (self.avx512f, "avx512f"),
            (self.avx512_vnni, "avx512bw+avx512vnni"),
            (self.avx512_bf16, "avx512bf16"),
            (self.amx_bf16, "amx-bf16"),
        ];
        let have: Vec<&str> = names.iter().filter(|(h, _)| *h).map(|(_, n)| *n).collect();
        if have.is_empty() {
            "no SIMD kernels (portable code only)".into()
        } else {
            have.join(" ")
        }
    }
}

/// The arithmetic of the model's matrix products. Everything else (attention, norms,
/// activations, the residual stream) stays f32 at every precision.
///
/// The library's default is `F32`, the reference; the CLI, the server and the Python
/// package default to `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 weights and activations: the reference. Runs the AVX-512 GEMM where present,
    /// which gives the same bits as the AVX2 one.
    #[default]
    F32,
    /// Weights and activations rounded to bf16, products summed in f32, on AMX tiles.
    Bf16,
    /// int8 weights and activations, per block of 32, integer dot products (AVX512-VNNI).
    Int8,
    /// `$SAENER_PRECISION` if set (f32, bf16 or int8: one switch for every entry point, e.g.
    /// to reproduce f32 results on any CPU), else the fastest precision this CPU runs whose
    /// strict F1 on the shipped profiles' test sets was measured within 0.3 of f32:
    /// bf16 on AMX, else int8 on AVX512-VNNI, else f32 (RESULTS.md, "Precision").
    Auto,
}

/// The variable that decides what [`Precision::Auto`] means, when set.
pub const PRECISION_VARIABLE: &str = "SAENER_PRECISION";

/// A precision this CPU or build cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    #[error("precision {precision} needs {missing}, which this CPU lacks (it has: {has})")]
    MissingInstructions {
        precision: Precision,
        missing: &'static str,
        has: String,
    },
    #[error("unknown precision '{0}': expected f32, bf16, int8 or auto")]
    Unknown(String),
    #[error("{PRECISION_VARIABLE}={0:?}: expected f32, bf16 or int8 (or unset)")]
    BadVariable(String),
}

impl Precision {
    /// The precision that will run: `Auto` resolved (reading `$SAENER_PRECISION`), and an
    /// error naming the missing instruction set if this CPU cannot run the one asked for.
    pub fn resolve(self, cpu: &Cpu) -> Result<Precision, PrecisionError> {
        self.resolve_with(cpu, std::env::var(PRECISION_VARIABLE).ok().as_deref())
    }

    /// [`Precision::resolve`] with the variable's value given.
    fn resolve_with(self, cpu: &Cpu, variable: Option<&str>) -> Result<Precision, PrecisionError> {
        match self {
            Self::Auto => match variable {
                Some(name) => match name.parse() {
                    Ok(Self::Auto) | Err(_) => Err(PrecisionError::BadVariable(name.into())),
                    Ok(chosen) => chosen.resolve_with(cpu, None),
                },
                None if cpu.amx_bf16 => Ok(Self::Bf16),
                None if cpu.has_int8_vnni() => Ok(Self::Int8),
                None => Ok(Self::F32),
            },
            Self::F32 => Ok(Self::F32),
            Self::Int8 if cpu.has_int8_vnni() => Ok(Self::Int8),
            Self::Int8 => Err(PrecisionError::MissingInstructions {
                precision: self,
                missing: "AVX512-VNNI (with AVX-512F and AVX-512BW)",
                has: cpu.describe(),
            }),
            Self::Bf16 if cpu.amx_bf16 => Ok(Self::Bf16),
            Self::Bf16 => Err(PrecisionError::MissingInstructions {
                precision: self,
                missing: "AMX-BF16 (with AMX-TILE, and an OS that grants the tile state)",
                has: cpu.describe(),
            }),
        }
    }

    /// The name used on the command line and in cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
            Self::Auto => "auto",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = PrecisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "int8" => Ok(Self::Int8),
            "auto" => Ok(Self::Auto),
            _ => Err(PrecisionError::Unknown(s.into())),
        }
    }
}

/// Which kernels to build a [`Matrix`] for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelChoice {
    /// A resolved precision ([`Precision::resolve`]): `F32`, `Bf16` or `Int8`.
    pub precision: Precision,
    /// Use AVX-512 kernels where present; `false` keeps f32 on the AVX2 reference kernel
    /// (for benchmarks: both give the same bits).
    pub avx512: bool,
}

/// A weight matrix `[n, k]` for products `x Wᵀ`, in the chosen precision.
pub enum Matrix {
    F32(F32Matrix),
    Bf16(Bf16Matrix),
    Int8(Int8Matrix),
}

impl Matrix {
    /// The row-major matrices `parts` (each `[n_i, k]`) stacked along n. At `Int8` and
    /// `Bf16`, shapes their layouts cannot hold stay f32.
    pub fn new(parts: &[&[f32]], k: usize, choice: KernelChoice) -> Self {
        let n: usize = parts.iter().map(|p| p.len() / k.max(1)).sum();
        match choice.precision {
            Precision::Int8 if int8_shape_ok(n, k) => {
                Self::Int8(Int8Matrix::new(parts, k, Cpu::detect().has_int8_vnni()))
            }
            Precision::Bf16 if bf16_shape_ok(n, k) => Self::Bf16(Bf16Matrix::new(parts, k)),
            _ => Self::F32(F32Matrix::new(parts, k, choice.avx512)),
        }
    }

    /// Rows `a[i * stride..][..k]`, `i < m`, times this matrix transposed: `[m, n]`.
    pub fn matmul(&self, a: &[f32], m: usize, stride: usize) -> Vec<f32> {
        match self {
            Self::F32(w) => w.matmul(a, m, stride),
            Self::Bf16(w) => w.matmul(a, m, stride),
            Self::Int8(w) => w.matmul(a, m, stride),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_the_fastest_and_missing_instructions_are_named() {
        let avx2_only = Cpu {
            avx2_fma: true,
            ..Cpu::default()
        };
        let auto = |cpu: &Cpu, variable| Precision::Auto.resolve_with(cpu, variable);
        assert_eq!(auto(&avx2_only, None).unwrap(), Precision::F32);
        let err = Precision::Int8.resolve(&avx2_only).unwrap_err().to_string();
        assert!(
            err.contains("AVX512-VNNI") && err.contains("avx2+fma"),
            "{err}"
        );
        let err = Precision::Bf16.resolve(&avx2_only).unwrap_err().to_string();
        assert!(err.contains("AMX-BF16"), "{err}");
        let amx = Cpu {
            amx_bf16: true,
            ..avx2_only
        };
        assert_eq!(Precision::Bf16.resolve(&amx).unwrap(), Precision::Bf16);
        let vnni_amx = Cpu {
            avx512_vnni: true,
            ..amx
        };
        assert_eq!(auto(&vnni_amx, None).unwrap(), Precision::Bf16);
        // The variable wins, is checked against the CPU, and must name a precision.
        assert_eq!(auto(&vnni_amx, Some("f32")).unwrap(), Precision::F32);
        assert_eq!(auto(&vnni_amx, Some("int8")).unwrap(), Precision::Int8);
        assert!(auto(&avx2_only, Some("int8")).is_err());
        for bad in ["auto", "fp16", ""] {
            let err = auto(&avx2_only, Some(bad)).unwrap_err().to_string();
            assert!(err.contains("SAENER_PRECISION"), "{err}");
        }
        let vnni = Cpu {
            avx512_vnni: true,
            ..avx2_only
        };
        assert_eq!(Precision::Int8.resolve(&vnni).unwrap(), Precision::Int8);
        assert_eq!(auto(&vnni, None).unwrap(), Precision::Int8);
        for p in [
            Precision::F32,
            Precision::Bf16,
            Precision::Int8,
            Precision::Auto,
        ] {
            assert_eq!(p.as_str().parse::<Precision>().unwrap(), p);
        }
        assert!("fp16".parse::<Precision>().is_err());
    }
}
