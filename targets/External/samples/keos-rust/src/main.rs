//! keos-rust-ept: a KeOS-style EPT (the `ExtendedPageTable` of the KeOS assignment, written fresh)
//! run as an eptfuzz target.
//!
//!     cargo build --release
//!     eptfuzz fuzz --targets model,exec:target/release/keos-rust-ept

mod adapter;
mod entry;
mod ept;
mod guest;

fn main() {
    eptfuzz_target::run(adapter::KeosTarget::new())
}
