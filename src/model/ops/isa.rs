//! Which instruction set the operators' arithmetic runs with, chosen once per process from what
//! the CPU has, and the one place that switches to it.
//!
//! The operators are written once, generic over [`Arith`]: the few operations whose code
//! matters (a multiply-add, the matrix-product tile of [`super::gemm`]) come from it, the rest is
//! plain Rust over fixed-size arrays. On x86_64 with AVX2 and FMA (every Lambda x86_64 host,
//! every x86_64 CPU of the last decade) the tile is written with those instructions through
//! [`pulp`]'s safe wrappers, whose `vectorize` also does the `#[target_feature]` switch, so this
//! crate needs no `unsafe`; on aarch64 (Graviton2 included) with NEON, likewise. Any other CPU
//! runs the portable tile: plain loops, with separate multiplies and adds.
//!
//! Everything a kernel calls inside [`Isa::run`] must be `#[inline(always)]`: a function that is
//! not inlined is compiled for the base instruction set, whatever its caller enables.

use super::gemm::{self, Tile, MR};

/// Lanes of [`Arith::V`]: one AVX2 register, two NEON registers.
pub const LANES: usize = 8;

/// `LANES` values of `from` starting at `at`, as a fixed-size array for [`Arith::load`] (the
/// caller checked they exist).
#[inline(always)]
pub fn lanes(from: &[f32], at: usize) -> &[f32; LANES] {
    from[at..at + LANES].try_into().unwrap_or(&[0.0; LANES])
}

/// The same, to write with [`Arith::store`].
#[inline(always)]
pub fn lanes_mut(to: &mut [f32], at: usize) -> &mut [f32; LANES] {
    (&mut to[at..at + LANES])
        .try_into()
        .unwrap_or_else(|_| unreachable!("the caller checked the range"))
}

/// The arithmetic of one instruction set.
pub trait Arith: Copy {
    /// [`LANES`] f32 values in registers.
    type V: Copy;

    /// `a × b + c`: fused (one rounding) where the instruction set has it.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;

    /// Loads [`LANES`] values.
    fn load(self, from: &[f32; LANES]) -> Self::V;
    /// Stores [`LANES`] values.
    fn store(self, v: Self::V, to: &mut [f32; LANES]);
    /// `a + b`, lane by lane.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`, lane by lane.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a × b + c`, lane by lane.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `x` in every lane.
    fn splat(self, x: f32) -> Self::V;
    /// The larger of `a` and `b`, lane by lane (`b` where either is NaN: with `b` zero, a ReLU).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;

    /// `acc[r][c] += Σ_k a[r][k] × b[k][c]` over the length of the `a` rows (all equal), `b`
    /// being that many rows of one packed panel ([`gemm::PackedB::panel`]).
    fn tile(self, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]);
}

/// Plain loops, a multiply then an add (without the FMA instruction, `f32::mul_add` would be a
/// library call).
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Arith for Portable {
    type V = [f32; LANES];

    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }

    #[inline(always)]
    fn load(self, from: &[f32; LANES]) -> Self::V {
        *from
    }

    #[inline(always)]
    fn store(self, v: Self::V, to: &mut [f32; LANES]) {
        *to = v;
    }

    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] + b[l])
    }

    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] - b[l])
    }

    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] * b[l] + c[l])
    }

    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; LANES]
    }

    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| if a[l] > b[l] { a[l] } else { b[l] })
    }

    #[inline(always)]
    fn tile(self, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
        gemm::tile_portable(acc, a, b);
    }
}

/// AVX2 and FMA (x86-64-v3).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct Avx2Fma(pub pulp::x86::V3);

#[cfg(target_arch = "x86_64")]
impl Arith for Avx2Fma {
    type V = std::arch::x86_64::__m256;

    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }

    #[inline(always)]
    fn load(self, from: &[f32; LANES]) -> Self::V {
        pulp::cast(*from)
    }

    #[inline(always)]
    fn store(self, v: Self::V, to: &mut [f32; LANES]) {
        *to = pulp::cast(v);
    }

    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        self.0.avx._mm256_add_ps(a, b)
    }

    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        self.0.avx._mm256_sub_ps(a, b)
    }

    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        self.0.fma._mm256_fmadd_ps(a, b, c)
    }

    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        self.0.avx._mm256_set1_ps(x)
    }

    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        // vmaxps returns its second operand when either is NaN.
        self.0.avx._mm256_max_ps(a, b)
    }

    #[inline(always)]
    fn tile(self, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
        gemm::tile_avx2(self.0, acc, a, b);
    }
}

