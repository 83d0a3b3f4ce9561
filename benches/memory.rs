//! Memory benchmark (filled in below).
fn main() {}
