use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cka::{Centred, cross_trace};
use super::knn::{RankedNeighbours, tile_rounds};
use super::*;

/// Standard normal values (Box–Muller), [count].
fn gaussian(count: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

fn rep<'a>(data: &'a [f64], samples: usize) -> Representation<'a> {
    Representation::new("test", data, samples, data.len() / samples).expect("valid test data")
}

/// x · q for q: [features, features] row-major.
fn times(x: &[f64], features: usize, q: &[f64]) -> Vec<f64> {
    x.chunks(features)
        .flat_map(|row| {
            (0..features).map(move |c| (0..features).map(|r| row[r] * q[r * features + c]).sum())
        })
        .collect()
}

/// A random orthogonal matrix: Gram–Schmidt on Gaussian columns, [features, features] row-major.
fn orthogonal(features: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut columns: Vec<Vec<f64>> = Vec::new();
    while columns.len() < features {
        let mut v = gaussian(features, rng);
        for u in &columns {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        columns.push(v.iter().map(|a| a / norm).collect());
    }
    (0..features * features)
        .map(|index| columns[index % features][index / features])
        .collect()
}

/// K = X Xᵀ written out directly: [samples, samples].
fn gram(x: &[f64], samples: usize) -> Vec<f64> {
    let features = x.len() / samples;
    let row = |i: usize| &x[i * features..(i + 1) * features];
    (0..samples * samples)
        .map(|index| {
            row(index / samples)
                .iter()
                .zip(row(index % samples))
                .map(|(a, b)| a * b)
                .sum()
        })
        .collect()
}

/// Written by tests/fixtures/alignment_reference.py: dense numpy from the published formulas.
const REFERENCE_FIXTURE: &str = include_str!("../../../tests/fixtures/alignment_reference.json");

#[test]
fn metrics_agree_with_the_independent_numpy_reference() {
    let fixture: serde_json::Value = serde_json::from_str(REFERENCE_FIXTURE).unwrap();
    let number = |value: &serde_json::Value| value.as_f64().expect("a number");
    let samples = fixture["samples"].as_u64().unwrap() as usize;
    let vector = |key: &str| {
        fixture[key]
            .as_array()
            .unwrap()
            .iter()
            .map(number)
            .collect::<Vec<f64>>()
    };
    let (x_raw, y_raw) = (vector("x"), vector("y"));
    let quantile = number(&fixture["clip_quantile"]);
    for (set, preprocessing) in [
        ("raw", Preprocessing::None),
        ("platonic", Preprocessing::ClipAndNormalise { quantile }),
    ] {
        let expected = |key: &str| number(&fixture[set][key]);
        let x_data = preprocess(&rep(&x_raw, samples), preprocessing).unwrap();
        let y_data = preprocess(&rep(&y_raw, samples), preprocessing).unwrap();
        let (x, y) = (rep(&x_data, samples), rep(&y_data, samples));
        let (k_matrix, l_matrix) = (gram(&x_data, samples), gram(&y_data, samples));
        let close = |got: f64, key: &str| {
            let want = expected(key);
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{set} {key}: {got} vs {want}"
            );
        };
        close(
            hsic_biased(&k_matrix, &l_matrix, samples).unwrap(),
            "hsic_biased",
        );
        close(
            hsic_unbiased(&k_matrix, &l_matrix, samples).unwrap(),
            "hsic_unbiased",
        );
        close(cka(&x, &y, HsicEstimator::Biased).unwrap(), "cka_biased");
        close(
            cka(&x, &y, HsicEstimator::Unbiased).unwrap(),
            "cka_unbiased",
        );
        for k in fixture["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_u64().unwrap() as usize)
        {
            close(mutual_knn(&x, &y, k).unwrap(), &format!("mutual_knn_k{k}"));
            close(cknna(&x, &y, k).unwrap(), &format!("cknna_xy_k{k}"));
            close(cknna(&y, &x, k).unwrap(), &format!("cknna_yx_k{k}"));
        }
        let options = CompareOptions {
            null_draws: 0,
            ci_draws: 0,
            preprocessing,
            ..CompareOptions::default()
        };
        let report = compare(&rep(&x_raw, samples), &rep(&y_raw, samples), &options).unwrap();
        close(report.metrics.cka_biased, "cka_biased");
        close(report.metrics.cka_unbiased, "cka_unbiased");
        close(report.metrics.cknna, "cknna_xy_k10");
        close(report.metrics.mutual_knn, "mutual_knn_k10");
        assert_eq!((report.null, report.ci), (None, None));
    }
}

#[test]
fn biased_hsic_of_a_four_sample_case_matches_the_hand_computation() {
    // K = diag(1, 2, 3, 4) and L = I. H K H has diagonal entries K_ii − 2·K_ii/n + tr(K)/n²
    // = K_ii/2 + 10/16, so tr(HKH·L) = 10/2 + 4·10/16 = 7.5.
    let mut k = vec![0.0; 16];
    let mut l = vec![0.0; 16];
    for i in 0..4 {
        k[i * 5] = (i + 1) as f64;
        l[i * 5] = 1.0;
    }
    assert!((hsic_biased(&k, &l, 4).expect("4 × 4") - 7.5).abs() < 1e-12);
    // With K = L = 11ᵀ everything is constant, H 1 = 0 and HSIC is 0.
    assert!(hsic_biased(&[1.0; 16], &[1.0; 16], 4).expect("4 × 4").abs() < 1e-12);
}

#[test]
fn unbiased_hsic_of_a_four_sample_case_matches_the_hand_computation() {
    // K̃ = L̃ = 11ᵀ − I (n = 4): tr(K̃L̃) = 12, 1ᵀK̃1 = 12, K̃1 = 3·1 so 1ᵀK̃L̃1 = 36;
    // [12 + 144/6 − 2/2·36] / (4·1) = (12 + 24 − 36) / 4 = 0.
    let ones_off_diagonal: Vec<f64> = (0..16)
        .map(|i| if i % 5 == 0 { 7.0 } else { 1.0 })
        .collect();
    let value = hsic_unbiased(&ones_off_diagonal, &ones_off_diagonal, 4).expect("4 × 4");
    assert!(value.abs() < 1e-12, "{value}");
    // K̃ with a single pair (0,1) = (1,0) = 1 and L̃ = K̃: tr = 2, sums = 2, K̃1 = (1,1,0,0), 1ᵀK̃L̃1 = 2;
    // [2 + 4/6 − 2] / 4 = 1/6.
    let mut pair = vec![0.0; 16];
    pair[1] = 1.0;
    pair[4] = 1.0;
    let value = hsic_unbiased(&pair, &pair, 4).expect("4 × 4");
    assert!((value - 1.0 / 6.0).abs() < 1e-12, "{value}");
}

#[test]
fn feature_space_cka_equals_the_kernel_formulas_and_both_routes_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (samples, dx, dy) = (30, 4, 7);
    let x: Vec<f64> = gaussian(samples * dx, &mut rng)
        .iter()
        .map(|v| v + 3.0)
        .collect();
    let y = gaussian(samples * dy, &mut rng);
    let (k, l) = (gram(&x, samples), gram(&y, samples));
    for (estimator, hsic) in [
        (
            HsicEstimator::Biased,
            hsic_biased as fn(&[f64], &[f64], usize) -> Result<f64, AlignmentError>,
        ),
        (HsicEstimator::Unbiased, hsic_unbiased),
    ] {
        let expected = hsic(&k, &l, samples).unwrap()
            / (hsic(&k, &k, samples).unwrap() * hsic(&l, &l, samples).unwrap()).sqrt();
        let got = cka(&rep(&x, samples), &rep(&y, samples), estimator).unwrap();
        assert!(
            (got - expected).abs() < 1e-12,
            "{estimator:?}: {got} vs {expected}"
        );
    }
    // Features outnumbering samples take the sample-space route; it must give the same trace.
    let wide_x = gaussian(6 * 40, &mut rng);
    let wide_y = gaussian(6 * 50, &mut rng);
    let (cx, cy) = (Centred::new(&wide_x, 6, 40), Centred::new(&wide_y, 6, 50));
    let mut cross = vec![0.0; 40 * 50];
    multiply(
        View::row_major(&cx.data, 6, 40).transposed(),
        View::row_major(&cy.data, 6, 50),
        &mut cross,
        false,
    );
    let feature_space: f64 = cross.iter().map(|v| v * v).sum();
    assert!((cross_trace(&cx, &cy) - feature_space).abs() < 1e-9 * feature_space);
}

