//! Addresses as distinct types, so that a guest-physical address cannot be passed where a
//! host-physical one is expected (the names KeOS uses: `Pa`, `Kva`; plus `Gpa` and `Gva`).

use std::fmt;
use std::ops::{Add, Sub};

use crate::memory;

/// A host-physical address: what an EPT leaf or table pointer holds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pa(u64);

/// A guest-physical address: what an EPT translates.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gpa(u64);

/// A guest-linear (virtual) address: what the guest's own page tables translate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gva(u64);

/// An address in this process where the bytes of a host-physical address can be read and
/// written (a kernel's "kernel virtual address"). Valid until the next `RESET`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kva(usize);

macro_rules! address {
    ($t:ident, $name:expr) => {
        impl $t {
            pub const fn new(value: u64) -> $t {
                $t(value)
            }

            pub const fn into_u64(self) -> u64 {
                self.0
            }

            /// The offset within the 4 KiB page.
            pub const fn page_offset(self) -> u64 {
                self.0 & 0xfff
            }

            pub const fn is_page_aligned(self) -> bool {
                self.page_offset() == 0
            }
        }

        impl Add<u64> for $t {
            type Output = $t;
            fn add(self, rhs: u64) -> $t {
                $t(self.0.wrapping_add(rhs))
            }
        }

        impl Sub<u64> for $t {
            type Output = $t;
            fn sub(self, rhs: u64) -> $t {
                $t(self.0.wrapping_sub(rhs))
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({:#x})"), self.0)
            }
        }

        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address!(Pa, "Pa");
address!(Gpa, "Gpa");
address!(Gva, "Gva");

impl Pa {
    /// Where this host-physical address can be accessed: inside the arena for table pages (the
    /// harness sees every write), in the SDK's private copy of host memory otherwise (filled by the
    /// harness's `WRITE`s, all zero where it wrote nothing; writes there stay private).
    pub fn into_kva(self) -> Kva {
        Kva(memory::pointer_of(self.0) as usize)
    }
}

impl Kva {
    pub const fn into_usize(self) -> usize {
        self.0
    }

    /// The host-physical address this pointer stands for. Panics for a pointer that
    /// [`Pa::into_kva`] did not give.
    pub fn into_pa(self) -> Pa {
        Pa(memory::physical_of(self.0))
    }

    pub fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }

    pub fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

impl Add<usize> for Kva {
    type Output = Kva;
    fn add(self, rhs: usize) -> Kva {
        Kva(self.0 + rhs)
    }
}

impl fmt::Debug for Kva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kva({:#x})", self.0)
    }
}
