//! Which matrix-product kernels tract may use on this CPU.
//!
//! tract 0.23 picks its AVX-512 kernels whenever the CPU reports `avx512f`. AMD's Zen 4 runs
//! AVX-512 as two 256-bit halves, and there the AVX2+FMA kernels are faster for DenseNet-121
//! (README, "Performance": measured with `TRACT_CPU_ISA=-avx512f`). So on AMD CPUs that report
//! AVX-512 we withdraw it from tract's choice. This sits below the environment: a
//! `TRACT_CPU_ISA` set by the user always wins.

/// The edit applied to tract's detected instruction set on this machine, if any.
pub fn tune() -> Option<&'static str> {
    if std::env::var_os("TRACT_CPU_ISA").is_some() || !amd_with_avx512() {
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

#[cfg(target_arch = "x86_64")]
fn amd_with_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .any(|l| l.starts_with("vendor_id") && l.ends_with("AuthenticAMD"))
        })
}

#[cfg(not(target_arch = "x86_64"))]
fn amd_with_avx512() -> bool {
    false
}
