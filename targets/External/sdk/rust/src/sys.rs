//! The few C library calls std does not offer: duplicating descriptors and mapping the arena.
//! Declared here rather than taken from the `libc` crate so that the SDK builds offline.

use std::io;
use std::os::raw::{c_int, c_long, c_void};

extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: c_long) -> *mut c_void;
}

// <sys/mman.h> on Linux (every architecture eptfuzz runs on) and the BSDs.
const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 1;

/// A new descriptor for the same open file as `fd`.
pub fn duplicate(fd: c_int) -> io::Result<c_int> {
    // SAFETY: dup has no memory effects; a bad descriptor is reported through errno.
    let new = unsafe { dup(fd) };
    if new < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(new)
    }
}

/// Makes `new` refer to the open file of `old`.
pub fn redirect(old: c_int, new: c_int) -> io::Result<()> {
    // SAFETY: as for dup.
    if unsafe { dup2(old, new) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Maps `len` bytes of the file `fd` from `offset` shared and read-write, for the life of the process.
pub fn map_shared(fd: c_int, len: usize, offset: u64) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping at an address the kernel picks aliases no Rust object.
    let p = unsafe { mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset as c_long) };
    if p as isize == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as *mut u8)
    }
}
