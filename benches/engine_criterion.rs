//! Criterion view of the same workload: one whole instance (build, create, three transitions),
//! and the product definition's longest path through its approval route.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use itaku::workflow::kinds::workload::Workload;

fn workload(c: &mut Criterion) {
    let w = match Workload::new() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot compile the workload: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = w.guard_checks() {
        eprintln!("guard check failed: {e}");
        std::process::exit(1);
    }
    let mut g = c.benchmark_group("workload");
    g.throughput(Throughput::Elements(3));
    let mut i = 0u64;
    g.bench_function("instance_with_three_transitions", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(w.run_instance(black_box(i)))
        });
    });
    g.finish();
}

criterion_group!(benches, workload);
criterion_main!(benches);
