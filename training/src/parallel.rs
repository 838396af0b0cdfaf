//! Data-parallel training on several devices of one machine, with burn's own multi-device gradient plumbing
//! (the pieces burn-train's multi-device strategy is built from; no collective of our own).
//!
//! Each batch is split in row shards, one per device. Every device holds a replica of the model, forked from
//! the main model before the step (`Module::fork`: a copy on that device with its own autodiff graph), runs its
//! shard in its own thread, and computes the gradient of its shard's mean loss scaled by its share of the rows,
//! `rows_i / rows`: burn combines gradients by summing, so the shards' gradients then add up to the gradient of
//! the whole batch's mean loss. They are moved to the main device (`GradientsParams::to_device`) and summed there
//! (`GradientsAccumulator`), and one optimiser makes one update of the main model; checkpoints and resume are
//! those of a one-device run. The result equals a one-device run on the whole batch up to float round-off.
//!
//! Two replicas on the same device (`["flex", "flex"]`: burn has one CPU device) share its threads and memory:
//! that runs this code path, not faster. Nothing here spans processes or machines (burn 0.22 offers no CPU
//! all-reduce and no multi-node path).

use std::ops::Range;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use weatherlens_models::config::ModelConfig;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::model::WeatherModel;

use crate::emulator::Emulator;
use crate::normalise::NormalisationStats;
use crate::trainer::rollout_loss;
use crate::windows::Batch;

/// The rows of shard `i` of `n`: `[i·rows/n, (i+1)·rows/n)`, so shard sizes differ by at most one; shards are
/// empty when there are fewer rows than shards.
pub fn shard_ranges(rows: usize, shards: usize) -> Vec<Range<usize>> {
    (0..shards)
        .map(|i| i * rows / shards..(i + 1) * rows / shards)
        .collect()
}

/// The samples `rows` of `batch`, as a batch of their own.
pub fn shard(batch: &Batch, rows: Range<usize>) -> Batch {
    let inputs_per_sample = 2 * batch.frame_len;
    let targets_per_sample = batch.lead_steps * batch.frame_len;
    Batch {
        inputs: batch.inputs[rows.start * inputs_per_sample..rows.end * inputs_per_sample].to_vec(),
        targets: batch.targets[rows.start * targets_per_sample..rows.end * targets_per_sample]
            .to_vec(),
        anchor_time_hours: batch.anchor_time_hours[rows.clone()].to_vec(),
        lead_steps: batch.lead_steps,
        frame_len: batch.frame_len,
    }
}

/// One model replica per training device, each with the graph and loss weights on its device.
pub struct Replicas {
    /// The autodiff devices, the main one first.
    devices: Vec<Device>,
    emulators: Vec<Emulator>,
    /// [1, grid_points, channels] on each device.
    weights: Vec<Tensor<3>>,
}

impl Replicas {
    /// Replicas of `model` on `devices` (autodiff devices; the first is the main device, which holds the model
    /// and the optimiser). `weights`: the loss weights, [1, grid_points, channels].
    pub fn new(
        model: &WeatherModel,
        config: &ModelConfig,
        graph: &ModelGraph,
        stats: &NormalisationStats,
        kernels: Kernels,
        devices: &[Device],
        weights: &Tensor<3>,
    ) -> Self {
        let emulators = devices
            .iter()
            .map(|device| {
                Emulator::new(
                    model.clone().fork(device),
                    config,
                    graph,
                    stats.clone(),
                    kernels,
                    device,
                )
            })
            .collect();
        let weights = devices
            .iter()
            .map(|device| Tensor::<3>::from_data(weights.to_data(), device))
            .collect();
        Self {
            devices: devices.to_vec(),
            emulators,
            weights,
        }
    }

    /// The mean loss of `batch` over `rollout` steps and its gradient for the parameters of `model`, on the
    /// main device: every device computes its shard ([`Self::shard_grads`]), and the shards' gradients are
    /// summed on the main device.
    pub fn loss_and_grads(
        &mut self,
        model: &WeatherModel,
        batch: &Batch,
        rollout: usize,
    ) -> (f64, GradientsParams) {
        let mut total = 0.0;
        let mut summed = GradientsAccumulator::<WeatherModel>::new();
        for (loss, grads) in self.shard_grads(model, batch, rollout) {
            total += loss;
            summed.accumulate(model, grads.to_device(&self.devices[0], model));
        }
        (total, summed.grads())
    }

