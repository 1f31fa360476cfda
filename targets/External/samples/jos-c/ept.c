/*
 * The EPT tables themselves: lookup, map, split and free, over 4-level tables whose pages
 * come from the eptfuzz SDK's arena allocator.
 */
#include "ept.h"

#include <stddef.h>
#include <string.h>

static int has_2m_pages;
static int has_mbec;

void ept_configure(const struct eptfuzz_cpu *cpu)
{
    has_2m_pages = (cpu->flags & EPTFUZZ_CPU_PAGE_2M) != 0;
    has_mbec = (cpu->flags & EPTFUZZ_CPU_MBEC) != 0;
}

unsigned ept_shift(int level)
{
    static const unsigned shifts[] = { 0, PTXSHIFT, PDXSHIFT, PDPTXSHIFT, PML4XSHIFT };
    return shifts[level];
}

uint64_t ept_span(int level)
{
    return 1ull << ept_shift(level);
}

unsigned ept_index(uint64_t gpa, int level)
{
    return (unsigned)(gpa >> ept_shift(level)) & (NEPTENTRIES - 1);
}

int epte_is_leaf(epte_t entry, int level)
{
    return level == PT || ((level == PD || level == PDPT) && (entry & EPTE_PS));
}

epte_t *epte_table(epte_t entry)
{
    epte_t *table = eptfuzz_phys_to_virt(entry & EPTE_ADDR);
    /* Only pages this hypervisor took are its tables: a raw edit can point an entry at guest
     * memory, which eptfuzz_phys_to_virt answers for too (read-only, for the lookup). */
    return table != NULL && eptfuzz_page_held(table) ? table : NULL;
}

/* The host-physical address of the page a leaf at `level` maps: bits 51:12 of a PTE, 51:21 of
 * a PDE (Table 28-4: bits 20:12 are reserved), 51:30 of a PDPTE (Table 28-2). */
static uint64_t leaf_frame(epte_t leaf, int level)
{
#ifndef BUG_ADDR_40BIT
    return leaf & EPTE_ADDR & ~(ept_span(level) - 1);
#else
    return leaf & 0x000000FFFFFFF000ull & ~(ept_span(level) - 1); /* a 40-bit frame mask */
#endif
}

/* "Non-leaf entries that operations create grant every permission and carry no other bits"
 * (case-format.md): the leaf alone decides an access. */
static epte_t table_entry(epte_t *table)
{
    return eptfuzz_virt_to_phys(table) | EPTE_RWX | (has_mbec ? EPTE_XU : 0);
}

epte_t *ept_find(epte_t *pml4, uint64_t gpa, int *level)
{
    epte_t *table = pml4;
    for (int l = PML4;; l--) {
        epte_t *entry = &table[ept_index(gpa, l)];
        if (*entry == 0)
            return NULL;
        if (epte_is_leaf(*entry, l)) {
            *level = l;
            return entry;
        }
        table = epte_table(*entry);
#ifndef BUG_LOOKUP_NULL
        if (table == NULL)
            return NULL; /* not one of this hypervisor's tables (a raw edit made the entry) */
#endif
    }
}

int ept_page_is_free(epte_t *pml4, uint64_t gpa, int level)
{
    epte_t *table = pml4;
    for (int l = PML4; l > level; l--) {
        epte_t entry = table[ept_index(gpa, l)];
        if (entry == 0)
            return 1;
        if (epte_is_leaf(entry, l))
            return 0; /* a larger page covers it */
        table = epte_table(entry);
        if (table == NULL)
            return 0; /* not a table of ours: not ours to overwrite */
    }
    /* A table here holds mappings: empty tables are freed (ept_free_empty). */
    return table[ept_index(gpa, level)] == 0;
}

enum eptfuzz_result ept_map_page(epte_t *pml4, uint64_t gpa, int level, epte_t leaf)
{
    epte_t *table = pml4;
    for (int l = PML4; l > level; l--) {
        epte_t *entry = &table[ept_index(gpa, l)];
        if (*entry == 0) {
            epte_t *fresh = eptfuzz_page_alloc();
            if (fresh == NULL)
                return EPTFUZZ_RESOURCE_LIMIT;
            *entry = table_entry(fresh);
        }
        if (epte_is_leaf(*entry, l))
            return EPTFUZZ_DUPLICATED;
        table = epte_table(*entry);
        if (table == NULL)
            return EPTFUZZ_DUPLICATED;
    }
    table[ept_index(gpa, level)] = leaf;
    return EPTFUZZ_OK;
}

static void free_page_tables(epte_t *table, int count)
{
    for (int i = 0; i < count; i++)
        eptfuzz_page_free(epte_table(table[i]));
}

