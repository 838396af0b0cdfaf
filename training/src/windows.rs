//! Training samples cut from a time series of fields, split by date, shuffled by one seed, and batched on a
//! background thread.
//!
//! A sample anchored at time `t` has inputs at `t − Δ` and `t` (GraphCast's two input states) and targets at
//! `t + Δ·k` for `k = 1..=K`. A sample belongs to a split only if **all** of its times lie in the split's range
//! `[start, end)`, so no field is both input of one split and target of another. Only the training split is
//! shuffled; validation and test run in time order.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, DatasetError, parse_iso8601_hours, uniform_step_hours};

/// Defaults, in one place.
mod defaults {
    /// Δ = 6 h, GraphCast's step (Lam et al. 2023).
    pub fn step_hours() -> i64 {
        6
    }
    pub fn lead_steps() -> usize {
        1
    }
    pub fn batch_size() -> usize {
        1
    }
    pub fn prefetch_batches() -> usize {
        2
    }
}

/// A time range `[start, end)` given as ISO 8601 dates or date-times (`"2016-01-01"`, `"2016-01-01T06:00:00Z"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub start: String,
    /// Exclusive: `end = "2017-01-01"` ends with the last time of 2016.
    pub end: String,
}

/// How samples are cut and split (the `[windows]` table of a training config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Δ in hours: between the two inputs and between lead steps; a multiple of the data's time step.
    #[serde(default = "defaults::step_hours")]
    pub step_hours: i64,
    /// K: number of lead steps in each target.
    #[serde(default = "defaults::lead_steps")]
    pub lead_steps: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// The one seed behind every shuffle (epoch `e` uses stream `e` of ChaCha8 seeded with it).
    #[serde(default)]
    pub seed: u64,
    /// Batches prepared ahead by the background thread.
    #[serde(default = "defaults::prefetch_batches")]
    pub prefetch_batches: usize,
    pub train: TimeRange,
    pub val: TimeRange,
    pub test: TimeRange,
}

/// The three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    fn key(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Errors building windows or batches. Config errors name the key; the caller adds the config file's path.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("`{key}`: {detail}")]
    Config { key: String, detail: String },
    #[error("splits `{a}` and `{b}` overlap")]
    OverlappingSplits { a: String, b: String },
    #[error("data time axis: {0}")]
    TimeAxis(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// Where fields come from: an in-memory [`Dataset`] or a [`crate::dataset::Reader`] streaming from disk.
pub trait FrameSource: Send + Sync {
    /// Valid times, hours since 1970, evenly spaced.
    fn time_hours(&self) -> &[i64];
    /// channels × lat × lon.
    fn frame_len(&self) -> usize;
    /// Frames for times `times`: [times, channel, lat, lon].
    fn read_frames(&self, times: Range<usize>) -> Result<Vec<f32>, DatasetError>;
}

impl FrameSource for Dataset {
    fn time_hours(&self) -> &[i64] {
        &self.time_hours
    }
    fn frame_len(&self) -> usize {
        Dataset::frame_len(self)
    }
    fn read_frames(&self, times: Range<usize>) -> Result<Vec<f32>, DatasetError> {
        let n = Dataset::frame_len(self);
        self.data
            .get(times.start * n..times.end * n)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| DatasetError::TimeRangeOutOfBounds {
                path: "<in-memory dataset>".into(),
                start: times.start,
                end: times.end,
                count: self.data.len() / n.max(1),
            })
    }
}

/// Sample anchors of each split for one time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    config: WindowConfig,
    /// Δ in time steps of the data.
    stride: usize,
    /// Valid times of the data.
    time_hours: Vec<i64>,
    /// Anchor indices (time t) per split, in time order: train, val, test.
    anchors: [Vec<usize>; 3],
}

