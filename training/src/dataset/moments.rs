//! Mean and standard deviation accumulated block by block, shared by `data stats` and the normalisation statistics.

/// Running count, mean and sum of squared deviations, merged block by block (Chan, Golub & LeVeque 1979) so that
/// long sums of large values (geopotential ~5e4) keep their precision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Adds a block of values, skipping NaN and infinities.
    pub fn push_finite(&mut self, values: impl Iterator<Item = f64> + Clone) {
        let (mut count, mut sum) = (0_u64, 0.0_f64);
        for v in values.clone().filter(|v| v.is_finite()) {
            count += 1;
            sum += v;
        }
        if count == 0 {
            return;
        }
        let mean = sum / count as f64;
        let m2: f64 = values
            .filter(|v| v.is_finite())
            .map(|v| (v - mean) * (v - mean))
            .sum();
        self.merge(&Self { count, mean, m2 });
    }

    /// Combines two sets of moments as if all values had been pushed to one.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        self.mean += delta * other.count as f64 / count as f64;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / count as f64;
        self.count = count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Population standard deviation (divides by the count).
    pub fn std(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.m2 / self.count as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_merge_like_one_pass() {
        let values: Vec<f64> = (0..100)
            .map(|i| 5.0e4 + (i as f64 * 0.37).sin() * 3.0e3)
            .collect();
        let mut whole = Moments::default();
        whole.push_finite(values.iter().copied());
        let mut parts = Moments::default();
        for chunk in values.chunks(7) {
            parts.push_finite(chunk.iter().copied());
        }
        let mean = values.iter().sum::<f64>() / 100.0;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 100.0;
        assert!((whole.mean().unwrap() - mean).abs() < 1e-9);
        assert!((parts.std().unwrap() - var.sqrt()).abs() < 1e-9);
        parts.push_finite([f64::NAN, f64::INFINITY].into_iter());
        assert_eq!(parts.count(), 100);
    }
}
