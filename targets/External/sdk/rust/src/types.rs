//! The values the protocol carries, as Rust types (PROTOCOL.md, "Commands" and "Answers").

use std::fmt;

/// Why an operation failed: the error names of the case language, with the protocol's result
/// codes. When several apply, the first in this order is the answer: Unsupported, Unaligned,
/// OutOfRange, InvalidPermission, then Duplicated, NotExist, NotMergeable. `ResourceLimit` means the
/// arena ran out of pages (the case is refused as too large; never a finding).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ApiError {
    Unsupported = 1,
    Unaligned = 2,
    OutOfRange = 3,
    InvalidPermission = 4,
    Duplicated = 5,
    NotExist = 6,
    NotMergeable = 7,
    ResourceLimit = 8,
}

/// What an operation answers.
pub type ApiResult = Result<(), ApiError>;

/// EPT permissions as the protocol's byte: bit 0 read, 1 write, 2 execute (supervisor execute
/// under MBEC), 3 user-mode execute. In an EPT entry they are bits 0, 1, 2 and 10.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const READ: Permissions = Permissions(1);
    pub const WRITE: Permissions = Permissions(2);
    pub const EXECUTE: Permissions = Permissions(4);
    pub const USER_EXECUTE: Permissions = Permissions(8);
    pub const ALL: Permissions = Permissions(15);

    pub const fn from_bits(bits: u8) -> Permissions {
        Permissions(bits & 15)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Permissions) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    pub const fn intersection(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// The permission bits of an EPT entry: [0] read, [1] write, [2] execute, [10] user execute.
    pub const fn from_entry(entry: u64) -> Permissions {
        Permissions((entry & 7) as u8 | (((entry >> 10) & 1) as u8) << 3)
    }

    /// These permissions as EPT entry bits 0, 1, 2 and 10.
    pub const fn to_entry(self) -> u64 {
        (self.0 & 7) as u64 | (((self.0 >> 3) & 1) as u64) << 10
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        self.union(rhs)
    }
}

