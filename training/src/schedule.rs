//! Learning-rate schedule: linear warm-up, then cosine decay (GraphCast, Lam et al. 2023), and the
//! autoregressive rollout curriculum.

use serde::{Deserialize, Serialize};

/// Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to `final_lr` at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub peak: f64,
    pub final_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LrSchedule {
    /// The learning rate used for update number `step` (0-based).
    ///
    /// Warm-up: `peak · (step + 1) / warmup_steps`, so the first update is not wasted at lr 0.
    /// Decay: `final + (peak − final) · (1 + cos(π · t)) / 2` with `t` the fraction of the decay phase done.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.final_lr + (self.peak - self.final_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Rollout curriculum: the number of autoregressive steps trained through at each update.
/// `rollout_steps(step)` rises from 1 to `max_steps`, one more every `every` updates after `start`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RolloutCurriculum {
    pub start: usize,
    pub every: usize,
    pub max_steps: usize,
}

impl RolloutCurriculum {
    pub fn rollout_steps(&self, step: usize) -> usize {
        if step < self.start || self.every == 0 {
            return 1;
        }
        (1 + (step - self.start) / self.every + 1).min(self.max_steps.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: LrSchedule = LrSchedule {
        peak: 1e-3,
        final_lr: 0.0,
        warmup_steps: 10,
        total_steps: 110,
    };

    #[test]
    fn warmup_is_linear() {
        assert!((SCHEDULE.lr(0) - 1e-4).abs() < 1e-15);
        assert!((SCHEDULE.lr(4) - 5e-4).abs() < 1e-15);
        assert!((SCHEDULE.lr(9) - 1e-3).abs() < 1e-15);
    }

    #[test]
    fn cosine_decay_hits_known_values() {
        // Start of decay: peak; half way (step 60): (1 + cos(π/2))/2 = 1/2; end: final.
        assert!((SCHEDULE.lr(10) - 1e-3).abs() < 1e-15);
        assert!((SCHEDULE.lr(60) - 5e-4).abs() < 1e-15);
        // A quarter of the way: (1 + cos(π/4))/2 = 0.853553...
        assert!((SCHEDULE.lr(35) - 1e-3 * 0.853_553_390_593_273_7).abs() < 1e-15);
        assert!(SCHEDULE.lr(110).abs() < 1e-15);
        assert!(SCHEDULE.lr(500).abs() < 1e-15);
    }

    #[test]
    fn curriculum_rises_to_its_cap() {
        let c = RolloutCurriculum {
            start: 100,
            every: 50,
            max_steps: 3,
        };
        assert_eq!(c.rollout_steps(0), 1);
        assert_eq!(c.rollout_steps(99), 1);
        assert_eq!(c.rollout_steps(100), 2);
        assert_eq!(c.rollout_steps(149), 2);
        assert_eq!(c.rollout_steps(150), 3);
        assert_eq!(c.rollout_steps(10_000), 3);
    }
}
