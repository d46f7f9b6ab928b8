//! loupe-loupe
fn main() {}