    /// Each non-empty shard's share of the loss and its gradient, on its device, in device order. The replicas
    /// are forked from `model` first, so each starts from its weights, and run in parallel threads.
    pub fn shard_grads(
        &mut self,
        model: &WeatherModel,
        batch: &Batch,
        rollout: usize,
    ) -> Vec<(f64, GradientsParams)> {
        let rows = batch.len();
        let ranges = shard_ranges(rows, self.devices.len());
        for ((emulator, device), range) in self.emulators.iter_mut().zip(&self.devices).zip(&ranges)
        {
            if !range.is_empty() {
                emulator.model = model.clone().fork(device);
            }
        }
        std::thread::scope(|scope| {
            let work: Vec<_> = self
                .emulators
                .iter()
                .zip(&self.weights)
                .zip(ranges)
                .filter(|(_, range)| !range.is_empty())
                .map(|((emulator, weights), range)| {
                    let share = range.len() as f64 / rows as f64;
                    let part = shard(batch, range);
                    scope.spawn(move || {
                        let loss =
                            rollout_loss(emulator, &part, rollout, weights).mul_scalar(share);
                        let grads = GradientsParams::from_grads(loss.backward(), &emulator.model);
                        (f64::from(loss.into_scalar::<f32>()), grads)
                    })
                })
                .collect();
            work.into_iter()
                .map(|handle| match handle.join() {
                    Ok(result) => result,
                    // A panic inside a replica (a backend fault) is raised again on the training thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};
    use rand::{Rng, SeedableRng};
    use weatherlens_models::grid::LatLonGrid;
    use weatherlens_models::seed::seeded;

    use crate::loss::loss_weights;
    use crate::normalise::{ChannelNormalisation, Period};

    /// Every parameter's gradient in `grads`, in the module's order, as f32.
    fn gradient_values(model: &WeatherModel, grads: &GradientsParams) -> Vec<Vec<f32>> {
        struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let grad = self
                    .0
                    .get::<D>(param.id)
                    .expect("every parameter has a gradient");
                self.1.push(
                    grad.into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        let mut collect = Collect(grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    }

    /// A 2-layer model on a 6 x 12 grid with 2 channels, its graph and statistics, and a batch of `samples`
    /// copies of one random sample (one lead step).
    fn setup(
        samples: usize,
        device: &Device,
    ) -> (
        WeatherModel,
        ModelConfig,
        ModelGraph,
        NormalisationStats,
        Batch,
    ) {
        let config = ModelConfig {
            mesh_level: 1,
            latent_size: 8,
            num_layers: 2,
            ..ModelConfig::default()
        };
        let lat: Vec<f64> = (0..6).map(|i| 75.0 - 30.0 * i as f64).collect();
        let lon: Vec<f64> = (0..12).map(|i| 30.0 * i as f64).collect();
        let graph = ModelGraph::build(&LatLonGrid::from_coordinates(lat, lon).unwrap(), 1).unwrap();
        let channel = |name: &str| ChannelNormalisation {
            name: name.into(),
            mean: 0.5,
            std: 2.0,
            diff_std: 0.5,
            is_static: false,
        };
        let stats = NormalisationStats {
            channels: vec![channel("a"), channel("b")],
            diff_hours: 6,
            period: Period {
                start: "2000-01-01T00:00:00Z".into(),
                end: "2000-01-02T00:00:00Z".into(),
                count: 5,
            },
        };
        let model = seeded(3, device, || WeatherModel::new(&config, 4, 2, device));
        let frame_len = 2 * 6 * 12;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-3.0..3.0)).collect() };
        let (inputs, targets) = (draw(2 * frame_len), draw(frame_len));
        let batch = Batch {
            inputs: inputs.repeat(samples),
            targets: targets.repeat(samples),
            anchor_time_hours: (0..samples as i64).map(|k| 6 * k).collect(),
            lead_steps: 1,
            frame_len,
        };
        (model, config, graph, stats, batch)
    }

    #[test]
    fn replicas_give_identical_gradients_that_sum_to_the_whole_batch_gradient() {
        let device = Device::flex().autodiff();
        let (model, config, graph, stats, batch) = setup(2, &device);
        let weights = loss_weights(&vec![1.0; 72], &[1.0, 1.0], &device);
        let devices = [device.clone(), device.clone()];
        let mut replicas = Replicas::new(
            &model,
            &config,
            &graph,
            &stats,
            Kernels::Fused,
            &devices,
            &weights,
        );

        // The two shards hold the same sample: two independent replicas, running at the same time in two
        // threads, must compute bit-identical gradients, each half the whole batch's.
        let shards = replicas.shard_grads(&model, &batch, 1);
        assert_eq!(shards.len(), 2);
        let (first, second) = (
            gradient_values(&model, &shards[0].1),
            gradient_values(&model, &shards[1].1),
        );
        assert_eq!(first, second, "replicas differ");
        assert_eq!(shards[0].0, shards[1].0);

        // Their sum against one device on the whole batch.
        let (loss, summed) = replicas.loss_and_grads(&model, &batch, 1);
        let whole = Emulator::new(
            model.clone(),
            &config,
            &graph,
            stats.clone(),
            Kernels::Fused,
            &device,
        );
        let whole_loss = rollout_loss(&whole, &batch, 1, &weights);
        let whole_grads = GradientsParams::from_grads(whole_loss.backward(), &model);
        let whole_loss = f64::from(whole_loss.into_scalar::<f32>());
        assert!(
            (loss - whole_loss).abs() <= 1e-6 * whole_loss.abs(),
            "{loss} vs {whole_loss}"
        );
        let (summed, whole_grads) = (
            gradient_values(&model, &summed),
            gradient_values(&model, &whole_grads),
        );
        assert_eq!(summed.len(), whole_grads.len());
        let mut worst = 0.0f32;
        for (a, b) in summed.iter().zip(&whole_grads) {
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            for (x, y) in a.iter().zip(b) {
                worst = worst.max((x - y).abs() / scale);
            }
        }
        eprintln!("[flex, flex] shard gradients summed vs the whole batch: {worst:.2e}");
        assert!(
            worst <= 1e-5,
            "largest difference {worst:e} of a parameter's largest gradient"
        );
    }

    #[test]
    fn a_batch_smaller_than_the_devices_leaves_a_device_idle() {
        let device = Device::flex().autodiff();
        let (model, config, graph, stats, batch) = setup(1, &device);
        let weights = loss_weights(&vec![1.0; 72], &[1.0, 1.0], &device);
        let devices = [device.clone(), device.clone(), device.clone()];
        let mut replicas = Replicas::new(
            &model,
            &config,
            &graph,
            &stats,
            Kernels::Fused,
            &devices,
            &weights,
        );
        assert_eq!(replicas.shard_grads(&model, &batch, 1).len(), 1);
        let (loss, grads) = replicas.loss_and_grads(&model, &batch, 1);
        assert!(loss.is_finite() && loss > 0.0);
        assert!(!grads.is_empty());
    }

    #[test]
    fn shards_cover_the_rows_once_and_differ_by_at_most_one() {
        assert_eq!(shard_ranges(5, 2), [0..2, 2..5]);
        assert_eq!(shard_ranges(4, 2), [0..2, 2..4]);
        assert_eq!(shard_ranges(7, 3), [0..2, 2..4, 4..7]);
        assert_eq!(shard_ranges(1, 3), [0..0, 0..0, 0..1]);
        for (rows, n) in [(10, 3), (3, 4), (8, 8), (0, 2)] {
            let ranges = shard_ranges(rows, n);
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges.first().unwrap().start, 0);
            assert_eq!(ranges.last().unwrap().end, rows);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let (min, max) = (
                ranges.iter().map(|r| r.len()).min().unwrap(),
                ranges.iter().map(|r| r.len()).max().unwrap(),
            );
            assert!(max - min <= 1, "{ranges:?}");
        }
    }

    #[test]
    fn a_shard_holds_exactly_its_samples() {
        // 3 samples, frame_len 2, lead_steps 2: sample s holds the values 100·s + k.
        let sample_values = |s: usize, n: usize| (0..n).map(move |k| (100 * s + k) as f32);
        let batch = Batch {
            inputs: (0..3).flat_map(|s| sample_values(s, 4)).collect(),
            targets: (0..3).flat_map(|s| sample_values(s, 4)).collect(),
            anchor_time_hours: vec![6, 12, 18],
            lead_steps: 2,
            frame_len: 2,
        };
        let part = shard(&batch, 1..3);
        assert_eq!(part.len(), 2);
        assert_eq!(part.anchor_time_hours, [12, 18]);
        assert_eq!(
            part.inputs,
            [100., 101., 102., 103., 200., 201., 202., 203.]
        );
        assert_eq!(part.targets, part.inputs);
        assert!(shard(&batch, 3..3).is_empty());
    }
}