#[test]
fn unbiased_hsic_does_not_change_when_rows_are_translated() {
    // The centring inside `cka` relies on this.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (x, y) = (gaussian(12 * 3, &mut rng), gaussian(12 * 2, &mut rng));
    let shifted: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + [5.0, -2.0, 9.0][i % 3])
        .collect();
    let plain = hsic_unbiased(&gram(&x, 12), &gram(&y, 12), 12).unwrap();
    let moved = hsic_unbiased(&gram(&shifted, 12), &gram(&y, 12), 12).unwrap();
    assert!(
        (plain - moved).abs() < 1e-10 * plain.abs().max(1.0),
        "{plain} vs {moved}"
    );
}

#[test]
fn cka_of_a_representation_with_itself_is_one_and_cka_is_symmetric() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (x, y) = (gaussian(50 * 6, &mut rng), gaussian(50 * 3, &mut rng));
    for estimator in [HsicEstimator::Biased, HsicEstimator::Unbiased] {
        let same = cka(&rep(&x, 50), &rep(&x, 50), estimator).unwrap();
        assert!((same - 1.0).abs() < 1e-12, "{estimator:?}: {same}");
        let xy = cka(&rep(&x, 50), &rep(&y, 50), estimator).unwrap();
        let yx = cka(&rep(&y, 50), &rep(&x, 50), estimator).unwrap();
        assert!((xy - yx).abs() < 1e-12, "{estimator:?}: {xy} vs {yx}");
    }
}

