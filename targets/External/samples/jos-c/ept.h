/*
 * EPT entries and tables, in the style of the JOS-vmx EPT exercise: 4-level tables of 512
 * 64-bit entries, walked by the guest-physical address. Section and table numbers are those
 * of the 2016 SDM (Vol. 3C, chapter 28, "VMX Support for Address Translation"); newer
 * editions renumber them (shared/spec/ept-rules.md, section 0.1).
 */
#ifndef JOS_EPT_H
#define JOS_EPT_H

#include "bugs.h"
#include "eptfuzz_target.h"

#include <stdint.h>

typedef uint64_t epte_t;

#define NEPTENTRIES 512

/* Bits 2:0 of every EPT entry (Tables 28-1 to 28-6): read, write and execute access. */
#define EPTE_R 0x001ull
#define EPTE_W 0x002ull
#define EPTE_X 0x004ull
#define EPTE_RWX (EPTE_R | EPTE_W | EPTE_X)

/* Table 28-2 (PDPTE that maps a 1-GByte page), Table 28-4 (PDE that maps a 2-MByte page),
 * Table 28-6 (EPT page-table entry): bits 5:3 the EPT memory type, bit 6 ignore PAT. */
#define EPTE_MT_SHIFT 3
#define EPTE_MT_MASK 0x038ull
#define EPTE_IPAT 0x040ull

/* Tables 28-2 and 28-4: bit 7 must be 1 (otherwise the entry references a table). */
#define EPTE_PS 0x080ull

/* Bit 10: execute access for user-mode linear addresses under mode-based execute control
 * (newer editions; ignored without it). */
#define EPTE_XU 0x400ull

/* Bit 11 is ignored by the processor in every EPT entry. This hypervisor sets it in each leaf
 * it writes, so that a mapping without permissions, type or address (all zero otherwise)
 * is still told apart from a free slot: an entry is in use exactly when it is not 0. */
#define EPTE_MAPPED 0x800ull

/* Bits 51:12: the physical address of the referenced table or page (N-1:12 where N is
 * MAXPHYADDR; bits 51:N are reserved). */
#define EPTE_ADDR 0x000FFFFFFFFFF000ull

/* Table levels: 4 the PML4 (the root), 1 the page table. */
enum { PT = 1, PD = 2, PDPT = 3, PML4 = 4 };

/* "EPT Translation Mechanism" (§28.2.2): bits 47:39 of the guest-physical address select the
 * PML4E, 38:30 the PDPTE, 29:21 the PDE and 20:12 the PTE. */
#define PTXSHIFT 12
#ifndef BUG_PDX_SHIFT
#define PDXSHIFT 21
#else
#define PDXSHIFT 22 /* as in JOS's 32-bit mmu.h */
#endif
#define PDPTXSHIFT 30
#define PML4XSHIFT 39

unsigned ept_shift(int level);
/* Bytes that one entry at `level` covers: 4 KiB, 2 MiB, 1 GiB, 512 GiB. */
uint64_t ept_span(int level);
unsigned ept_index(uint64_t gpa, int level);

/* A leaf maps a page: every PTE, and a PDE or PDPTE with bit 7 set. */
int epte_is_leaf(epte_t entry, int level);
/* The table an entry references, or NULL when it is not one of this hypervisor's tables. */
epte_t *epte_table(epte_t entry);

/* The processor's facts the tables depend on (set at reset). */
void ept_configure(const struct eptfuzz_cpu *cpu);

/* The leaf entry that maps gpa (its level in *level), or NULL when nothing is mapped there. */
epte_t *ept_find(epte_t *pml4, uint64_t gpa, int *level);
/* True when nothing is mapped in the `level`-sized page at gpa (aligned). */
int ept_page_is_free(epte_t *pml4, uint64_t gpa, int level);
/* Writes a leaf at `level` for gpa, making missing tables on the way (JOS's pgdir_walk with
 * create). The slot must be free (ept_page_is_free). */
enum eptfuzz_result ept_map_page(epte_t *pml4, uint64_t gpa, int level, epte_t leaf);
/* Replaces the huge page in *entry (a leaf at `level`) by a table of 512 smaller pages with the
 * same attributes. Returns 0 when out of table pages (nothing changed then). */
int ept_split(epte_t *entry, int level);
/* Frees every table under `table` that maps nothing any more; 1 when `table` maps nothing. */
int ept_free_empty(epte_t *table, int level);
/* The lookup a guest access would make: follows entries with any of bits 2:0 set. */
int ept_walk(epte_t *pml4, uint64_t gpa, struct eptfuzz_walk *out);

#endif
