//! How many `vpmaddwd` (the int8 kernel's multiply) and `vaddps` this x86-64 core issues per
//! nanosecond: twelve independent accumulators each, so neither loop waits on a latency. Zen 3
//! issues two `vaddps` per cycle, so the `vaddps` rate gives the clock, and the ratio of the two
//! rates the `vpmaddwd` issue rate per cycle (the int8 peak in docs/BENCHMARKS.md).
//!
//! `cargo run --release -p tinyscore-engine --example x86_issue_rate`
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::arch::x86_64::*;
    use std::time::Instant;

    #[target_feature(enable = "avx2")]
    unsafe fn madd(n: u64, seed: i32) -> i32 {
        let w = _mm256_set1_epi16(seed as i16);
        let mut a = [_mm256_set1_epi32(seed); 12];
        for _ in 0..n {
            for v in a.iter_mut() {
                *v = _mm256_madd_epi16(*v, w);
            }
        }
        let s = a.iter().fold(_mm256_setzero_si256(), |s, v| _mm256_add_epi32(s, *v));
        _mm256_extract_epi32::<0>(s)
    }

    #[target_feature(enable = "avx2")]
    unsafe fn fadd(n: u64, seed: f32) -> f32 {
        let w = _mm256_set1_ps(seed);
        let mut a = [_mm256_set1_ps(seed); 12];
        for _ in 0..n {
            for v in a.iter_mut() {
                *v = _mm256_add_ps(*v, w);
            }
        }
        let s = a.iter().fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v));
        _mm256_cvtss_f32(s)
    }

    if !std::is_x86_feature_detected!("avx2") {
        println!("skipped: this CPU has no AVX2");
        return;
    }
    let n = 100_000_000u64;
    // A seed the compiler cannot know, so neither loop is folded away.
    let seed = std::env::args().count() as i32;
    for _ in 0..3 {
        let t = Instant::now();
        // SAFETY: AVX2 checked above.
        let r = unsafe { madd(n, seed) };
        let madd_ns = t.elapsed().as_secs_f64() * 1e9 / (12 * n) as f64;
        let t = Instant::now();
        // SAFETY: AVX2 checked above.
        let f = unsafe { fadd(n, seed as f32) };
        let add_ns = t.elapsed().as_secs_f64() * 1e9 / (12 * n) as f64;
        println!(
            "vpmaddwd {madd_ns:.3} ns, vaddps {add_ns:.3} ns per instruction: clock ≈ {:.2} GHz if two vaddps \
             issue per cycle, vpmaddwd per cycle ≈ {:.2}   (checksums {r} {f})",
            0.5 / add_ns,
            2.0 * add_ns / madd_ns
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("skipped: not an x86-64 CPU");
}