#[test]
fn cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (x, y) = (gaussian(40 * 5, &mut rng), gaussian(40 * 5, &mut rng));
    let y_related: Vec<f64> = y.iter().zip(&x).map(|(a, b)| a + 2.0 * b).collect();
    let rotated: Vec<f64> = times(&x, 5, &orthogonal(5, &mut rng))
        .iter()
        .map(|v| 3.7 * v)
        .collect();
    for estimator in [HsicEstimator::Biased, HsicEstimator::Unbiased] {
        let before = cka(&rep(&x, 40), &rep(&y_related, 40), estimator).unwrap();
        let after = cka(&rep(&rotated, 40), &rep(&y_related, 40), estimator).unwrap();
        assert!(
            (before - after).abs() < 1e-12,
            "{estimator:?}: {before} vs {after}"
        );
        assert!(before > 0.5, "related data should align: {before}");
    }
}

#[test]
fn cknna_of_a_representation_with_itself_is_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = gaussian(300 * 8, &mut rng);
    let value = cknna(&rep(&x, 300), &rep(&x, 300), 10).unwrap();
    assert!((value - 1.0).abs() < 1e-12, "{value}");
    assert!((mutual_knn(&rep(&x, 300), &rep(&x, 300), 10).unwrap() - 1.0).abs() < 1e-15);
}

#[test]
fn tiled_neighbour_search_equals_a_full_sort_with_ties_to_the_lower_index() {
    // 600 samples span three tiles; integer features make many exactly tied inner products.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (samples, features, k) = (600, 3, 7);
    let x: Vec<f64> = (0..samples * features)
        .map(|_| rng.random_range(-2..=2) as f64)
        .collect();
    let found = Neighbours::new(&x, samples, features, k);
    let row = |i: usize| &x[i * features..(i + 1) * features];
    for i in 0..samples {
        let mut all: Vec<(f64, usize)> = (0..samples)
            .filter(|&j| j != i)
            .map(|j| (row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum(), j))
            .collect();
        // partial_cmp, not total_cmp: −0 and +0 tie (sums that cancel come out with either sign).
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).expect("finite").then(a.1.cmp(&b.1)));
        let mut expected: Vec<usize> = all[..k].iter().map(|&(_, j)| j).collect();
        expected.sort_unstable();
        assert_eq!(&found.indices[i * k..(i + 1) * k], &expected[..], "row {i}");
    }
}

#[test]
fn subsample_neighbours_from_deeper_lists_equal_a_fresh_search_on_the_subsample() {
    // Integer features for ties; depth 9 with k = 4 leaves some samples short of kept candidates, which
    // exercises the direct search as well.
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let (samples, features, k) = (500, 3, 4);
    let x: Vec<f64> = (0..samples * features)
        .map(|_| rng.random_range(-3..=3) as f64)
        .collect();
    let ranked = RankedNeighbours::search(&x, samples, features, 9);
    assert_eq!(ranked.nearest(k), Neighbours::new(&x, samples, features, k));
    for fraction in [0.8, 0.3] {
        let kept_count = (fraction * samples as f64) as usize;
        let mut kept = rand::seq::index::sample(&mut rng, samples, kept_count).into_vec();
        kept.sort_unstable();
        let rows = select_rows(&x, features, &kept);
        let fresh = Neighbours::new(&rows, kept_count, features, k);
        assert_eq!(
            ranked.within_subsample(k, &kept, &x, features).indices,
            fresh.indices
        );
    }
}

