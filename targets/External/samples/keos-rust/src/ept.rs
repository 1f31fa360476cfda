//! A KeOS-style `ExtendedPageTable`: the code a student writes for the EPT assignment.
//!
//! `map` and `unmap` work on 4 KiB pages and answer the three errors of the assignment; `walk`
//! finds a 4 KiB page's entry; `translate` turns a guest-physical address into a host-physical
//! one across 4 KiB, 2 MiB and 1 GiB leaves (the large ones were made at boot, never by `map`).
//!
//! Each `cfg(feature = "bug-…")` block is a mistake students make; only the bug-catalog test
//! builds them.

use eptfuzz_target::{invept, is_table_page, Gpa, InveptType, Page, Pa};

use crate::entry::{
    EptPdpe, EptPde, EptPml4e, EptPte, LeafAttributes, Permission, ADDRESS_MASK, EXECUTE, READ, USER_EXECUTE, WRITE,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EptMappingError {
    /// An address is not aligned to the page size.
    Unaligned,
    /// Nothing is mapped at the address.
    NotExist,
    /// The address is already mapped.
    Duplicated,
}

/// Bytes a leaf maps at each level.
pub const SIZE_4K: u64 = 1 << 12;
pub const SIZE_2M: u64 = 1 << 21;
pub const SIZE_1G: u64 = 1 << 30;

/// What `translate` finds: where the guest-physical address lands, the size of the leaf that maps
/// it, and the permission every entry on the way grants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    pub hpa: Pa,
    pub size: u64,
    pub permission: Permission,
}

// The index into each table is nine bits of the guest-physical address (SDM, "EPT Translation
// Mechanism"): 47:39 select the PML4E, 38:30 the PDPTE, 29:21 the PDE, 20:12 the PTE.

fn pml4_index(gpa: Gpa) -> usize {
    if cfg!(feature = "bug-index-mask") {
        // BUG: eight bits instead of nine: bit 47 of the address is lost.
        ((gpa.into_u64() >> 39) & 0xff) as usize
    } else {
        ((gpa.into_u64() >> 39) & 0x1ff) as usize
    }
}

fn pdpt_index(gpa: Gpa) -> usize {
    ((gpa.into_u64() >> 30) & 0x1ff) as usize
}

fn pd_index(gpa: Gpa) -> usize {
    if cfg!(feature = "bug-index-shift") {
        // BUG: the page-directory index taken one bit too high (30:22 instead of 29:21).
        ((gpa.into_u64() >> 22) & 0x1ff) as usize
    } else {
        ((gpa.into_u64() >> 21) & 0x1ff) as usize
    }
}

fn pt_index(gpa: Gpa) -> usize {
    ((gpa.into_u64() >> 12) & 0x1ff) as usize
}

/// The 512 entries of the table page at `pa`.
fn table<'a, E>(pa: Pa) -> &'a mut [E; 512] {
    // SAFETY: `pa` is a table this EPT linked (an arena page it holds), or, when the walk was
    // misled, another page of host memory that the SDK backs; the EPT is its only user while an
    // operation runs, and E is a u64-sized entry.
    unsafe { &mut *pa.into_kva().as_mut_ptr::<[E; 512]>() }
}

/// The permission of an entry that points at a new table: everything, so that the leaf alone
/// decides an access.
fn table_permission(leaf: Permission) -> u64 {
    if cfg!(feature = "bug-table-takes-leaf-permissions") {
        // BUG: the new table's entry copies the first leaf's permissions, which then limit
        // every other page mapped under it.
        leaf.bits() & (READ | WRITE | EXECUTE | USER_EXECUTE)
    } else {
        READ | WRITE | EXECUTE
    }
}

/// A fresh, zeroed table page, kept (its entry will point at it).
fn new_table() -> Pa {
    Page::new().into_raw()
}

/// The table below a table entry, for `map`: a new one where the slot is unused. Anything but one
/// of this EPT's own tables means the address is taken: a large page (made at boot), or an entry
/// some other writer left there (the raw edits eptfuzz makes); `map` does not write through it.
fn table_for_map(entry: &mut u64, huge: bool, leaf: Permission) -> Result<Pa, EptMappingError> {
    if *entry == 0 {
        *entry = new_table().into_u64() | table_permission(leaf);
    }
    let address = Pa::new(*entry & ADDRESS_MASK);
    if cfg!(feature = "bug-duplicated-leaf-only") {
        // BUG: whatever is there is taken for a table; only the leaf is checked for Duplicated.
        return Ok(address);
    }
    let present = *entry & (READ | WRITE | EXECUTE) != 0;
    if present && !huge && is_table_page(address) {
        Ok(address)
    } else {
        Err(EptMappingError::Duplicated)
    }
}

