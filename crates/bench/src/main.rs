//! The `loupe-bench` binary: parses [`loupe_bench::BenchArgs`] and runs the
//! benchmark (docs/BENCHMARKS.md says how). Exits non-zero when it fails or
//! when any answer differs between Loupe and PostgreSQL.

// The allocator `loupe` ships with, so Loupe's side measures what the
// server would do.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    match loupe_bench::run(loupe_bench::BenchArgs::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
