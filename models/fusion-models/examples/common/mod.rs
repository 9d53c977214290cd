//! What the text benchmarks share.

/// The median of `v` (not empty); of an even count, the mean of the two
/// middle values, as Python's `statistics.median` (the PyTorch side of
/// `models/bench/text_encoder_vs_pytorch.py`).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}