/// NEON, with its fused multiply-add.
#[cfg(target_arch = "aarch64")]
#[derive(Debug, Clone, Copy)]
pub struct Neon(pub pulp::aarch64::Neon);

#[cfg(target_arch = "aarch64")]
impl Arith for Neon {
    type V = [std::arch::aarch64::float32x4_t; 2];

    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }

    #[inline(always)]
    fn load(self, from: &[f32; LANES]) -> Self::V {
        pulp::cast(*from)
    }

    #[inline(always)]
    fn store(self, v: Self::V, to: &mut [f32; LANES]) {
        *to = pulp::cast(v);
    }

    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        [
            self.0.neon.vaddq_f32(a[0], b[0]),
            self.0.neon.vaddq_f32(a[1], b[1]),
        ]
    }

    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        [
            self.0.neon.vsubq_f32(a[0], b[0]),
            self.0.neon.vsubq_f32(a[1], b[1]),
        ]
    }

    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        [
            self.0.neon.vfmaq_f32(c[0], a[0], b[0]),
            self.0.neon.vfmaq_f32(c[1], a[1], b[1]),
        ]
    }

    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [self.0.neon.vdupq_n_f32(x); 2]
    }

    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        // fmax would return the NaN; a compare and a select give `b` as the other ISAs do.
        let pick = |a, b| {
            let greater = self.0.neon.vcgtq_f32(a, b);
            self.0.neon.vbslq_f32(greater, a, b)
        };
        [pick(a[0], b[0]), pick(a[1], b[1])]
    }

    #[inline(always)]
    fn tile(self, acc: &mut Tile, a: [&[f32]; MR], b: &[f32]) {
        gemm::tile_neon(self.0, acc, a, b);
    }
}

/// The work handed to [`Isa::run`]: generic over the arithmetic, so that one body serves every
/// instruction set.
pub trait Kernel {
    /// What the work returns.
    type Output;
    /// Does the work; must inline everything it calls (see the module's documentation).
    fn run<A: Arith>(self, arith: A) -> Self::Output;
}

/// An instruction set the arithmetic can run with on this CPU.
#[derive(Debug, Clone, Copy)]
pub enum Isa {
    /// Plain Rust, for any CPU.
    Portable,
    /// AVX2 and FMA (x86-64-v3), detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(pulp::x86::V3),
    /// NEON (aarch64), detected at run time.
    #[cfg(target_arch = "aarch64")]
    Neon(pulp::aarch64::Neon),
}

impl Isa {
    /// The fastest instruction set this CPU has, detected once.
    pub fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available().pop().unwrap_or(Isa::Portable))
    }

    /// Every instruction set this CPU can run the arithmetic with, slowest first (the tests run
    /// each one).
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            all.push(Isa::Avx2Fma(v3));
        }
        #[cfg(target_arch = "aarch64")]
        if let Some(neon) = pulp::aarch64::Neon::try_new() {
            all.push(Isa::Neon(neon));
        }
        all
    }

    /// Its name, for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma(_) => "avx2+fma",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(_) => "neon",
        }
    }

    /// Runs `kernel` compiled for this instruction set.
    #[inline(always)]
    pub fn run<K: Kernel>(self, kernel: K) -> K::Output {
        match self {
            Isa::Portable => kernel.run(Portable),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma(v3) => v3.vectorize(WithArith(kernel, Avx2Fma(v3))),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(neon) => neon.vectorize(WithArith(kernel, Neon(neon))),
        }
    }
}

/// A kernel and the arithmetic to run it with, as pulp's `vectorize` takes work. Not a closure:
/// the compiler may leave a large closure out of line, compiled without the instruction set
/// `vectorize` enables, while this `call` is always inlined into it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
struct WithArith<K, A>(K, A);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<K: Kernel, A: Arith> pulp::NullaryFnOnce for WithArith<K, A> {
    type Output = K::Output;

    #[inline(always)]
    fn call(self) -> K::Output {
        self.0.run(self.1)
    }
}
