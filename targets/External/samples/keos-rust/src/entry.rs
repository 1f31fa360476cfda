//! EPT entries, one type per level, as the KeOS assignment names them.
//!
//! See the SDM, "EPT Translation Mechanism": the formats of an EPT PML4E, PDPTE, PDE and PTE.
//! Bits every level shares:
//!   [0] read, [1] write, [2] execute (supervisor execute under MBEC),
//!   [10] user-mode execute (with mode-based execute control),
//!   [51:12] the physical address of the next table or of the page.
//! Leaves add [5:3] memory type and [6] ignore PAT; a PDPTE or PDE with [7] set maps a
//! 1 GiB or 2 MiB page itself.
//!
//! An entry whose bits 2:0 are clear is not present: the processor does not follow it.

use eptfuzz_target::{MemoryType, Pa};

pub const READ: u64 = 1 << 0;
pub const WRITE: u64 = 1 << 1;
pub const EXECUTE: u64 = 1 << 2;
pub const USER_EXECUTE: u64 = 1 << 10;
/// [5:3] EPT memory type of a leaf.
pub const MEMORY_TYPE_SHIFT: u32 = 3;
pub const IGNORE_PAT: u64 = 1 << 6;
/// [7] in a PDPTE or PDE: this entry maps a page.
pub const PAGE_SIZE: u64 = 1 << 7;
/// [11] is ignored by the processor. Every leaf `map` writes carries it, so that a page mapped with
/// no permissions, type UC, at host address 0 is still not an all-zero (unused) entry.
pub const IN_USE: u64 = 1 << 11;
/// [51:12] physical address.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The permission a mapping grants, as KeOS's `Permission` flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Permission(u64);

impl Permission {


    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The permission bits of an entry.
    pub const fn of_entry(entry: u64) -> Permission {
        Permission(entry & (READ | WRITE | EXECUTE | USER_EXECUTE))
    }
}

impl std::ops::BitOr for Permission {
    type Output = Permission;
    fn bitor(self, rhs: Permission) -> Permission {
        Permission(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for Permission {
    type Output = Permission;
    fn bitand(self, rhs: Permission) -> Permission {
        Permission(self.0 & rhs.0)
    }
}

/// What a leaf carries besides its address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LeafAttributes {
    pub permission: Permission,
    pub memory_type: MemoryType,
    pub ignore_pat: bool,
}

impl LeafAttributes {
    /// The leaf's bits other than its address: permissions, [5:3] memory type, [6] ignore PAT.
    pub fn bits(self) -> u64 {
        let memory_type = (self.memory_type.0 as u64 & 7) << memory_type_shift();
        self.permission.bits() | memory_type | if self.ignore_pat { IGNORE_PAT } else { 0 }
    }
}

fn memory_type_shift() -> u32 {
    if cfg!(feature = "bug-memory-type-shift") {
        // BUG: the memory type one bit too low, over the execute bit.
        MEMORY_TYPE_SHIFT - 1
    } else {
        MEMORY_TYPE_SHIFT
    }
}

macro_rules! ept_entry {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        // Every level's type gets the same methods; not every level uses each of them.
        #[allow(dead_code)]
        impl $name {
            /// Nothing is here: the slot is free for a new table or page.
            pub fn is_unused(&self) -> bool {
                self.0 == 0
            }

            /// Any of read, write or execute: the processor follows this entry.
            pub fn is_present(&self) -> bool {
                if cfg!(feature = "bug-walk-nonzero-present") {
                    // BUG: "present" taken as "not zero": an entry whose permissions were all
                    // cleared still translates.
                    self.0 != 0
                } else {
                    self.0 & (READ | WRITE | EXECUTE) != 0
                }
            }

            /// The physical address in [51:12]: the next table, or the page.
            pub fn address(&self) -> Pa {
                if cfg!(feature = "bug-address-high-bits") {
                    // BUG: only the low 12 bits masked off: ignored bits 63:52 (and bit 11)
                    // end up in the address.
                    Pa::new(self.0 & !0xfff)
                } else {
                    Pa::new(self.0 & ADDRESS_MASK)
                }
            }

            /// The table this entry points at, or None where nothing is present.
            pub fn pa(&self) -> Option<Pa> {
                if self.is_present() {
                    Some(self.address())
                } else {
                    None
                }
            }

            pub fn permission(&self) -> Permission {
                Permission::of_entry(self.0)
            }

            pub fn clear(&mut self) {
                self.0 = 0;
            }
        }
    };
}

ept_entry!(
    /// An EPT PML4 entry: references a page-directory-pointer table.
    EptPml4e
);
ept_entry!(
    /// An EPT page-directory-pointer-table entry: references a page directory, or maps 1 GiB.
    EptPdpe
);
ept_entry!(
    /// An EPT page-directory entry: references a page table, or maps 2 MiB.
    EptPde
);
ept_entry!(
    /// An EPT page-table entry: maps 4 KiB.
    EptPte
);

impl EptPdpe {
    /// [7]: this entry maps a 1 GiB page.
    pub fn is_huge(&self) -> bool {
        self.0 & PAGE_SIZE != 0
    }
}

impl EptPde {
    /// [7]: this entry maps a 2 MiB page.
    pub fn is_huge(&self) -> bool {
        self.0 & PAGE_SIZE != 0
    }
}

impl EptPte {
    /// A 4 KiB leaf mapping the page at `page`.
    pub fn leaf(page: Pa, attributes: LeafAttributes) -> EptPte {
        EptPte(page.into_u64() | attributes.bits() | IN_USE)
    }
}
