//! The in-memory engine benchmark of `shared/bench/WORKLOAD.md`: one thread, N instances, each
//! built, created, submitted, checked and approved; finished instances are retained. Prints one
//! JSON line. `BENCH_N` sets N (default 100,000).

mod common;

use std::process::ExitCode;
use std::time::Instant;

use common::status_kb;
use itaku::workflow::kinds::workload::Workload;

fn main() -> ExitCode {
    let n: u64 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let w = match Workload::new() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot compile the workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = w.guard_checks() {
        eprintln!("guard check failed: {e}");
        return ExitCode::FAILURE;
    }
    for i in 0..1_000 {
        if !w.is_approved(&w.run_instance(i)) {
            eprintln!("warm-up instance {i} was not approved");
            return ExitCode::FAILURE;
        }
    }
    let mut retained = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let rss_baseline_kb = status_kb("VmRSS:");
    let start = Instant::now();
    for i in 0..n {
        let inst = w.run_instance(i);
        if !w.is_approved(&inst) {
            eprintln!("instance {i} was not approved");
            return ExitCode::FAILURE;
        }
        retained.push(inst);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let peak_rss_kb = status_kb("VmHWM:");
    let rss_after_kb = status_kb("VmRSS:");
    let transitions = n * 3;
    #[allow(clippy::cast_precision_loss)]
    let line = serde_json::json!({
        "peer": "itaku",
        "version": env!("CARGO_PKG_VERSION"),
        "runtime": "rust, in-memory, 1 thread",
        "n": n,
        "transitions": transitions,
        "elapsed_s": elapsed,
        "instances_per_s": n as f64 / elapsed,
        "transitions_per_s": transitions as f64 / elapsed,
        "rss_baseline_kb": rss_baseline_kb,
        "peak_rss_kb": peak_rss_kb,
        "retained_instances": retained.len(),
        "bytes_per_retained_instance": (rss_after_kb.saturating_sub(rss_baseline_kb) * 1024) as f64 / n as f64,
        "guard_checks": "ok",
    });
    println!("{line}");
    ExitCode::SUCCESS
}