impl Windows {
    /// Validates the config against the data's time axis and finds every sample of each split.
    pub fn new(config: &WindowConfig, time_hours: &[i64]) -> Result<Self, WindowError> {
        let config_error = |key: &str, detail: String| WindowError::Config {
            key: key.to_string(),
            detail,
        };
        if config.lead_steps == 0 {
            return Err(config_error("lead_steps", "must be at least 1".to_string()));
        }
        if config.batch_size == 0 {
            return Err(config_error("batch_size", "must be at least 1".to_string()));
        }
        if config.prefetch_batches == 0 {
            return Err(config_error(
                "prefetch_batches",
                "must be at least 1".to_string(),
            ));
        }
        let data_step = uniform_step_hours(time_hours)
            .map_err(|(i, step, first)| {
                WindowError::TimeAxis(format!("step {i} is {step} h, the first {first} h"))
            })?
            .ok_or_else(|| WindowError::TimeAxis("fewer than two times".to_string()))?;
        if config.step_hours <= 0 || config.step_hours % data_step != 0 {
            return Err(config_error(
                "step_hours",
                format!(
                    "{} h is not a positive multiple of the data's {data_step} h step",
                    config.step_hours
                ),
            ));
        }
        let mut ranges = Vec::with_capacity(3);
        for split in Split::ALL {
            let range = config.range(split);
            let parse = |field: &str, text: &str| {
                parse_iso8601_hours(text)
                    .map_err(|e| config_error(&format!("{}.{field}", split.key()), e.0))
            };
            let (start, end) = (parse("start", &range.start)?, parse("end", &range.end)?);
            if start >= end {
                return Err(config_error(
                    split.key(),
                    format!("start {} is not before end {}", range.start, range.end),
                ));
            }
            ranges.push((split, start, end));
        }
        for (i, &(a, a_start, a_end)) in ranges.iter().enumerate() {
            for &(b, b_start, b_end) in &ranges[i + 1..] {
                if a_start < b_end && b_start < a_end {
                    return Err(WindowError::OverlappingSplits {
                        a: a.key().to_string(),
                        b: b.key().to_string(),
                    });
                }
            }
        }
        let stride = (config.step_hours / data_step) as usize;
        let reach = stride * config.lead_steps;
        let anchors: [Vec<usize>; 3] = std::array::from_fn(|i| {
            let (_, start, end) = ranges[i];
            (stride..time_hours.len().saturating_sub(reach))
                .filter(|&t| time_hours[t - stride] >= start && time_hours[t + reach] < end)
                .collect()
        });
        Ok(Self {
            config: config.clone(),
            stride,
            time_hours: time_hours.to_vec(),
            anchors,
        })
    }

    /// Anchor indices (of time t) of a split, in time order.
    pub fn anchors(&self, split: Split) -> &[usize] {
        &self.anchors[split as usize]
    }

    /// Number of samples in a split.
    pub fn sample_count(&self, split: Split) -> usize {
        self.anchors(split).len()
    }

