//! Table pages: what a kernel's page allocator gives KeOS-style code, taken from the arena.

use std::fmt;

use crate::addr::{Kva, Pa};
use crate::memory;

/// The panic payload of [`Page::new`] when the arena has no free page: the SDK answers the
/// operation `ResourceLimit` (the case is refused as too large, never a finding).
pub(crate) struct OutOfPages;

/// One 4 KiB arena page, all zero when taken. Dropping it gives it back (a FREE event);
/// [`Page::into_raw`] keeps it taken, for a table that an entry now points at.
pub struct Page {
    pa: Pa,
}

impl Page {
    /// Takes the lowest free arena page. When none is left the current operation stops and is
    /// answered `ResourceLimit`, as a kernel's allocator failing would stop it.
    pub fn new() -> Page {
        match Page::try_new() {
            Some(page) => page,
            None => std::panic::panic_any(OutOfPages),
        }
    }

    /// Takes the lowest free arena page, or None when all of them are taken.
    pub fn try_new() -> Option<Page> {
        memory::allocate().map(|pa| Page { pa: Pa::new(pa) })
    }

    /// Takes back a page that [`Page::into_raw`] gave out.
    ///
    /// # Safety
    /// `pa` must be a page this target holds and that nothing else will give back. (The SDK still
    /// checks: giving back a page twice, or one never taken, is reported as a FAULT.)
    pub unsafe fn from_pa(pa: Pa) -> Page {
        Page { pa }
    }

    pub fn pa(&self) -> Pa {
        self.pa
    }

    pub fn kva(&self) -> Kva {
        self.pa.into_kva()
    }

    /// Keeps the page taken and gives its address (for a table an entry now points at).
    pub fn into_raw(self) -> Pa {
        let pa = self.pa;
        std::mem::forget(self);
        pa
    }

    pub fn inner(&self) -> &[u8; 4096] {
        // SAFETY: an arena page is 4096 bytes of the shared mapping, owned by this Page.
        unsafe { &*self.kva().as_ptr::<[u8; 4096]>() }
    }

    pub fn inner_mut(&mut self) -> &mut [u8; 4096] {
        // SAFETY: as for inner; &mut self makes the access exclusive.
        unsafe { &mut *self.kva().as_mut_ptr::<[u8; 4096]>() }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        memory::release(self.pa.into_u64());
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({:#x})", self.pa.into_u64())
    }
}