#[test]
fn tile_rounds_cover_every_pair_once_without_sharing_a_block_within_a_round() {
    for blocks in 1..10 {
        let rounds = tile_rounds(blocks);
        let mut seen = std::collections::BTreeSet::new();
        for round in &rounds {
            let mut used = std::collections::BTreeSet::new();
            for &(a, b) in round {
                assert!(a <= b && b < blocks);
                assert!(
                    seen.insert((a, b)),
                    "pair ({a}, {b}) twice for {blocks} blocks"
                );
                assert!(
                    used.insert(a) && (a == b || used.insert(b)),
                    "block shared in a round"
                );
            }
        }
        assert_eq!(seen.len(), blocks * (blocks + 1) / 2);
    }
}

#[test]
fn cknna_depends_on_the_argument_order_and_matches_the_dense_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let samples = 60;
    let x = gaussian(samples * 4, &mut rng);
    let y: Vec<f64> = gaussian(samples * 4, &mut rng)
        .iter()
        .zip(&x)
        .map(|(noise, signal)| noise + signal)
        .collect();
    let (k_matrix, l_matrix) = (gram(&x, samples), gram(&y, samples));
    let mask = |matrix: &[f64]| -> Vec<bool> {
        let mut mask = vec![false; samples * samples];
        for i in 0..samples {
            let mut order: Vec<usize> = (0..samples).filter(|&j| j != i).collect();
            order.sort_by(|&a, &b| {
                let (value_a, value_b) = (matrix[i * samples + a], matrix[i * samples + b]);
                value_b
                    .partial_cmp(&value_a)
                    .expect("finite")
                    .then(a.cmp(&b))
            });
            order[..5]
                .iter()
                .for_each(|&j| mask[i * samples + j] = true);
        }
        mask
    };
    let similarity = |a: &[f64], b: &[f64]| {
        let (mask_a, mask_b) = (mask(a), mask(b));
        let masked = |m: &[f64]| -> Vec<f64> {
            (0..m.len())
                .map(|i| if mask_a[i] && mask_b[i] { m[i] } else { 0.0 })
                .collect()
        };
        hsic_unbiased(&masked(a), &masked(b), samples).unwrap()
    };
    let dense = similarity(&k_matrix, &l_matrix)
        / (similarity(&k_matrix, &k_matrix) * similarity(&l_matrix, &l_matrix)).sqrt();
    let xy = cknna(&rep(&x, samples), &rep(&y, samples), 5).unwrap();
    let yx = cknna(&rep(&y, samples), &rep(&x, samples), 5).unwrap();
    assert!((xy - dense).abs() < 1e-12, "{xy} vs {dense}");
    assert!((xy - yx).abs() > 1e-9, "CKNNA(X, Y) = CKNNA(Y, X) = {xy}");
}

#[test]
fn mutual_knn_on_independent_data_is_near_chance() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let (samples, k) = (1000, 10);
    let (x, y) = (
        gaussian(samples * 8, &mut rng),
        gaussian(samples * 8, &mut rng),
    );
    let value = mutual_knn(&rep(&x, samples), &rep(&y, samples), k).unwrap();
    let chance = k as f64 / (samples - 1) as f64;
    // The count of shared neighbours is about Binomial(n·k, k/(n−1)): sd of the mean ≈ sqrt(chance/(n·k)).
    let standard_error = (chance / (samples * k) as f64).sqrt();
    assert!(
        (value - chance).abs() < 5.0 * standard_error,
        "{value} vs chance {chance}"
    );
}

#[test]
fn independent_noise_lies_within_its_permutation_null() {
    let (samples, trials) = (80, 40);
    let options = CompareOptions {
        null_draws: 99,
        ci_draws: 0,
        k: 5,
        ..CompareOptions::default()
    };
    let mut above = MetricSet {
        cka_biased: 0,
        cka_unbiased: 0,
        cknna: 0,
        mutual_knn: 0,
    };
    for trial in 0..trials {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + trial);
        let (x, y) = (
            gaussian(samples * 6, &mut rng),
            gaussian(samples * 6, &mut rng),
        );
        let options = CompareOptions {
            seed: trial,
            ..options
        };
        let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
        let null = report.null.expect("null asked for");
        above.cka_biased += usize::from(report.metrics.cka_biased > null.cka_biased.p95);
        above.cka_unbiased += usize::from(report.metrics.cka_unbiased > null.cka_unbiased.p95);
        above.cknna += usize::from(report.metrics.cknna > null.cknna.p95);
        above.mutual_knn += usize::from(report.metrics.mutual_knn > null.mutual_knn.p95);
    }
    // About 5 % of 40 trials lie above p95 under independence (Binomial(40, 0.05): mean 2, P(≥ 8) ≈ 1e-3).
    let counts = [
        above.cka_biased,
        above.cka_unbiased,
        above.cknna,
        above.mutual_knn,
    ];
    assert!(
        counts.iter().all(|&count| count < 8),
        "of {trials} above p95: {above:?}"
    );
}

