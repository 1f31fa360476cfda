//! keos-rust-ept: a KeOS-style EPT (the `ExtendedPageTable` of the KeOS assignment, written fresh)
//! run as an eptfuzz target.
//!
//!     cargo build --release
//!     eptfuzz fuzz --targets model,exec:target/release/keos-rust-ept

mod adapter;
mod entry;
mod ept;
// gva -> gpa through the guest's page tables. Protocol version 1 gives external targets no guest
// paging (no CR3), so the adapter cannot declare the guest-linear walker yet; the walker is
// tested by its unit tests (`cargo test`) until a SET_GUEST command exists.
#[allow(dead_code)]
mod guest;

fn main() {
    eptfuzz_target::run(adapter::KeosTarget::new())
}
