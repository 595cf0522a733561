//! The checked-in test vector (`tests/data/tiny.tsm`, see docs/format.md §9): its header, one
//! forward pass against an independent f64 reference, and golden hashes of the noise stream, of a
//! forward pass and of a whole sampling run. The same hashes are checked on Cortex-M4F in QEMU by
//! the firmware test, so a change in any of them is a change in the output bits on every target.

use tinyscore_engine::format::{Model, Process, Role};
use tinyscore_engine::net::{Dims, ScoreNet};
use tinyscore_engine::rng::{fill_normal, stream};
use tinyscore_engine::sampler::{
    draw, Ddim, Ddpm, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor, Sampler, Variance,
};
use tinyscore_engine::schedule::BetaSchedule;

static TINY: &[u8] = include_bytes!("data/tiny.tsm");

/// FNV-1a over the bits of a sequence of f32.
fn fnv(values: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[test]
fn header_fields() {
    let m = Model::parse(TINY).unwrap();
    assert_eq!(m.dims(), Dims { dim: 2, hidden: 8, freqs: 4, blocks: 1 });
    assert_eq!(m.process(), Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR });
    assert_eq!(m.header().ram_bytes as usize, m.dims().ram_bytes());
    assert_eq!(m.tensor_count(), 14);
    assert_eq!(m.tensor(Role::NormStd).get(0), 2.0);
}

/// ε_θ(x, t) in f64 from the file's tensors, written from docs/scorenet.md.
fn reference_eps(m: &Model<'_>, x: &[f64], t: f64) -> Vec<f64> {
    let d = m.dims();
    let silu = |v: f64| v / (1.0 + (-v).exp());
    let lin = |w: Role, b: Role, x: &[f64]| -> Vec<f64> {
        let (w, b) = (m.tensor(w), m.tensor(b));
        (0..w.rows)
            .map(|r| b.get(r) as f64 + (0..w.cols).map(|c| w.get(r * w.cols + c) as f64 * x[c]).sum::<f64>())
            .collect()
    };
    let half = d.freqs / 2;
    let mut phi = vec![0.0; d.freqs];
    for k in 0..half {
        let w = (-(10000f64.ln()) * k as f64 / half as f64).exp();
        phi[k] = (w * 1000.0 * t).sin();
        phi[half + k] = (w * 1000.0 * t).cos();
    }
    let a: Vec<f64> = lin(Role::TimeW1, Role::TimeB1, &phi).into_iter().map(silu).collect();
    let temb = lin(Role::TimeW2, Role::TimeB2, &a);
    let mut h = lin(Role::InputW, Role::InputB, x);
    for b in 0..d.blocks as u8 {
        let a: Vec<f64> = h.iter().copied().map(silu).collect();
        let u: Vec<f64> =
            lin(Role::BlockW1(b), Role::BlockB1(b), &a).iter().zip(&temb).map(|(u, t)| u + t).collect();
        let a: Vec<f64> = u.into_iter().map(silu).collect();
        let r = lin(Role::BlockW2(b), Role::BlockB2(b), &a);
        for (hi, ri) in h.iter_mut().zip(r) {
            *hi += ri;
        }
    }
    let a: Vec<f64> = h.into_iter().map(silu).collect();
    lin(Role::OutputW, Role::OutputB, &a)
}

#[test]
fn forward_matches_f64_reference() {
    let m = Model::parse(TINY).unwrap();
    let mut arena = [0.0f32; 64];
    let mut net: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(m.clone(), &mut arena[..]).unwrap();
    for (x, t) in [([0.3f32, -1.2f32], 0.1f32), ([2.0, 0.5], 0.9), ([0.0, 0.0], 0.0)] {
        let mut eps = [0.0f32; 2];
        net.eps(&x, t, &mut eps);
        let want = reference_eps(&m, &[x[0] as f64, x[1] as f64], t as f64);
        for (g, w) in eps.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-5 + 1e-5 * w.abs(), "got {g}, want {w}");
        }
    }
}