pub struct ExtendedPageTable {
    pml4: Page,
}

impl ExtendedPageTable {
    pub fn new() -> ExtendedPageTable {
        ExtendedPageTable { pml4: Page::new() }
    }

    /// The root table's address, for the EPTP.
    pub fn pa(&self) -> Pa {
        self.pml4.pa()
    }

    fn pml4(&self) -> &mut [EptPml4e; 512] {
        table(self.pml4.pa())
    }

    /// Maps the 4 KiB page at `gpa` to `hpa`.
    pub fn map(&mut self, gpa: Gpa, hpa: Pa, attributes: LeafAttributes) -> Result<(), EptMappingError> {
        if !gpa.is_page_aligned() || !hpa.is_page_aligned() {
            return Err(EptMappingError::Unaligned);
        }

        let leaf = attributes.permission;
        let pml4e = &mut self.pml4()[pml4_index(gpa)];
        let pdpt = table_for_map(&mut pml4e.0, false, leaf)?;
        let pdpe = &mut table::<EptPdpe>(pdpt)[pdpt_index(gpa)];
        let huge = pdpe.is_huge();
        let pd = table_for_map(&mut pdpe.0, huge, leaf)?;
        let pde = &mut table::<EptPde>(pd)[pd_index(gpa)];
        let huge = pde.is_huge();
        let pt = table_for_map(&mut pde.0, huge, leaf)?;
        let pte = &mut table::<EptPte>(pt)[pt_index(gpa)];
        // BUG (bug-map-overwrites): a page already there is replaced, as JOS's page_insert does.
        if !pte.is_unused() && !cfg!(feature = "bug-map-overwrites") {
            return Err(EptMappingError::Duplicated);
        }
        *pte = EptPte::leaf(hpa, attributes);
        Ok(())
    }

    /// The page table entry for the 4 KiB page at `gpa`, used or not; NotExist when no page table
    /// covers `gpa` (or a large page does).
    fn pte_slot(&self, gpa: Gpa) -> Result<&mut EptPte, EptMappingError> {
        let pml4e = self.pml4()[pml4_index(gpa)];
        let pdpt = match pml4e.pa() {
            Some(pa) if is_table_page(pa) => pa,
            None if cfg!(feature = "bug-unwrap-missing-table") => {
                // BUG: "there is always a table here".
                panic!("no page-directory-pointer table for {:?}", gpa)
            }
            _ => return Err(EptMappingError::NotExist),
        };
        let pdpe = table::<EptPdpe>(pdpt)[pdpt_index(gpa)];
        if !pdpe.is_present() || pdpe.is_huge() || !is_table_page(pdpe.address()) {
            return Err(EptMappingError::NotExist);
        }
        let pde = table::<EptPde>(pdpe.address())[pd_index(gpa)];
        if !pde.is_present() || pde.is_huge() || !is_table_page(pde.address()) {
            return Err(EptMappingError::NotExist);
        }
        Ok(&mut table::<EptPte>(pde.address())[pt_index(gpa)])
    }

    /// The entry that maps the 4 KiB page at `gpa`.
    pub fn walk(&self, gpa: Gpa) -> Result<&EptPte, EptMappingError> {
        let pte = self.pte_slot(gpa)?;
        if pte.is_unused() {
            Err(EptMappingError::NotExist)
        } else {
            Ok(pte)
        }
    }

