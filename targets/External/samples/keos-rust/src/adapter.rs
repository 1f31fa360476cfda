//! The thin adapter between eptfuzz's operations and the KeOS-style `ExtendedPageTable`.
//!
//! KeOS's API knows 4 KiB pages and three errors. What it cannot express is answered here, in the
//! case language's order (Unsupported, Unaligned, OutOfRange, InvalidPermission, then what the
//! tables decide), and everything else is the student's code.

use eptfuzz_target::{
    ApiError, ApiResult, Capabilities, EptpRequest, Gpa, GuestPaging, Gva, MemoryType, Operations,
    PageSizes, Pa, Permissions, Processor, Target, Translation, Walkers, PAGE_SIZE,
};

use crate::entry::{LeafAttributes, Permission};
use crate::ept::{EptMappingError, ExtendedPageTable};
use crate::guest;

/// A 4-level EPT reaches guest-physical addresses below 2^48.
const GPA_LIMIT: u64 = 1 << 48;

pub struct KeosTarget {
    cpu: Processor,
    ept: Option<ExtendedPageTable>,
    guest: GuestPaging,
}

impl KeosTarget {
    pub fn new() -> KeosTarget {
        KeosTarget { cpu: Processor::from_flags(46, 0), ept: None, guest: GuestPaging::default() }
    }

    /// The EPT; the harness sends SET_EPTP (which makes it) before any operation.
    fn ept(&mut self) -> Result<&mut ExtendedPageTable, ApiError> {
        self.ept.as_mut().ok_or(ApiError::Unsupported)
    }

    /// Execute (or, with MBEC, user execute) without read is valid only with the execute-only
    /// capability; write without read never is (SDM, "EPT Misconfigurations").
    fn permission_valid(&self, p: Permissions) -> bool {
        let read = p.contains(Permissions::READ);
        let execute = p.contains(Permissions::EXECUTE) || (self.cpu.mbec && p.contains(Permissions::USER_EXECUTE));
        if !read && p.contains(Permissions::WRITE) {
            return false;
        }
        read || !execute || self.cpu.execute_only
    }
}

fn api_error(e: EptMappingError) -> ApiError {
    match e {
        EptMappingError::Unaligned => ApiError::Unaligned,
        EptMappingError::NotExist => ApiError::NotExist,
        EptMappingError::Duplicated => ApiError::Duplicated,
    }
}

/// KeOS's permission flags from the protocol's: the same bits, read/write/execute/user execute.
fn permission(p: Permissions) -> Permission {
    Permission::of_entry(p.to_entry())
}

fn translation(t: crate::ept::Translation) -> Translation {
    Translation { hpa: t.hpa.into_u64(), page_size: t.size, permissions: Permissions::from_entry(t.permission.bits()) }
}

impl Target for KeosTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "keos-rust".to_string(),
            operations: Operations::MAP | Operations::UNMAP | Operations::INVEPT,
            page_sizes: PageSizes::SIZE_4K,
            walkers: if cfg!(feature = "guest-linear-walker") {
                Walkers::GUEST_PHYSICAL | Walkers::GUEST_LINEAR
            } else {
                Walkers::GUEST_PHYSICAL
            },
        }
    }

    fn reset(&mut self, cpu: &Processor) -> ApiResult {
        self.cpu = *cpu;
        self.ept = None;
        self.guest = GuestPaging::default();
        Ok(())
    }

    fn set_eptp(&mut self, request: &EptpRequest) -> Result<Pa, ApiError> {
        if request.walk_length != 4 || request.accessed_dirty {
            return Err(ApiError::Unsupported);
        }
        let ept = self.ept.get_or_insert_with(ExtendedPageTable::new);
        Ok(ept.pa())
    }

    fn map(&mut self, gpa: Gpa, hpa: Pa, size: u64, permissions: Permissions, memory_type: MemoryType, ignore_pat: bool) -> ApiResult {
        if size != PAGE_SIZE || (permissions.contains(Permissions::USER_EXECUTE) && !self.cpu.mbec) {
            return Err(ApiError::Unsupported);
        }
        // An unaligned request goes to the student's map, whose Unaligned is what is tested.
        if gpa.is_page_aligned() && hpa.is_page_aligned() {
            if gpa.into_u64() >= GPA_LIMIT || hpa.into_u64() >= self.cpu.hpa_limit() {
                return Err(ApiError::OutOfRange);
            }
            if !self.permission_valid(permissions) || !memory_type.is_valid() {
                return Err(ApiError::InvalidPermission);
            }
        }
        let attributes = LeafAttributes { permission: permission(permissions), memory_type, ignore_pat };
        self.ept()?.map(gpa, hpa, attributes).map_err(api_error)
    }

    /// KeOS unmaps one page; a range is unmapped page by page, all or nothing: every page must be
    /// mapped (by a 4 KiB leaf: the large pages made at boot cannot be split here) before any goes.
    fn unmap(&mut self, gpa: Gpa, size: u64) -> ApiResult {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(ApiError::Unaligned);
        }
        let ept = self.ept()?;
        if !gpa.is_page_aligned() {
            return ept.unmap(gpa).map(|_| ()).map_err(api_error);
        }
        let end = gpa.into_u64().checked_add(size).filter(|&end| end <= GPA_LIMIT).ok_or(ApiError::OutOfRange)?;
        let pages = (gpa.into_u64()..end).step_by(PAGE_SIZE as usize).map(Gpa::new);
        for page in pages.clone() {
            ept.walk(page).map_err(api_error)?;
        }
        for page in pages {
            ept.unmap(page).map_err(api_error)?;
        }
        Ok(())
    }

    fn walk_gpa(&mut self, gpa: Gpa) -> Option<Translation> {
        if gpa.into_u64() >= GPA_LIMIT {
            return None;
        }
        self.ept.as_ref()?.translate(gpa).map(translation)
    }

    fn set_guest(&mut self, guest: &GuestPaging) {
        self.guest = *guest;
    }

    /// gva → gpa through the guest's page tables (with paging off they are the same address), then
    /// gpa → hpa through the EPT.
    fn walk_gva(&mut self, gva: Gva) -> Option<Translation> {
        let ept = self.ept.as_ref()?;
        let gpa = if self.guest.enabled {
            guest::gva2gpa(ept, self.guest.cr3, gva)?
        } else {
            Gpa::new(gva.into_u64())
        };
        if gpa.into_u64() >= GPA_LIMIT {
            return None;
        }
        ept.translate(gpa).map(translation)
    }
}
