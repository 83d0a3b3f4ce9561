//! Audit log benchmarks (being written).
fn main() {}