#[test]
fn compare_reports_a_significant_null_and_an_interval_around_related_data() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let samples = 200;
    let x = gaussian(samples * 5, &mut rng);
    let y: Vec<f64> = gaussian(samples * 5, &mut rng)
        .iter()
        .zip(&x)
        .map(|(noise, signal)| 0.5 * noise + signal)
        .collect();
    let options = CompareOptions {
        null_draws: 50,
        ci_draws: 20,
        ..CompareOptions::default()
    };
    let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
    let null = report.null.expect("null asked for");
    let ci = report.ci.expect("interval asked for");
    let rows = [
        (report.metrics.cka_biased, null.cka_biased, ci.cka_biased),
        (
            report.metrics.cka_unbiased,
            null.cka_unbiased,
            ci.cka_unbiased,
        ),
        (report.metrics.cknna, null.cknna, ci.cknna),
        (report.metrics.mutual_knn, null.mutual_knn, ci.mutual_knn),
    ];
    for (value, null, [lo, hi]) in rows {
        assert!(
            value > null.p95 && null.p_value <= 1.0 / 51.0 + 1e-12,
            "{value} vs {null:?}"
        );
        assert!(
            lo < hi && lo < value + 0.05 && value - 0.05 < hi,
            "{value} outside [{lo}, {hi}]"
        );
    }
    let json = serde_json::to_value(&report).unwrap();
    for key in ["n", "k", "metrics", "null", "ci", "preprocessing"] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["metrics"].as_object().unwrap().len(), 4);
    assert_eq!(json["ci"]["cknna"].as_array().unwrap().len(), 2);
    assert_eq!(json["preprocessing"]["kind"], "none");
    // Reproducible from the seed.
    assert_eq!(
        compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap(),
        report
    );
}

#[test]
fn the_null_relabels_neighbour_lists_exactly_as_a_fresh_search_on_shuffled_data() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let samples = 300;
    let (x, y) = (
        gaussian(samples * 4, &mut rng),
        gaussian(samples * 3, &mut rng),
    );
    let mut permutation: Vec<usize> = (0..samples).collect();
    permutation.shuffle(&mut rng);
    let shuffled = select_rows(&y, 3, &permutation);
    let (x_side, y_side) = (
        Side::new(&x, samples, 4, Neighbours::new(&x, samples, 4, 7)),
        Side::new(&y, samples, 3, Neighbours::new(&y, samples, 3, 7)),
    );
    let relabelled = metrics_between(&x_side, &y_side.permuted(&permutation), 7);
    let fresh = alignment_metrics(&rep(&x, samples), &rep(&shuffled, samples), 7).unwrap();
    assert_eq!(
        y_side.permuted(&permutation).neighbours,
        Neighbours::new(&shuffled, samples, 3, 7)
    );
    let pairs = [
        (relabelled.cka_biased, fresh.cka_biased),
        (relabelled.cka_unbiased, fresh.cka_unbiased),
        (relabelled.cknna, fresh.cknna),
        (relabelled.mutual_knn, fresh.mutual_knn),
    ];
    for (a, b) in pairs {
        assert!((a - b).abs() < 1e-12, "{relabelled:?} vs {fresh:?}");
    }
}

#[test]
fn the_subsample_interval_has_about_the_width_of_the_sampling_spread() {
    // Spread of CKA over independent data sets from one distribution, against the mean half-width of the
    // jackknife-histogram interval computed from single data sets.
    let (samples, features) = (120, 4);
    let data_set = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = gaussian(samples * features, &mut rng);
        let y: Vec<f64> = gaussian(samples * features, &mut rng)
            .iter()
            .zip(&x)
            .map(|(e, s)| e + 0.7 * s)
            .collect();
        (x, y)
    };
    let values: Vec<f64> = (0..300)
        .map(|seed| {
            let (x, y) = data_set(1000 + seed);
            cka(
                &rep(&x, samples),
                &rep(&y, samples),
                HsicEstimator::Unbiased,
            )
            .unwrap()
        })
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let spread =
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt();
    let options = CompareOptions {
        null_draws: 0,
        ci_draws: 100,
        ..CompareOptions::default()
    };
    let half_widths: Vec<f64> = (0..20)
        .map(|seed| {
            let (x, y) = data_set(5000 + seed);
            let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
            let [lo, hi] = report.ci.unwrap().cka_unbiased;
            (hi - lo) / 2.0
        })
        .collect();
    let half_width = half_widths.iter().sum::<f64>() / half_widths.len() as f64;
    let ratio = half_width / (1.96 * spread);
    assert!(
        (0.7..1.4).contains(&ratio),
        "half-width {half_width} vs 1.96·sd {}",
        1.96 * spread
    );
}

