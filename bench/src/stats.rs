//! Small arithmetic on measurements: nearest-rank percentiles and rates.

use std::time::Duration;

/// The nearest-rank `percent` percentile of `values` (sorted here); `None` when empty.
pub fn percentile(values: &[f64], percent: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The largest value; `None` when empty.
pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().max_by(f64::total_cmp)
}

/// `count` events per second over `span`; `None` for an empty span.
pub fn per_second(count: usize, span: Duration) -> Option<f64> {
    let secs = span.as_secs_f64();
    (secs > 0.0).then(|| count as f64 / secs)
}

pub fn millis(span: Duration) -> f64 {
    span.as_secs_f64() * 1000.0
}

/// A figure with one decimal, or `NA` when it could not be measured.
pub fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "NA".to_string(), |x| format!("{x:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(max(&[1.0, 3.0, 2.0]), Some(3.0));
    }

    #[test]
    fn rates_and_display() {
        assert_eq!(per_second(10, Duration::from_millis(500)), Some(20.0));
        assert_eq!(per_second(10, Duration::ZERO), None);
        assert_eq!(show(Some(2.449)), "2.4");
        assert_eq!(show(None), "NA");
    }
}
