//! How many `vpmaddwd` (the int8 kernel's multiply) and `vaddps` this x86-64 core issues per
//! nanosecond: twelve independent accumulators each, so neither loop waits on a latency. Zen 3
//! issues two `vaddps` per cycle, so the `vaddps` rate gives the clock, and the ratio of the two
//! rates the `vpmaddwd` issue rate per cycle (the int8 peak in docs/BENCHMARKS.md). A third loop
//! is the int8 kernel's inner step without its bookkeeping: per turn 2 weight and 6 activation
//! registers loaded from memory, 12 `vpmaddwd` each added (`vpaddd`) into its own accumulator —
//! the rate a kernel of that shape can reach.
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

    #[target_feature(enable = "avx2")]
    unsafe fn madd_add(n: u64, w: &[__m256i; 2], x: &[__m256i; 6]) -> i32 {
        let mut a = [_mm256_setzero_si256(); 12];
        for _ in 0..n {
            // Volatile: loaded every turn, as the kernel loads its operands.
            let w: [__m256i; 2] = core::array::from_fn(|g| std::ptr::read_volatile(&w[g]));
            for s in 0..6 {
                let xv = std::ptr::read_volatile(&x[s]);
                for g in 0..2 {
                    a[2 * s + g] = _mm256_add_epi32(a[2 * s + g], _mm256_madd_epi16(w[g], xv));
                }
            }
        }
        let s = a.iter().fold(_mm256_setzero_si256(), |s, v| _mm256_add_epi32(s, *v));
        _mm256_extract_epi32::<0>(s)
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
        // SAFETY: AVX2 checked above.
        let (w, x) = unsafe { ([_mm256_set1_epi32(seed); 2], [_mm256_set1_epi32(seed + 1); 6]) };
        let t = Instant::now();
        // SAFETY: AVX2 checked above.
        let m = unsafe { madd_add(n / 2, &w, &x) };
        let pair_ns = t.elapsed().as_secs_f64() * 1e9 / (6 * n) as f64;
        println!(
            "vpmaddwd {madd_ns:.3} ns, vaddps {add_ns:.3} ns per instruction: clock ≈ {:.2} GHz if two vaddps \
             issue per cycle, vpmaddwd per cycle ≈ {:.2}; with loads and vpaddd ≈ {:.2} per cycle, {:.0} GMAC/s \
             (checksums {r} {f} {m})",
            0.5 / add_ns,
            2.0 * add_ns / madd_ns,
            2.0 * add_ns / pair_ns,
            16.0 / pair_ns
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("skipped: not an x86-64 CPU");
}
