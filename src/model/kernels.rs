//! Which matrix-product kernels tract may use on this CPU, and which CPU this is.
//!
//! tract 0.23.9 picks a kernel per matrix product through a ladder of "tiers" (cost models fitted
//! on other CPUs). Its choice is only as good as the fit for the CPU at hand, so this module
//! (1) names the CPU, for every benchmark figure; (2) registers one more tier, above tract's own,
//! that names a kernel only for the products and CPUs it was measured faster on (`MEASURED`:
//! DenseNet-121 on AMD Zen 5) and otherwise leaves the choice to tract, or names the kernel a
//! measurement asked for ([`with_kernel`], used by `examples/inference_ab.rs`); and (3) withdraws
//! AVX-512 on AMD Zen 4, where it was measured slower. Everything here sits below the
//! environment: a `TRACT_CPU_ISA` set by the user always wins.

use std::cell::Cell;
use std::sync::OnceLock;

use tract_linalg::isa::IsaSet;
use tract_linalg::mmm::{Query, Suitable};
use tract_linalg::mmm_tiers::MmmTier;
use tract_onnx::prelude::DatumType;

/// The CPU as benchmarks report it and as tuning decisions are keyed: vendor, family, model, and
/// the instruction sets the matrix kernels are chosen from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// `GenuineIntel`, `AuthenticAMD`, or the architecture where there is no vendor string.
    pub vendor: String,
    /// x86 family (AMD: 23 = Zen 1-2, 25 = Zen 3-4, 26 = Zen 5); 0 elsewhere.
    pub family: u32,
    /// x86 model number; 0 elsewhere.
    pub model: u32,
    /// The marketing name (`model name`), or the architecture.
    pub name: String,
    /// AVX2, FMA and AVX-512F as the running process sees them.
    pub avx2: bool,
    /// See `avx2`.
    pub fma: bool,
    /// See `avx2`.
    pub avx512f: bool,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} family {} model {}; avx2 {}, fma {}, avx512f {})",
            self.name,
            self.vendor,
            self.family,
            self.model,
            yes(self.avx2),
            yes(self.fma),
            yes(self.avx512f)
        )
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// This machine's CPU, read once from `/proc/cpuinfo` and the runtime feature probes.
pub fn cpu() -> &'static Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    CPU.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let number = |key: &str| field(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Cpu {
            vendor: field("vendor_id").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            family: number("cpu family"),
            model: number("model"),
            name: field("model name")
                .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
                .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            avx2: feature("avx2"),
            fma: feature("fma"),
            avx512f: feature("avx512f"),
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn feature(name: &str) -> bool {
    match name {
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn feature(_: &str) -> bool {
    false
}

/// The edit applied to tract's detected instruction set on this machine, if any: `-avx512f` on
/// AMD Zen 4 (family 25 with AVX-512), where tract's AVX-512 kernels ran DenseNet-121 ~25%
/// slower than its AVX2+FMA ones (it executes 512-bit FMAs as two 256-bit halves). Zen 5
/// (family 26) has full-width AVX-512 units and keeps them (measured: `docs/performance.md`).
pub fn tune() -> Option<&'static str> {
    if std::env::var_os("TRACT_CPU_ISA").is_some() || !withdraw_avx512(cpu()) {
        return None;
    }
    let edit = "-avx512f";
    match tract_onnx::tract_core::knobs::set_config_global("TRACT_CPU_ISA", edit) {
        Ok(()) => Some(edit),
        Err(e) => {
            tracing::warn!(error = %e, "could not steer tract's kernel choice");
            None
        }
    }
}

/// Whether AVX-512 is withdrawn on this CPU: only where it was measured slower (AMD Zen 4).
fn withdraw_avx512(cpu: &Cpu) -> bool {
    cpu.avx512f && cpu.vendor == "AuthenticAMD" && cpu.family == 25
}

thread_local! {
    /// The kernel a measurement asked for, on this thread: see [`with_kernel`].
    static FORCED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// The name [`with_kernel`] takes for "tract's own choice, as if this module had no measurement".
pub const TRACT_CHOICE: &str = "tract";

/// Runs `f` (a model's optimisation) with every f32 matrix product that can run the kernel
/// `name` given that kernel, on this thread: how `examples/inference_ab.rs` measures each
/// candidate kernel on DenseNet-121's own products. Products the kernel cannot run keep tract's
/// choice; [`TRACT_CHOICE`] gives every product tract's choice.
pub fn with_kernel<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let previous = FORCED.replace(Some(name));
    struct Restore(Option<&'static str>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.set(self.0);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// A kernel measured faster than tract's own choice, on one kind of CPU, for given products.
struct Measured {
    /// The CPUs it was measured on.
    applies: fn(&Cpu) -> bool,
    /// The tract kernel to run.
    kernel: &'static str,
    /// The products `(m, k, n)` it was measured on.
    shapes: &'static [(usize, usize, usize)],
}

/// What was measured (`examples/inference_ab.rs`, `docs/performance.md`), and nothing else: on AMD
/// Zen 5 (family 26, full-width AVX-512) `avx512_mmm_f32_32x6` ran DenseNet-121 in 73 ms where
/// tract's cost model (fitted on a Ryzen 9950X3D), mixing 16x12, 32x6 and 32x5, took 95 ms; it
/// was the fastest or within noise of it on every product. The products are DenseNet-121's
/// (with the transitions pooled first, `super::rewrite`), the classifier's `n = 1` excepted.
const MEASURED: &[Measured] = &[Measured {
    applies: |cpu| cpu.vendor == "AuthenticAMD" && cpu.family == 26 && cpu.avx512f,
    kernel: "avx512_mmm_f32_32x6",
    shapes: DENSENET121_PRODUCTS,
}];

/// DenseNet-121's f32 matrix products with more than one column, `(m, k, n)` as tract queries
/// them for a batch of one 224×224 image (`tests/kernel_choice.rs` checks the list is complete).
pub const DENSENET121_PRODUCTS: &[(usize, usize, usize)] = &[
    (32, 1152, 49),
    (32, 1152, 196),
    (32, 1152, 784),
    (32, 1152, 3136),
    (64, 147, 12544),
    (128, 512, 49),
    (128, 544, 49),
    (128, 576, 49),
    (128, 608, 49),
    (128, 640, 49),
    (128, 672, 49),
    (128, 704, 49),
    (128, 736, 49),
    (128, 768, 49),
    (128, 800, 49),
    (128, 832, 49),
    (128, 864, 49),
    (128, 896, 49),
    (128, 928, 49),
    (128, 960, 49),
    (128, 992, 49),
    (196, 256, 128),
    (196, 288, 128),
    (196, 320, 128),
    (196, 352, 128),
    (196, 384, 128),
    (196, 416, 128),
    (196, 448, 128),
    (196, 480, 128),
    (196, 512, 128),
    (196, 544, 128),
    (196, 576, 128),
    (196, 608, 128),
    (196, 640, 128),
    (196, 672, 128),
    (196, 704, 128),
    (196, 736, 128),
    (196, 768, 128),
    (196, 800, 128),
    (196, 832, 128),
    (196, 864, 128),
    (196, 896, 128),
    (196, 928, 128),
    (196, 960, 128),
    (196, 992, 128),
    (256, 512, 196),
    (512, 1024, 49),
    (784, 128, 128),
    (784, 160, 128),
    (784, 192, 128),
    (784, 224, 128),
    (784, 256, 128),
    (784, 288, 128),
    (784, 320, 128),
    (784, 352, 128),
    (784, 384, 128),
    (784, 416, 128),
    (784, 448, 128),
    (784, 480, 128),
    (3136, 64, 128),
    (3136, 96, 128),
    (3136, 128, 128),
    (3136, 160, 128),
    (3136, 192, 128),
    (3136, 224, 128),
];

/// The measurements that apply to `cpu`.
fn measured_for(cpu: &Cpu) -> Vec<&'static Measured> {
    MEASURED.iter().filter(|m| (m.applies)(cpu)).collect()
}

/// The measurements that apply to this CPU.
fn measured_here() -> &'static [&'static Measured] {
    static HERE: OnceLock<Vec<&'static Measured>> = OnceLock::new();
    HERE.get_or_init(|| measured_for(cpu()))
}

/// The kernel measured fastest for this product among `measured`, if it was measured.
fn measured_kernel(measured: &[&'static Measured], query: &Query) -> Option<&'static str> {
    let shape = (query.m?, query.k?, query.n?);
    measured
        .iter()
        .find(|m| m.shapes.contains(&shape))
        .map(|m| m.kernel)
}

/// The kernel this tier names for an f32 product: the one a measurement forced, else the one
/// measured fastest on this CPU for this shape, else none (tract's tiers decide).
fn preferred(
    _isa: &IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    if accumulator != DatumType::F32 {
        return None;
    }
    match FORCED.get() {
        Some(TRACT_CHOICE) => None,
        Some(forced) => Some(forced),
        None => measured_kernel(measured_here(), query),
    }
}

/// The kernel this module chooses for an f32 product of this shape on this CPU, if any (for
/// tests and reports; tract asks the tier itself).
pub fn measured_choice(m: usize, k: usize, n: usize) -> Option<&'static str> {
    measured_kernel(
        measured_here(),
        &Query::plain(DatumType::F32, Some(m), Some(k), Some(n)),
    )
}

tract_onnx::tract_core::knobs::inventory::submit! {
    MmmTier {
        arch: None,
        precedence: 200,
        name: "densenet-lambda (measured here)",
        applies: |_| true,
        preferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_of(vendor: &str, family: u32, avx512f: bool) -> Cpu {
        Cpu {
            vendor: vendor.into(),
            family,
            model: 0,
            name: "test".into(),
            avx2: true,
            fma: true,
            avx512f,
        }
    }

    #[test]
    fn avx512_is_withdrawn_only_on_zen4() {
        assert!(withdraw_avx512(&cpu_of("AuthenticAMD", 25, true)));
        assert!(!withdraw_avx512(&cpu_of("AuthenticAMD", 26, true)));
        assert!(!withdraw_avx512(&cpu_of("AuthenticAMD", 25, false)));
        assert!(!withdraw_avx512(&cpu_of("GenuineIntel", 6, true)));
    }

    #[test]
    fn the_measured_kernel_answers_only_for_its_cpu_and_shapes() {
        let zen5 = measured_for(&cpu_of("AuthenticAMD", 26, true));
        let ask = |measured: &[&'static Measured], m, k, n| {
            measured_kernel(
                measured,
                &Query::plain(DatumType::F32, Some(m), Some(k), Some(n)),
            )
        };
        assert_eq!(ask(&zen5, 32, 1152, 3136), Some("avx512_mmm_f32_32x6"));
        assert_eq!(ask(&zen5, 784, 256, 128), Some("avx512_mmm_f32_32x6"));
        assert_eq!(
            ask(&zen5, 1000, 1024, 1),
            None,
            "the classifier keeps tract's matvec"
        );
        assert_eq!(ask(&zen5, 32, 1152, 3137), None, "an unmeasured shape");
        assert!(zen5.iter().all(|m| m.shapes == DENSENET121_PRODUCTS));
        for other in [
            cpu_of("AuthenticAMD", 25, true),
            cpu_of("AuthenticAMD", 26, false),
            cpu_of("GenuineIntel", 6, true),
        ] {
            assert_eq!(ask(&measured_for(&other), 32, 1152, 3136), None);
        }
        assert!(DENSENET121_PRODUCTS.iter().all(|&(_, _, n)| n > 1));
    }

    #[test]
    fn this_cpu_is_described() {
        let cpu = cpu();
        assert!(!cpu.name.is_empty() && !cpu.vendor.is_empty());
        assert!(cpu.to_string().contains("avx512f"));
    }

    #[test]
    fn a_forced_kernel_is_named_on_this_thread_only() {
        let query = Query::plain(DatumType::F32, Some(32), Some(64), Some(100));
        let isa = tract_linalg::isa::native();
        assert_eq!(preferred(&isa, DatumType::F32, &query, &[]), None);
        with_kernel("fma_mmm_f32_16x6", || {
            assert_eq!(
                preferred(&isa, DatumType::F32, &query, &[]),
                Some("fma_mmm_f32_16x6")
            );
            assert_eq!(preferred(&isa, DatumType::I32, &query, &[]), None);
            let measured = Query::plain(DatumType::F32, Some(32), Some(1152), Some(3136));
            with_kernel(TRACT_CHOICE, || {
                assert_eq!(preferred(&isa, DatumType::F32, &measured, &[]), None)
            });
            let other = query.clone();
            std::thread::spawn(move || {
                assert_eq!(preferred(&isa, DatumType::F32, &other, &[]), None)
            })
            .join()
            .unwrap();
        });
        assert_eq!(preferred(&isa, DatumType::F32, &query, &[]), None);
    }
}