    /// The anchors in the order of epoch `epoch`: shuffled for training (same seed and epoch, same order), in time
    /// order otherwise.
    pub fn epoch_order(&self, split: Split, epoch: u64) -> Vec<usize> {
        let mut order = self.anchors(split).to_vec();
        if split == Split::Train {
            let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Time indices of a sample: inputs `[t − Δ, t]` and targets `[t + Δ, .., t + KΔ]`.
    pub fn sample_times(&self, anchor: usize) -> ([usize; 2], Vec<usize>) {
        let targets = (1..=self.config.lead_steps)
            .map(|k| anchor + k * self.stride)
            .collect();
        ([anchor - self.stride, anchor], targets)
    }

    /// Starts a background thread that reads the samples of `split` for `epoch` and sends batches of
    /// `batch_size` (the last one may be smaller) through a channel holding `prefetch_batches`.
    pub fn batches(
        &self,
        source: Arc<dyn FrameSource>,
        split: Split,
        epoch: u64,
    ) -> Result<Prefetcher, WindowError> {
        if source.time_hours() != self.time_hours.as_slice() {
            return Err(WindowError::TimeAxis(
                "the source's times differ from those the windows were built for".into(),
            ));
        }
        let order = self.epoch_order(split, epoch);
        let windows = self.clone();
        let (sender, receiver) = sync_channel(self.config.prefetch_batches);
        let handle = std::thread::Builder::new()
            .name(format!("prefetch-{}", split.key()))
            .spawn(move || windows.produce(source.as_ref(), &order, &sender))
            .map_err(|e| WindowError::TimeAxis(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Prefetcher {
            receiver: Some(receiver),
            handle: Some(handle),
        })
    }

    /// Body of the prefetch thread: stops at the end, at the first error, or when the receiver is dropped.
    fn produce(
        &self,
        source: &dyn FrameSource,
        order: &[usize],
        sender: &SyncSender<Result<Batch, WindowError>>,
    ) {
        for anchors in order.chunks(self.config.batch_size) {
            let batch = self.read_batch(source, anchors);
            let failed = batch.is_err();
            if sender.send(batch).is_err() || failed {
                return;
            }
        }
    }

    fn read_batch(
        &self,
        source: &dyn FrameSource,
        anchors: &[usize],
    ) -> Result<Batch, WindowError> {
        let frame_len = source.frame_len();
        let lead_steps = self.config.lead_steps;
        let mut inputs = Vec::with_capacity(anchors.len() * 2 * frame_len);
        let mut targets = Vec::with_capacity(anchors.len() * lead_steps * frame_len);
        for &anchor in anchors {
            let (input_times, target_times) = self.sample_times(anchor);
            for t in input_times {
                inputs.extend(source.read_frames(t..t + 1)?);
            }
            for t in target_times {
                targets.extend(source.read_frames(t..t + 1)?);
            }
        }
        Ok(Batch {
            inputs,
            targets,
            anchor_time_hours: anchors.iter().map(|&a| self.time_hours[a]).collect(),
            lead_steps,
            frame_len,
        })
    }
}

impl WindowConfig {
    /// The configured range of a split.
    pub fn range(&self, split: Split) -> &TimeRange {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// One batch as plain arrays; the trainer turns them into tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// [batch, 2, channel, lat, lon]: the fields at t − Δ and t.
    pub inputs: Vec<f32>,
    /// [batch, lead_steps, channel, lat, lon]: the fields at t + Δ, .., t + KΔ.
    pub targets: Vec<f32>,
    /// [batch]: t of each sample, hours since 1970-01-01T00:00:00Z.
    pub anchor_time_hours: Vec<i64>,
    pub lead_steps: usize,
    /// channel × lat × lon.
    pub frame_len: usize,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.anchor_time_hours.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchor_time_hours.is_empty()
    }
}

/// Batches arriving from the background thread; dropping it stops the thread.
pub struct Prefetcher {
    receiver: Option<Receiver<Result<Batch, WindowError>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetcher {
    type Item = Result<Batch, WindowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked `send` fail, so the thread ends and can be joined.
        drop(self.receiver.take());
        if let Some(handle) = self.handle.take() {
            // A panic in the thread has already been reported on stderr; there is nothing more to do here.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Channel;

    fn config(seed: u64) -> WindowConfig {
        WindowConfig {
            step_hours: 6,
            lead_steps: 2,
            batch_size: 3,
            seed,
            prefetch_batches: 2,
            train: TimeRange {
                start: "2000-01-01".into(),
                end: "2000-01-03".into(),
            },
            val: TimeRange {
                start: "2000-01-03".into(),
                end: "2000-01-04".into(),
            },
            test: TimeRange {
                start: "2000-01-04".into(),
                end: "2000-01-05T12:00:00Z".into(),
            },
        }
    }

    /// Six-hourly times from 2000-01-01T00 to 2000-01-05T18 (20 times); 2000-01-01 is hour 262,968 since 1970.
    fn times() -> Vec<i64> {
        (0..20).map(|i| 262_968 + 6 * i).collect()
    }

    #[test]
    fn sample_counts_follow_from_the_ranges() {
        let windows = Windows::new(&config(1), &times()).unwrap();
        // Train [day 1, day 3): 8 times (indices 0..8); a sample needs t−6 h and t+12 h inside: t in 1..=5.
        assert_eq!(windows.anchors(Split::Train), &[1, 2, 3, 4, 5]);
        // Val [day 3, day 4): indices 8..12, t in 9..=9.
        assert_eq!(windows.anchors(Split::Val), &[9]);
        // Test [day 4, day 5 12:00): indices 12..18, t in 13..=15.
        assert_eq!(windows.anchors(Split::Test), &[13, 14, 15]);
        assert_eq!(windows.sample_times(5), ([4, 5], vec![6, 7]));
    }

    #[test]
    fn twelve_hour_steps_on_six_hourly_data_use_every_other_time() {
        let mut twelve = config(1);
        twelve.step_hours = 12;
        twelve.lead_steps = 1;
        let windows = Windows::new(&twelve, &times()).unwrap();
        // Train indices 0..8: t − 2 >= 0 and t + 2 <= 7: t in 2..=5.
        assert_eq!(windows.anchors(Split::Train), &[2, 3, 4, 5]);
        assert_eq!(windows.sample_times(4), ([2, 4], vec![6]));
    }

    #[test]
    fn same_seed_same_order_other_seed_or_epoch_other_order() {
        let times: Vec<i64> = (0..400).map(|i| 262_968 + 6 * i).collect();
        let mut cfg = config(7);
        cfg.train.end = "2000-03-01".into();
        cfg.val = TimeRange {
            start: "2000-03-01".into(),
            end: "2000-03-10".into(),
        };
        cfg.test = TimeRange {
            start: "2000-03-10".into(),
            end: "2000-04-10".into(),
        };
        let a = Windows::new(&cfg, &times).unwrap();
        let b = Windows::new(&cfg, &times).unwrap();
        assert_eq!(
            a.epoch_order(Split::Train, 0),
            b.epoch_order(Split::Train, 0)
        );
        assert_ne!(
            a.epoch_order(Split::Train, 0),
            a.epoch_order(Split::Train, 1)
        );
        cfg.seed = 8;
        let c = Windows::new(&cfg, &times).unwrap();
        assert_ne!(
            a.epoch_order(Split::Train, 0),
            c.epoch_order(Split::Train, 0)
        );
        let mut sorted = c.epoch_order(Split::Train, 0);
        sorted.sort_unstable();
        assert_eq!(sorted, a.anchors(Split::Train));
        assert_eq!(a.epoch_order(Split::Val, 3), a.anchors(Split::Val));
    }

    #[test]
    fn bad_configs_name_their_key() {
        let mut overlapping = config(1);
        overlapping.val.start = "2000-01-02".into();
        assert!(matches!(
            Windows::new(&overlapping, &times()),
            Err(WindowError::OverlappingSplits { .. })
        ));
        let mut bad_date = config(1);
        bad_date.test.end = "2000-02-30".into();
        match Windows::new(&bad_date, &times()) {
            Err(WindowError::Config { key, .. }) => assert_eq!(key, "test.end"),
            other => panic!("expected a config error, got {other:?}"),
        }
        let mut odd_step = config(1);
        odd_step.step_hours = 9;
        assert!(matches!(
            Windows::new(&odd_step, &times()),
            Err(WindowError::Config { .. })
        ));
    }

    const TOML_CONFIG: &str = r#"
        seed = 3
        train = { start = "2000-01-01", end = "2000-01-03" }
        val = { start = "2000-01-03", end = "2000-01-04" }
        test = { start = "2000-01-04", end = "2000-01-05" }
    "#;

    #[test]
    fn config_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
        let cfg: WindowConfig = toml::from_str(TOML_CONFIG).unwrap();
        assert_eq!(
            (
                cfg.step_hours,
                cfg.lead_steps,
                cfg.batch_size,
                cfg.seed,
                cfg.prefetch_batches
            ),
            (6, 1, 1, 3, 2)
        );
        let with_typo = format!("lead_step = 4\n{TOML_CONFIG}");
        assert!(toml::from_str::<WindowConfig>(&with_typo).is_err());
    }

    #[test]
    fn prefetched_batches_hold_the_right_frames() {
        // One channel on a 1 × 1 grid whose value is the time index, so each value names its frame.
        let dataset = Dataset {
            channels: vec![Channel {
                name: "x".into(),
                variable: "x".into(),
                level: None,
                units: String::new(),
            }],
            lat: vec![0.0],
            lon: vec![0.0],
            time_hours: times(),
            data: (0..20).map(|i| i as f32).collect(),
        };
        let windows = Windows::new(&config(1), &dataset.time_hours).unwrap();
        let batches: Vec<Batch> = windows
            .batches(Arc::new(dataset), Split::Train, 0)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            batches.iter().map(Batch::len).collect::<Vec<_>>(),
            vec![3, 2]
        );
        let order = windows.epoch_order(Split::Train, 0);
        for (batch, anchors) in batches.iter().zip(order.chunks(3)) {
            for (s, &t) in anchors.iter().enumerate() {
                assert_eq!(&batch.inputs[2 * s..2 * s + 2], &[(t - 1) as f32, t as f32]);
                assert_eq!(
                    &batch.targets[2 * s..2 * s + 2],
                    &[(t + 1) as f32, (t + 2) as f32]
                );
                assert_eq!(batch.anchor_time_hours[s], 262_968 + 6 * t as i64);
            }
        }
    }

    #[test]
    fn dropping_the_prefetcher_early_stops_the_thread() {
        let dataset = Dataset {
            channels: vec![Channel {
                name: "x".into(),
                variable: "x".into(),
                level: None,
                units: String::new(),
            }],
            lat: vec![0.0],
            lon: vec![0.0],
            time_hours: times(),
            data: vec![0.0; 20],
        };
        let mut cfg = config(1);
        cfg.batch_size = 1;
        cfg.prefetch_batches = 1;
        let windows = Windows::new(&cfg, &dataset.time_hours).unwrap();
        let mut prefetcher = windows.batches(Arc::new(dataset), Split::Train, 0).unwrap();
        assert!(prefetcher.next().is_some());
        drop(prefetcher);
    }
}
