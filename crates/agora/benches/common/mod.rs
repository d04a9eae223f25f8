//! Helpers shared by the benchmarks: settings from the environment and the output format
//! of ../shared/peers (`name  metric  median  unit  min  max  n`).

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn emit(name: &str, metric: &str, values: &[f64], unit: &str) -> f64 {
    let m = median(values);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "{name}\t{metric}\t{m:.3}\t{unit}\t{min:.3}\t{max:.3}\t{}",
        values.len()
    );
    m
}
