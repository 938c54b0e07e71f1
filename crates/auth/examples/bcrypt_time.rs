//! Times bcrypt verification with the crate the server uses, to give the
//! benchmark its login bound: `bcrypt_time COST N` prints JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let hash = bcrypt::hash("bench-passphrase-42", cost).unwrap();
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let started = Instant::now();
            assert!(bcrypt::verify("bench-passphrase-42", &hash).unwrap());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{{\"cost\": {cost}, \"runs\": {n}, \"verify_ms_median\": {:.2}, \"verify_ms_min\": {:.2}, \"verify_ms_max\": {:.2}, \"cores\": {cores}}}",
        times[n / 2],
        times[0],
        times[n - 1]
    );
}