#[test]
fn preprocessing_clips_at_the_mean_row_quantile_and_normalises_rows() {
    // Rows |x| sorted: (1, 2, 3, 10) and (1, 1, 1, 1). q = 0.5: row medians 2.5 and 1 -> clip at 1.75.
    let data = [1.0, -10.0, 2.0, 3.0, 1.0, 1.0, -1.0, 1.0];
    let x = Representation::new("x", &data, 2, 4).unwrap();
    let out = preprocess(&x, Preprocessing::ClipAndNormalise { quantile: 0.5 }).unwrap();
    let first = [1.0, -1.75, 1.75, 1.75];
    let norm = first.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
    for (got, want) in out[..4].iter().zip(first.iter().map(|v| v / norm)) {
        assert!((got - want).abs() < 1e-15);
    }
    assert!(
        out[4..]
            .iter()
            .zip([0.5, 0.5, -0.5, 0.5])
            .all(|(got, want)| (got - want).abs() < 1e-15)
    );
    assert_eq!(preprocess(&x, Preprocessing::None).unwrap(), data.to_vec());
}

#[test]
fn cka_matrix_has_ones_on_the_diagonal_of_a_self_comparison() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let layers: Vec<Vec<f64>> = (0..3)
        .map(|layer| gaussian(25 * (layer + 2), &mut rng))
        .collect();
    let reps: Vec<Representation> = layers.iter().map(|data| rep(data, 25)).collect();
    let matrix = cka_matrix(&reps, &reps, HsicEstimator::Unbiased).unwrap();
    for i in 0..3 {
        assert!((matrix[i * 4] - 1.0).abs() < 1e-12);
        for j in 0..3 {
            let direct = cka(&reps[i], &reps[j], HsicEstimator::Unbiased).unwrap();
            assert!((matrix[i * 3 + j] - direct).abs() < 1e-12);
        }
    }
}

#[test]
fn errors_name_the_problem() {
    let nan = [1.0, 2.0, f64::NAN, 4.0];
    let error = Representation::new("a.safetensors:t", &nan, 2, 2).unwrap_err();
    assert!(
        matches!(&error, AlignmentError::NonFinite { name, sample: 1, feature: 0, value }
                if name == "a.safetensors:t" && value.is_nan()),
        "{error}"
    );
    assert!(matches!(
        Representation::new("x", &[1.0; 5], 2, 2),
        Err(AlignmentError::Shape { .. })
    ));
    let (five, six) = ([0.5; 10], [0.5; 12]);
    let (x, y) = (rep(&five, 5), rep(&six, 6));
    assert!(matches!(
        cka(&x, &y, HsicEstimator::Biased),
        Err(AlignmentError::SampleCountMismatch { .. })
    ));
    assert!(matches!(
        cknna(&x, &x, 5),
        Err(AlignmentError::NeighbourCount { k: 5, samples: 5 })
    ));
    let three = [1.0, 2.0, 3.0];
    assert!(matches!(
        mutual_knn(&rep(&three, 3), &rep(&three, 3), 1),
        Err(AlignmentError::TooFewSamples { .. })
    ));
}

/// A random-initialised two-layer network applied to `inputs` ([rows, channels]): tanh(I·W₁ + b)·W₂ with
/// Gaussian weights scaled by 1/√fan-in, drawn from `seed`. -> [rows, width]
fn random_network(inputs: &[f64], channels: usize, width: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hidden = 32;
    let w1: Vec<f64> = gaussian(channels * hidden, &mut rng)
        .iter()
        .map(|w| w / (channels as f64).sqrt())
        .collect();
    let b: Vec<f64> = gaussian(hidden, &mut rng);
    let w2: Vec<f64> = gaussian(hidden * width, &mut rng)
        .iter()
        .map(|w| w / (hidden as f64).sqrt())
        .collect();
    inputs
        .chunks(channels)
        .flat_map(|row| {
            let h: Vec<f64> = (0..hidden)
                .map(|j| {
                    (b[j]
                        + (0..channels)
                            .map(|c| row[c] * w1[c * hidden + j])
                            .sum::<f64>())
                    .tanh()
                })
                .collect();
            (0..width)
                .map(|o| (0..hidden).map(|j| h[j] * w2[j * width + o]).sum::<f64>())
                .collect::<Vec<f64>>()
        })
        .collect()
}

