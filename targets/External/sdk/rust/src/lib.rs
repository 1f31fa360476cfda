//! # eptfuzz-target: make a Rust EPT implementation an eptfuzz target
//!
//! This crate speaks the eptfuzz target protocol, version 1 (`targets/External/PROTOCOL.md`), so
//! that an adapter never sees a byte of it. It gives EPT code what a kernel would:
//!
//! - addresses as distinct types: [`Pa`] (host-physical), [`Gpa`], [`Gva`], and [`Kva`], where
//!   the bytes of a host-physical address can be read and written ([`Pa::into_kva`]);
//! - a page allocator over the shared arena: [`Page`] (dropping a page gives it back), so that
//!   the harness reads the very table bytes the code wrote and checks that every page it holds is
//!   linked from the root;
//! - [`invept`], the invalidation the code does when it changes a live entry;
//! - [`run`], the command loop: implement [`Target`] (one method per operation) and call
//!   `eptfuzz_target::run(MyTarget::new())` from `main`.
//!
//! std only, no dependencies: it builds offline with Debian 12's Rust 1.63.
//!
//! A panic in the code under test prints its message on standard error (the harness puts the
//! tail into the crash finding) and ends the process with status 101. Running out of arena
//! pages inside [`Page::new`] is not a crash: the operation is answered `ResourceLimit` (the SDK
//! unwinds out of the operation, so keep the default `panic = "unwind"`; with `panic = "abort"`
//! use [`Page::try_new`]).

mod addr;
mod channel;
mod memory;
mod page;
mod run;
mod sys;
mod target;
mod types;

pub use addr::{Gpa, Gva, Kva, Pa};
pub use page::Page;

/// Whether `pa` lies in an arena page this target holds: one of its own table pages. Code that
/// walks tables to change them can refuse to follow an entry that some other writer (a boot
/// loader's large page, a raw edit) pointed elsewhere.
pub fn is_table_page(pa: Pa) -> bool {
    memory::holds(pa.into_u64())
}
pub use run::{fail, invept, run, EXIT_PANIC, PROTOCOL_VERSION};
pub use target::Target;
pub use types::{
    ApiError, ApiResult, Capabilities, EptpRequest, GuestPaging, InveptType, MemoryType, Operations, PageSizes,
    Permissions, Processor, Translation, Walkers,
};

/// Running adapter code without a harness, for `cargo test`: a private arena, a RESET, the
/// harness's WRITEs, and the events the code produced.
pub mod testing {
    use crate::memory;

    /// Gives this thread an arena of `pages` pages at host-physical `arena_hpa` and starts a case
    /// in which all of them are usable. Call it again to start another case.
    pub fn start(arena_hpa: u64, pages: u32) {
        let attached = memory::arena_pages();
        if attached == 0 {
            memory::attach_private(pages);
        } else {
            assert_eq!(attached, pages, "the private arena keeps its size");
        }
        memory::begin_reset(arena_hpa, pages).expect("a private arena accepts RESET");
        memory::end_reset();
    }

    /// What the harness's `WRITE` does: a word of host memory outside the arena.
    pub fn write(hpa: u64, value: u64) {
        memory::write_foreign(hpa, value).expect("WRITE outside the arena, 8-byte aligned");
    }

    /// What the SDK checks after every command: host memory outside the arena that the code
    /// reached through [`crate::Pa::into_kva`] still holds what the harness wrote there.
    pub fn check_host_memory() -> Result<(), String> {
        match memory::foreign_write() {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    /// The events since the last call, as (kind, value): 1 ALLOC, 2 FREE, 3 INVEPT.
    pub fn take_events() -> Vec<(u8, u32)> {
        let mut events = Vec::new();
        memory::take_events(&mut events);
        events
    }
}

/// The size of a table page and of the smallest EPT page.
pub const PAGE_SIZE: u64 = memory::PAGE_SIZE;