#[test]
fn capacities_are_checked() {
    let m = Model::parse(TINY).unwrap();
    let mut arena = [0.0f32; 64];
    // The f32 path runs in the arena: ScoreNet v1's time region H + max(H, F) and data 3H.
    let err = ScoreNet::<'_, 2, 4, 4>::new(m.clone(), &mut arena[..39]).unwrap_err();
    assert_eq!((err.what, err.found, err.capacity), ("arena", 40, 39));
    assert!(ScoreNet::<'_, 2, 4, 4>::new(m.clone(), &mut arena[..40]).is_ok());
    assert!(ScoreNet::<'_, 1, 8, 4>::new(m.clone(), &mut arena[..]).is_err());
    assert!(ScoreNet::<'_, 2, 8, 2>::new(m, &mut arena[..]).is_err());
}

/// Golden hashes: the noise stream, one forward pass, one sampling run. Printed on failure so a
/// deliberate change can update them (and the firmware test's copies).
#[test]
fn golden_hashes() {
    let mut z = [0.0f32; 64];
    fill_normal(42, 3, 7, stream::STEP, &mut z);
    let noise = fnv(&z);

    let m = Model::parse(TINY).unwrap();
    let schedule = m.process().diffusion().unwrap();
    let mut arena = [0.0f32; 64];
    let mut net: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let mut eps = [0.0f32; 2];
    net.eps(&[0.25, -0.75], 0.5, &mut eps);
    let forward = fnv(&eps);

    let mut all = Vec::new();
    for variance in [Variance::Posterior, Variance::Beta] {
        for i in 0..4 {
            let mut x = [0.0f32; 2];
            draw(&mut net, &schedule, &Sampler::Ddpm(Ddpm { steps: 10, variance }).into(), 7, i, &mut x)
                .unwrap();
            all.extend_from_slice(&x);
        }
    }
    let sampling = fnv(&all);
    let got = (noise, forward, sampling);
    println!("golden: noise {noise:#018x} forward {forward:#018x} sampling {sampling:#018x}");
    assert_eq!(got, GOLDEN, "golden hashes changed: {got:#x?}");
}

const GOLDEN: (u64, u64, u64) = (0x31db_49df_98b6_9260, 0x81c4_da42_a1f5_827d, 0x980f_c6cf_92d7_b11b);

#[test]
fn sample_does_not_depend_on_batch_or_order() {
    let m = Model::parse(TINY).unwrap();
    let schedule = m.process().diffusion().unwrap();
    let mut arena = [0.0f32; 64];
    let mut net: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let ddpm: Plan = Sampler::Ddpm(Ddpm { steps: 7, variance: Variance::Posterior }).into();
    let mut forward = Vec::new();
    for i in 0..5 {
        let mut x = [0.0f32; 2];
        draw(&mut net, &schedule, &ddpm, 11, i, &mut x).unwrap();
        forward.push(x);
    }
    let mut x = [0.0f32; 2];
    draw(&mut net, &schedule, &ddpm, 11, 3, &mut x).unwrap();
    assert_eq!(x, forward[3]);
    assert_ne!(forward[3], forward[4]);
    // Steps beyond N are refused.
    let too_many: Plan = Sampler::Ddpm(Ddpm { steps: 11, variance: Variance::Posterior }).into();
    assert!(draw(&mut net, &schedule, &too_many, 11, 0, &mut x).is_err());
}

/// One golden hash per sampler: 4 samples of a whole run on the test vector (discrete VP,
/// N = 10), each with the final Tweedie step where it applies. The firmware test checks the
/// same bits for the samplers it runs in QEMU.
#[test]
fn golden_hash_per_sampler() {
    let m = Model::parse(TINY).unwrap();
    let process = m.process().diffusion().unwrap();
    let mut arena = [0.0f32; 64];
    let mut net: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let samplers = [
        Sampler::Ddpm(Ddpm { steps: 5, variance: Variance::Beta }),
        Sampler::Ddim(Ddim { steps: 5, eta: 0.5 }),
        Sampler::Em(Em { steps: 8 }),
        Sampler::OdeEuler(OdeEuler { steps: 8 }),
        Sampler::OdeHeun(OdeHeun { steps: 4 }),
        Sampler::Langevin(Langevin { steps: 4, per_level: 3, step: 0.1 }),
        Sampler::Pc(Pc { steps: 4, predictor: Predictor::ReverseDiffusion, corrector_steps: 2, snr: 0.16 }),
        Sampler::Pc(Pc { steps: 4, predictor: Predictor::EulerMaruyama, corrector_steps: 1, snr: 0.1 }),
    ];
    let mut got = Vec::new();
    for sampler in samplers {
        let mut all = Vec::new();
        for i in 0..4 {
            let mut x = [0.0f32; 2];
            let plan = Plan { sampler, denoise_final: true };
            draw(&mut net, &process, &plan, 9, i, &mut x).unwrap();
            assert!(x.iter().all(|v| v.is_finite()), "{}: {x:?}", sampler.name());
            all.extend_from_slice(&x);
        }
        got.push((sampler.name(), fnv(&all)));
    }
    println!("golden per sampler: {got:#018x?}");
    assert_eq!(got, GOLDEN_SAMPLERS, "golden hashes changed: {got:#x?}");
}

const GOLDEN_SAMPLERS: [(&str, u64); 8] = [
    ("ddpm", 0xfb22_1730_6c53_0d86),
    ("ddim", 0xf229_09b0_2a9f_622f),
    ("em", 0x587e_c0ef_709d_c976),
    ("ode-euler", 0x96c6_9a83_1550_6e72),
    ("ode-heun", 0xd99f_d808_67cc_f5d3),
    ("langevin", 0xafbb_4d3d_6c0a_a64c),
    ("pc", 0xaeef_ec51_a6ba_aa3f),
    ("pc", 0x121b_d8bc_86fe_bd88),
];

#[test]
fn observed_evaluation_is_the_evaluation() {
    use tinyscore_engine::net::Activation;
    let m = Model::parse(TINY).unwrap();
    let mut arena = [0.0f32; 64];
    let mut net: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let (x, t) = ([0.4f32, -0.9], 0.3f32);
    let mut plain = [0.0f32; 2];
    net.eps(&x, t, &mut plain);
    let mut observed = [0.0f32; 2];
    let mut seen = Vec::new();
    net.eps_observed(&x, t, &mut observed, |a, v| seen.push((a, v.len())));
    assert_eq!(plain.map(f32::to_bits), observed.map(f32::to_bits));
    // x, then per block h, silu(h), u, silu(u), then the last h and silu(h).
    assert_eq!(
        seen,
        vec![
            (Activation::Input, 2),
            (Activation::Residual(0), 8),
            (Activation::SiluResidual(0), 8),
            (Activation::Pre(0), 8),
            (Activation::SiluPre(0), 8),
            (Activation::Residual(1), 8),
            (Activation::SiluResidual(1), 8),
        ]
    );
}

/// The version-3 test vectors (`docs/format.md` §11.8): ScoreNet v1 as a layer graph gives the
/// version-1 file's bits; the conv U-Net parses with its description and evaluates.
#[test]
fn version_3_vectors() {
    const TINY_V3: &[u8] = include_bytes!("data/tiny-v3.tsm");
    const TINY_CONV: &[u8] = include_bytes!("data/tiny-conv.tsm");
    let (v1, v3) = (Model::parse(TINY).unwrap(), Model::parse(TINY_V3).unwrap());
    assert_eq!((v1.header().version, v3.header().version), (1, 3));
    assert_eq!(v3.graph().mlp_dims(), Some(v1.dims()));
    let (mut a1, mut a3) = ([0.0f32; 64], [0.0f32; 64]);
    let mut n1: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(v1, &mut a1[..]).unwrap();
    let mut n3: ScoreNet<'_, 2, 8, 4> = ScoreNet::new(v3, &mut a3[..]).unwrap();
    for (x, t) in [([0.3f32, -1.2f32], 0.1f32), ([2.0, 0.5], 0.9)] {
        let (mut e1, mut e3) = ([0.0f32; 2], [0.0f32; 2]);
        n1.eps(&x, t, &mut e1);
        n3.eps(&x, t, &mut e3);
        assert_eq!(e1.map(f32::to_bits), e3.map(f32::to_bits));
    }
    let conv = Model::parse(TINY_CONV).unwrap();
    let d = conv.data();
    assert_eq!((d.channels, d.length, d.kind), (1, 16, tinyscore_engine::format::DataKind::Signal));
    assert_eq!(conv.graph().mlp_dims(), None);
    let mut arena = vec![0.0f32; ScoreNet::<'_, 16, 1, 4, Vec<f32>>::arena_len(&conv)];
    let mut net: ScoreNet<'_, 16, 1, 4> = ScoreNet::new(conv, &mut arena[..]).unwrap();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.5).sin()).collect();
    let mut eps = [0.0f32; 16];
    net.eps(&x, 0.5, &mut eps);
    assert!(eps.iter().all(|v| v.is_finite()) && eps.iter().any(|&v| v != 0.0));
}