fn metric_values(m: &MetricSet<Excess>) -> [&Excess; 4] {
    [&m.cka_biased, &m.cka_unbiased, &m.cknna, &m.mutual_knn]
}

#[test]
fn two_random_init_networks_on_the_same_inputs_are_not_above_their_controls() {
    // X and Y: two independent random-init networks of different widths on the same inputs. Their alignment
    // is far above the permutation null, yet it is what untrained networks give: with the untrained control
    // being these very networks the excess is exactly 0 for every metric, and "not above controls".
    let (rows, channels) = (400, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let inputs = gaussian(rows * channels, &mut rng);
    let x = random_network(&inputs, channels, 16, 1);
    let y = random_network(&inputs, channels, 24, 2);
    let reps = [
        Representation::new("X", &x, rows, 16).unwrap(),
        Representation::new("Y", &y, rows, 24).unwrap(),
        Representation::new("inputs", &inputs, rows, channels).unwrap(),
    ];
    let options = CompareOptions {
        null_draws: 20,
        ci_draws: 20,
        seed: 3,
        ..CompareOptions::default()
    };
    let pair = ControlledPair {
        x: 0,
        y: 1,
        untrained: Some((0, 1)),
        inputs_x: Some(2),
        inputs_y: Some(2),
    };
    let report = compare_panel(&reps, None, &[pair], &options)
        .unwrap()
        .remove(0);
    let null = report.alignment.null.unwrap();
    assert!(
        report.alignment.metrics.cknna > null.cknna.p95,
        "far above the null"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let excess = report.excess.unwrap();
    for e in metric_values(&excess) {
        assert!(e.value <= 1e-12, "{e:?}");
        assert_eq!(e.verdict, ExcessVerdict::NotAboveControls, "{e:?}");
    }
    // The same with an untrained control drawn afresh (other seeds of the same architectures): still not above
    // controls, since each network mirrors its inputs at least as much as it mirrors the other network.
    let x0 = random_network(&inputs, channels, 16, 11);
    let y0 = random_network(&inputs, channels, 24, 12);
    let reps = [
        reps[0],
        reps[1],
        reps[2],
        Representation::new("X0", &x0, rows, 16).unwrap(),
        Representation::new("Y0", &y0, rows, 24).unwrap(),
    ];
    let pair = ControlledPair {
        untrained: Some((3, 4)),
        ..pair
    };
    let report = compare_panel(&reps, None, &[pair], &options)
        .unwrap()
        .remove(0);
    for e in metric_values(report.excess.as_ref().unwrap()) {
        assert_eq!(e.verdict, ExcessVerdict::NotAboveControls, "{e:?}");
    }
}

#[test]
fn a_latent_that_is_a_linear_map_of_the_inputs_is_explained_by_the_input_baseline() {
    // X = I·Q_X·2 and Y = I·Q_Y (orthogonal maps): every metric of (X, I) is 1, since the Gram matrices agree up to
    // scale; metric(X, Y) cannot exceed it. The largest control is an input baseline and the excess is ≤ 0.
    let (rows, channels) = (300, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let inputs = gaussian(rows * channels, &mut rng);
    let x: Vec<f64> = times(&inputs, channels, &orthogonal(channels, &mut rng))
        .iter()
        .map(|v| 2.0 * v)
        .collect();
    let y = times(&inputs, channels, &orthogonal(channels, &mut rng));
    let reps = [rep(&x, rows), rep(&y, rows), rep(&inputs, rows)];
    let pair = ControlledPair {
        x: 0,
        y: 1,
        untrained: None,
        inputs_x: Some(2),
        inputs_y: Some(2),
    };
    let options = CompareOptions {
        null_draws: 0,
        ci_draws: 10,
        ..CompareOptions::default()
    };
    let report = compare_panel(&reps, None, &[pair], &options)
        .unwrap()
        .remove(0);
    let input_x = report.controls.input_x.unwrap();
    for value in [
        input_x.cka_biased,
        input_x.cka_unbiased,
        input_x.cknna,
        input_x.mutual_knn,
    ] {
        assert!((value - 1.0).abs() < 1e-9, "{value}");
    }
    for e in metric_values(report.excess.as_ref().unwrap()) {
        assert!(e.largest.starts_with("input_"), "{e:?}");
        assert!(e.value <= 1e-9, "{e:?}");
        assert_eq!(e.verdict, ExcessVerdict::NotAboveControls);
    }
}

#[test]
fn a_shared_signal_beyond_the_inputs_is_above_controls_and_small_samples_get_no_knn_verdict() {
    // X and Y share a component S that the inputs do not carry (and the untrained control lacks): CKA(X, Y)
    // is high, the controls low, and the excess's interval lies above 0.
    let (rows, channels) = (400, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let inputs = gaussian(rows * channels, &mut rng);
    let shared = gaussian(rows * 4, &mut rng);
    let noise_x = gaussian(rows * 4, &mut rng);
    let noise_y = gaussian(rows * 4, &mut rng);
    let x: Vec<f64> = shared
        .iter()
        .zip(&noise_x)
        .map(|(s, e)| s + 0.3 * e)
        .collect();
    let y: Vec<f64> = shared
        .iter()
        .zip(&noise_y)
        .map(|(s, e)| s + 0.3 * e)
        .collect();
    let x0 = gaussian(rows * 4, &mut rng);
    let y0 = gaussian(rows * 4, &mut rng);
    let reps = [
        rep(&x, rows),
        rep(&y, rows),
        rep(&x0, rows),
        rep(&y0, rows),
        rep(&inputs, rows),
    ];
    let pair = ControlledPair {
        x: 0,
        y: 1,
        untrained: Some((2, 3)),
        inputs_x: Some(4),
        inputs_y: Some(4),
    };
    // Rows in 40 groups of 10 (like sample times): the interval drops whole groups.
    let groups: Vec<usize> = (0..rows).map(|r| r / 10).collect();
    let options = CompareOptions {
        null_draws: 0,
        ci_draws: 20,
        ..CompareOptions::default()
    };
    let report = compare_panel(&reps, Some(&groups), &[pair], &options)
        .unwrap()
        .remove(0);
    for e in metric_values(report.excess.as_ref().unwrap()) {
        let [lo, hi] = e.ci.unwrap();
        assert!(lo > 0.0 && lo <= e.value && e.value <= hi, "{e:?}");
        assert_eq!(e.verdict, ExcessVerdict::AboveControls);
    }
    // 16 rows with k = 10: the kNN metrics get a warning and no verdict; CKA keeps its verdict.
    let small: Vec<Representation> = [&x, &y, &x0, &y0, &inputs]
        .iter()
        .map(|d| {
            let features = d.len() / rows;
            Representation::new("small", &d[..16 * features], 16, features).unwrap()
        })
        .collect();
    let options = CompareOptions {
        null_draws: 0,
        ci_draws: 20,
        ..CompareOptions::default()
    };
    let report = compare_panel(&small, None, &[pair], &options)
        .unwrap()
        .remove(0);
    assert!(
        report.warnings[0].contains("n = 16 < 5k = 50"),
        "{:?}",
        report.warnings
    );
    let excess = report.excess.unwrap();
    assert_eq!(excess.cknna.verdict, ExcessVerdict::Undetermined);
    assert_eq!(excess.mutual_knn.verdict, ExcessVerdict::Undetermined);
    assert_ne!(excess.cka_unbiased.verdict, ExcessVerdict::Undetermined);
    // Without an interval a positive excess is not called "above": the verdict needs one.
    let options = CompareOptions {
        ci_draws: 0,
        ..options
    };
    let excess = compare_panel(&small, None, &[pair], &options)
        .unwrap()
        .remove(0)
        .excess
        .unwrap();
    assert!(excess.cka_unbiased.ci.is_none() && excess.cka_unbiased.value > 0.0);
    assert_eq!(excess.cka_unbiased.verdict, ExcessVerdict::Undetermined);
}

#[test]
fn the_panel_without_controls_gives_the_figures_of_compare() {
    let (rows, features) = (120, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let x = gaussian(rows * features, &mut rng);
    let y: Vec<f64> = x
        .iter()
        .zip(gaussian(rows * features, &mut rng))
        .map(|(a, b)| a + b)
        .collect();
    let options = CompareOptions {
        null_draws: 15,
        ci_draws: 12,
        seed: 4,
        ..CompareOptions::default()
    };
    let direct = compare(&rep(&x, rows), &rep(&y, rows), &options).unwrap();
    let pair = ControlledPair {
        x: 0,
        y: 1,
        ..ControlledPair::default()
    };
    let panel = compare_panel(&[rep(&x, rows), rep(&y, rows)], None, &[pair], &options)
        .unwrap()
        .remove(0);
    assert_eq!(panel.alignment, direct);
    assert!(panel.excess.is_none() && panel.warnings.is_empty());
}
