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

#[cfg(test)]
mod tests {
    //! The guest walker on guest tables written as the harness's `gmap` would, in host memory
    //! outside the arena (the SDK's WRITE), under an EPT made by the sample's own `map`.

    use eptfuzz_target::{testing, Gpa, Gva, MemoryType, Pa};

    use super::gva2gpa;
    use crate::entry::{LeafAttributes, Permission};
    use crate::ept::ExtendedPageTable;

    const RW: u64 = 0b11;
    const P: u64 = 1;
    const PS: u64 = 1 << 7;

    fn rwx() -> LeafAttributes {
        LeafAttributes { permission: Permission::of_entry(7), memory_type: MemoryType::WB, ignore_pat: false }
    }

    /// Guest tables at GPA 0x100_0000.. (HPA = GPA + 0x4000_0000): PML4 → PDPT → PD, with a 2 MiB
    /// page at gva 0x7f_8000_0000 and, through a page table, a 4 KiB page at gva 0x20_1000.
    fn guest() -> ExtendedPageTable {
        testing::start(0x3f_0000_0000, 32);
        let mut ept = ExtendedPageTable::new();
        let tables = 0x100_0000u64;
        for i in 0..5 {
            ept.map(Gpa::new(tables + i * 0x1000), Pa::new(0x4000_0000 + tables + i * 0x1000), rwx()).unwrap();
        }
        let host = |gpa: u64| gpa + 0x4000_0000;
        let (pml4, pdpt, pd_hi, pd_lo) = (tables, tables + 0x2000, tables + 0x3000, tables + 0x4000);
        // gva 0x7f_8000_0000: PML4 index 0, PDPT index 510, PD index 0.
        testing::write(host(pml4), pdpt | P | RW);
        testing::write(host(pdpt + 510 * 8), pd_hi | P | RW);
        testing::write(host(pd_hi), 0x160_0000 | P | RW | PS);
        // gva 0x20_1000: PML4 index 0, PDPT index 0, PD index 1, PT index 1.
        testing::write(host(pdpt), pd_lo | P | RW);
        testing::write(host(pd_lo + 8), 0x180_0000 | P | RW);
        testing::write(host(0x180_0000 + 8), 0x1_2345_6000 | P | RW);
        ept.map(Gpa::new(0x180_0000), Pa::new(0x4180_0000), rwx()).unwrap();
        ept
    }

    #[test]
    fn a_2m_guest_page_maps_its_whole_offset() {
        let ept = guest();
        assert_eq!(gva2gpa(&ept, 0x100_0000, Gva::new(0x7f_8001_2345)), Some(Gpa::new(0x161_2345)));
    }

    #[test]
    fn a_4k_guest_page_through_a_page_table() {
        let ept = guest();
        assert_eq!(gva2gpa(&ept, 0x100_0000, Gva::new(0x20_1abc)), Some(Gpa::new(0x1_2345_6abc)));
    }

    #[test]
    fn not_present_entries_and_unmapped_tables_translate_nothing() {
        let ept = guest();
        assert_eq!(gva2gpa(&ept, 0x100_0000, Gva::new(0x20_2000)), None, "PTE not present");
        assert_eq!(gva2gpa(&ept, 0x100_0000, Gva::new(0x80_0000_0000)), None, "PML4E not present");
        assert_eq!(gva2gpa(&ept, 0x200_0000, Gva::new(0x20_1000)), None, "the EPT does not map CR3's table");
    }
}