/* Fills a new table at `level` with 512 pages from `base` on, each with `attributes`. Where
 * the processor has no 2 MiB pages, a 2 MiB slot becomes a page table of 4 KiB pages. */
static int fill_table(epte_t *table, int level, uint64_t base, epte_t attributes)
{
    for (int i = 0; i < NEPTENTRIES; i++) {
#ifndef BUG_SPLIT_HPA
        uint64_t hpa = base + (uint64_t)i * ept_span(level);
#else
        uint64_t hpa = base + (uint64_t)i * ept_span(level + 1); /* the size of the page being split */
#endif
        if (level == PD && !has_2m_pages) {
            epte_t *pt = eptfuzz_page_alloc();
            if (pt == NULL) {
                free_page_tables(table, i);
                return 0;
            }
            fill_table(pt, PT, hpa, attributes);
            table[i] = table_entry(pt);
        } else {
            table[i] = hpa | attributes | (level == PT ? 0 : EPTE_PS);
        }
    }
    return 1;
}

int ept_split(epte_t *entry, int level)
{
    epte_t *table = eptfuzz_page_alloc();
    if (table == NULL)
        return 0;
#ifndef BUG_SPLIT_DROPS_TYPE
    epte_t attributes = *entry & ~EPTE_ADDR & ~EPTE_PS;
#else
    epte_t attributes = *entry & (EPTE_RWX | EPTE_XU | EPTE_MAPPED); /* the permissions */
#endif
    uint64_t base = leaf_frame(*entry, level);
    if (!fill_table(table, level - 1, base, attributes)) {
        eptfuzz_page_free(table);
        return 0;
    }
    /* The new table is complete before the entry is swung to it. */
    *entry = table_entry(table);
    return 1;
}

#ifndef BUG_EMPTY_CHECK_BYTES
static int table_is_empty(const epte_t *table)
{
    for (int i = 0; i < NEPTENTRIES; i++) {
        if (table[i] != 0)
            return 0;
    }
    return 1;
}
#else
static int table_is_empty(const epte_t *table)
{
    static const epte_t zero[NEPTENTRIES];
    return memcmp(table, zero, NEPTENTRIES) == 0; /* 512 bytes, not 512 entries */
}
#endif

int ept_free_empty(epte_t *table, int level)
{
    for (int i = 0; i < NEPTENTRIES; i++) {
        epte_t *entry = &table[i];
        if (*entry == 0 || epte_is_leaf(*entry, level))
            continue;
        epte_t *child = epte_table(*entry);
        if (child != NULL && ept_free_empty(child, level - 1)) {
#ifndef BUG_FREE_LINKED
            *entry = 0;
#endif
            eptfuzz_page_free(child);
#ifdef BUG_USE_AFTER_FREE
            child[0] = 0; /* tidy up the freed table */
#endif
        }
    }
    int empty = table_is_empty(table);
#ifdef BUG_DOUBLE_FREE
    if (empty && level < PML4)
        eptfuzz_page_free(table); /* the caller frees it too */
#endif
    return empty;
}

/* The permission byte's layout (R, W, X, XU) of an entry's bits 0, 1, 2 and 10. */
static unsigned entry_permissions(epte_t entry)
{
    return (unsigned)(entry & EPTE_RWX) | ((entry & EPTE_XU) ? EPTFUZZ_PERM_XU : 0);
}

int ept_walk(epte_t *pml4, uint64_t gpa, struct eptfuzz_walk *out)
{
    /* EPT-WALK-4: a 4-level walk reaches no GPA with bits 51:48 set. */
    if (gpa >> 48)
        return 0;
    /* "EPT Violations" (§28.2.3.2): an access is allowed only if every entry on the way allows it. */
    unsigned permissions = EPTFUZZ_PERM_R | EPTFUZZ_PERM_W | EPTFUZZ_PERM_X | EPTFUZZ_PERM_XU;
    epte_t *table = pml4;
    for (int l = PML4;; l--) {
        epte_t entry = table[ept_index(gpa, l)];
        /* An entry with bits 2:0 clear is not present (§28.2.2). */
        if ((entry & EPTE_RWX) == 0)
            return 0;
        permissions &= entry_permissions(entry);
        if (epte_is_leaf(entry, l)) {
            out->hpa = leaf_frame(entry, l) | (gpa & (ept_span(l) - 1));
            out->page_size = ept_span(l);
            out->permissions = permissions;
            return 1;
        }
        table = eptfuzz_phys_to_virt(entry & EPTE_ADDR);
        /* A present entry whose table is neither ours nor memory the harness sent: zeros. */
        if (table == NULL)
            return 0;
    }
}
