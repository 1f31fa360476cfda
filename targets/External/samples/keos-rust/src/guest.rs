//! gva → gpa through the guest's own page tables (4-level paging), each table read through the EPT.
//!
//! See the SDM, "4-Level Paging and 5-Level Paging": CR3[51:12] locates the PML4 table; bits
//! 47:39, 38:30, 29:21 and 20:12 of the linear address select the PML4E, PDPTE, PDE and PTE; an
//! entry with [0] clear is not present; a PDPTE or PDE with [7] (PS) set maps a 1 GiB or 2 MiB
//! page; [51:12] is the next table's (or the page's) guest-physical address.

use eptfuzz_target::{Gpa, Gva, Pa};

use crate::ept::ExtendedPageTable;

const PRESENT: u64 = 1 << 0;
/// [7] in a PDPTE or PDE: the entry maps a page.
const PAGE_SIZE: u64 = 1 << 7;
/// [51:12] the guest-physical address of the next table or the page.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The guest-physical address that `gva` maps to, or None when the guest's tables do not map it
/// (or the EPT does not map one of the guest's tables).
pub fn gva2gpa(ept: &ExtendedPageTable, cr3: u64, gva: Gva) -> Option<Gpa> {
    let va = gva.into_u64();
    let mut table = cr3 & ADDRESS_MASK;
    // (shift of the index, may this level map a page?) from the PML4 down.
    for &(shift, can_map) in [(39u32, false), (30, true), (21, true), (12, true)].iter() {
        let index = (va >> shift) & 0x1ff;
        let entry = read_guest(ept, Gpa::new(table + index * 8))?;
        if entry & PRESENT == 0 {
            return None;
        }
        let is_page = shift == 12 || (can_map && entry & PAGE_SIZE != 0 && !ignores_page_size(shift));
        if is_page {
            let size = 1u64 << shift;
            let page = entry & ADDRESS_MASK & !(size - 1);
            return Some(Gpa::new(page + (va & (size - 1))));
        }
        table = entry & ADDRESS_MASK;
    }
    None
}

/// BUG (bug-gva-ignores-ps): a 2 MiB guest page's PDE is followed as if it pointed at a table.
fn ignores_page_size(shift: u32) -> bool {
    cfg!(feature = "bug-gva-ignores-ps") && shift == 21
}

/// A word of guest memory: its guest-physical address translated by the EPT, then read from host
/// memory (for guest tables: the harness's copy, which it sends with WRITE).
fn read_guest(ept: &ExtendedPageTable, gpa: Gpa) -> Option<u64> {
    let hpa: Pa = ept.translate(gpa)?.hpa;
    // SAFETY: into_kva gives 8 readable bytes at any 8-aligned host-physical address (guest
    // page-table entries are 8-aligned).
    Some(unsafe { hpa.into_kva().as_ptr::<u64>().read() })
}