impl std::ops::BitAnd for Permissions {
    type Output = Permissions;
    fn bitand(self, rhs: Permissions) -> Permissions {
        self.intersection(rhs)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        for (bit, letter) in [(1u8, "r"), (2, "w"), (4, "x"), (8, "u")].iter() {
            if self.0 & bit != 0 {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// A memory type in its architectural encoding (an EPT leaf's bits 5:3). Any value 0-7 can
/// arrive: 2, 3 and 7 are reserved, and refusing them (InvalidPermission) is the target's job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MemoryType(pub u8);

impl MemoryType {
    pub const UC: MemoryType = MemoryType(0);
    pub const WC: MemoryType = MemoryType(1);
    pub const WT: MemoryType = MemoryType(4);
    pub const WP: MemoryType = MemoryType(5);
    pub const WB: MemoryType = MemoryType(6);

    /// UC, WC, WT, WP or WB: the types an EPT leaf may carry (2, 3 and 7 are a misconfiguration).
    pub const fn is_valid(self) -> bool {
        matches!(self.0, 0 | 1 | 4 | 5 | 6)
    }
}

/// The processor a case runs on (`RESET`): IA32_VMX_EPT_VPID_CAP facts and MAXPHYADDR.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Processor {
    pub max_phys_addr: u8,
    pub execute_only: bool,
    pub page_2m: bool,
    pub page_1g: bool,
    pub accessed_dirty: bool,
    pub mbec: bool,
    pub walk_5: bool,
    pub advanced_exit_info: bool,
    pub eptp_uc: bool,
    pub eptp_wb: bool,
}

impl Processor {
    /// A processor from RESET's fields: MAXPHYADDR and the capability flags, bit 0 execute-only,
    /// 1 2 MiB pages, 2 1 GiB pages, 3 A/D, 4 MBEC, 5 5-level walks, 6 advanced VM-exit
    /// information, 7 EPTP UC, 8 EPTP WB.
    pub fn from_flags(max_phys_addr: u8, flags: u16) -> Processor {
        let bit = |n: u16| flags & (1 << n) != 0;
        Processor {
            max_phys_addr,
            execute_only: bit(0),
            page_2m: bit(1),
            page_1g: bit(2),
            accessed_dirty: bit(3),
            mbec: bit(4),
            walk_5: bit(5),
            advanced_exit_info: bit(6),
            eptp_uc: bit(7),
            eptp_wb: bit(8),
        }
    }

    /// Host-physical addresses at or above this do not exist on the processor.
    pub fn hpa_limit(&self) -> u64 {
        1u64.checked_shl(self.max_phys_addr as u32).unwrap_or(u64::MAX)
    }
}

/// The operations a target implements (`HELLO` reply, bit set). The generator produces only these.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Operations(pub u32);

impl Operations {
    pub const MAP: Operations = Operations(1 << 0);
    pub const UNMAP: Operations = Operations(1 << 1);
    pub const PROTECT: Operations = Operations(1 << 2);
    pub const RETYPE: Operations = Operations(1 << 3);
    pub const SPLIT: Operations = Operations(1 << 4);
    pub const MERGE: Operations = Operations(1 << 5);
    /// `memory` and `identity-map`.
    pub const MEMORY: Operations = Operations(1 << 6);
    pub const INVEPT: Operations = Operations(1 << 7);
    /// `eptp walk=5`.
    pub const WALK_5: Operations = Operations(1 << 8);
    /// `eptp ad=1`.
    pub const ACCESSED_DIRTY: Operations = Operations(1 << 9);
    /// `controls mbec=1`.
    pub const MBEC: Operations = Operations(1 << 10);
}

impl std::ops::BitOr for Operations {
    type Output = Operations;
    fn bitor(self, rhs: Operations) -> Operations {
        Operations(self.0 | rhs.0)
    }
}

/// Page sizes `map` accepts (`HELLO` reply). Larger pages reach a target without them only
/// through raw steps, as a boot loader would have built them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PageSizes(pub u8);

impl PageSizes {
    pub const SIZE_4K: PageSizes = PageSizes(1);
    pub const SIZE_2M: PageSizes = PageSizes(2);
    pub const SIZE_1G: PageSizes = PageSizes(4);
}

impl std::ops::BitOr for PageSizes {
    type Output = PageSizes;
    fn bitor(self, rhs: PageSizes) -> PageSizes {
        PageSizes(self.0 | rhs.0)
    }
}

/// Which `WALK`s the target answers (`HELLO` reply).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Walkers(pub u8);

impl Walkers {
    pub const GUEST_PHYSICAL: Walkers = Walkers(1);
    pub const GUEST_LINEAR: Walkers = Walkers(2);
}

impl std::ops::BitOr for Walkers {
    type Output = Walkers;
    fn bitor(self, rhs: Walkers) -> Walkers {
        Walkers(self.0 | rhs.0)
    }
}

/// What a target says about itself in its `HELLO` reply.
#[derive(Clone, Debug)]
pub struct Capabilities {
    pub name: String,
    pub operations: Operations,
    pub page_sizes: PageSizes,
    pub walkers: Walkers,
}

/// The INVEPT types of the protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InveptType {
    SingleContext = 1,
    Global = 2,
}

/// A translation the target's own lookup found (`WALK` reply, status 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    /// The host-physical address of the address asked for: the leaf's address plus the offset.
    pub hpa: u64,
    /// The size of the leaf: 4096, 2 MiB or 1 GiB.
    pub page_size: u64,
    /// The leaf's permission bits.
    pub permissions: Permissions,
}

/// What `SET_EPTP` asks for: the case's `eptp mt=… walk=… ad=…`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EptpRequest {
    pub memory_type: MemoryType,
    pub walk_length: u8,
    pub accessed_dirty: bool,
}

impl EptpRequest {
    /// The EPTP with root `root`: [2:0] memory type, [5:3] walk length - 1, [6] A/D enable,
    /// [51:12] the root table's address (SDM "Extended-Page-Table Pointer (EPTP)").
    pub const fn eptp(&self, root: u64) -> u64 {
        (root & !0xfff)
            | (self.memory_type.0 as u64 & 7)
            | ((self.walk_length as u64).wrapping_sub(1) & 7) << 3
            | (self.accessed_dirty as u64) << 6
    }
}

/// The guest's paging (`SET_GUEST`, sent to targets with a guest-linear lookup whenever it
/// changes): off (a guest-linear address is the guest-physical one), or 4-level paging.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GuestPaging {
    /// 4-level paging is on.
    pub enabled: bool,
    /// CR3: [51:12] the guest-physical address of the PML4 table.
    pub cr3: u64,
    /// CR0.WP.
    pub write_protect: bool,
    /// IA32_EFER.NXE.
    pub nxe: bool,
    /// CR4.SMEP.
    pub smep: bool,
}
