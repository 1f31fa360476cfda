//! The bug features are for the catalog test only: a build that switches one on must say it is a
//! test build (EPTFUZZ_TEST_BUILD=1), so that no shipped binary carries a planted bug.

use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=EPTFUZZ_TEST_BUILD");
    let bugs: Vec<String> = env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CARGO_FEATURE_BUG_"))
        .collect();
    if !bugs.is_empty() && env::var("EPTFUZZ_TEST_BUILD").map(|v| v != "1").unwrap_or(true) {
        panic!(
            "{} switched on outside a test build: bug features are for the bug-catalog test (set EPTFUZZ_TEST_BUILD=1)",
            bugs.join(", ")
        );
    }
}