    /// Removes the 4 KiB page at `gpa`; gives the host-physical page it mapped.
    pub fn unmap(&mut self, gpa: Gpa) -> Result<Pa, EptMappingError> {
        if !gpa.is_page_aligned() {
            return Err(EptMappingError::Unaligned);
        }
        let pte = self.pte_slot(gpa)?;
        if pte.is_unused() {
            return Err(EptMappingError::NotExist);
        }
        let page = pte.address();
        if cfg!(feature = "bug-unmap-keeps-address") {
            // BUG: only the permissions cleared; the address and memory type stay behind.
            pte.0 &= !(READ | WRITE | EXECUTE | USER_EXECUTE);
        } else if cfg!(feature = "bug-unmap-clears-pde") {
            // BUG: the page directory's entry cleared instead: the whole page table (and its 511
            // other pages) is cut off.
            self.pde_of(gpa).clear();
        } else {
            pte.clear();
        }
        if cfg!(feature = "bug-free-linked-table") {
            self.free_page_table_if_empty(gpa);
        }

        // The processor may still hold the old translation: see the SDM, "Invalidation of
        // Translations Derived from EPT". Global, because translations cached under another EPTP
        // that points at these tables (a VMM may switch EPTPs) are stale too.
        if !cfg!(feature = "bug-no-invept") {
            invept(InveptType::Global);
        }
        Ok(page)
    }

    /// The page-directory entry on the way to `gpa` (which `pte_slot` found present).
    fn pde_of(&self, gpa: Gpa) -> &mut EptPde {
        let pdpt = self.pml4()[pml4_index(gpa)].address();
        let pd = table::<EptPdpe>(pdpt)[pdpt_index(gpa)].address();
        &mut table::<EptPde>(pd)[pd_index(gpa)]
    }

    /// BUG (bug-free-linked-table): gives an emptied page table back but leaves the page
    /// directory's entry pointing at it.
    fn free_page_table_if_empty(&mut self, gpa: Gpa) {
        let pt = self.pde_of(gpa).address();
        if table::<EptPte>(pt).iter().all(|e| e.is_unused()) {
            // SAFETY: (not really: the entry still links it, which is the bug.)
            drop(unsafe { Page::from_pa(pt) });
        }
    }

    /// gpa → hpa through whatever leaf maps it (4 KiB, or 2 MiB / 1 GiB made at boot).
    pub fn translate(&self, gpa: Gpa) -> Option<Translation> {
        let pml4e = self.pml4()[pml4_index(gpa)];
        let mut tables = pml4e.permission();

        let pdpe = table::<EptPdpe>(pml4e.pa()?)[pdpt_index(gpa)];
        if !pdpe.is_present() {
            return None;
        }
        if pdpe.is_huge() && !cfg!(feature = "bug-huge-as-table") {
            let offset_mask = if cfg!(feature = "bug-1g-offset-mask") {
                // BUG: the 2 MiB offset used for a 1 GiB page too.
                SIZE_2M - 1
            } else {
                SIZE_1G - 1
            };
            return Some(leaf(pdpe.address(), gpa, SIZE_1G, offset_mask, effective(tables, pdpe.permission())));
        }
        tables = tables & pdpe.permission();

        let pde = table::<EptPde>(pdpe.address())[pd_index(gpa)];
        if !pde.is_present() {
            return None;
        }
        if pde.is_huge() && !cfg!(feature = "bug-huge-as-table") {
            return Some(leaf(pde.address(), gpa, SIZE_2M, SIZE_2M - 1, effective(tables, pde.permission())));
        }
        tables = tables & pde.permission();

        let pte = table::<EptPte>(pde.address())[pt_index(gpa)];
        if !pte.is_present() {
            return None;
        }
        Some(leaf(pte.address(), gpa, SIZE_4K, SIZE_4K - 1, effective(tables, pte.permission())))
    }
}

/// What an access may do through a leaf: each permission must be granted by every entry on the
/// way (PROTOCOL.md's WALK answer: the AND of bits 0, 1, 2 and 10 over the walk). Table entries
/// made here grant read, write and execute, so the leaf decides those.
fn effective(tables: Permission, leaf: Permission) -> Permission {
    if cfg!(feature = "bug-leaf-permissions") {
        // BUG: only the leaf's permissions count.
        leaf
    } else {
        tables & leaf
    }
}

/// The translation through a leaf of `size` bytes at `page`.
fn leaf(page: Pa, gpa: Gpa, size: u64, offset_mask: u64, permission: Permission) -> Translation {
    let offset = if size != SIZE_4K && cfg!(feature = "bug-huge-offset") {
        // BUG: only the offset within a 4 KiB page added.
        gpa.page_offset()
    } else {
        gpa.into_u64() & offset_mask
    };
    Translation { hpa: Pa::new(page.into_u64() & !(size - 1)) + offset, size, permission }
}
