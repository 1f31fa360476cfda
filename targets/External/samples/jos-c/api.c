/*
 * The hypervisor's EPT API, with the result rules of shared/spec/case-format.md
 * ("Operations on the implementation's API"): every argument is checked before anything
 * changes, in the order Unsupported, Unaligned, OutOfRange, InvalidPermission, then the
 * results that depend on what is mapped; a failed operation changes nothing.
 */
#include "api.h"

#include "ept.h"

#include <stddef.h>

static struct eptfuzz_cpu cpu;
static epte_t *pml4;
static uint64_t eptp;

/* 4-level walks only: GPAs at or above 2^48 are beyond reach (EPT-WALK-4). */
static const uint64_t gpa_limit = 1ull << 48;

static uint64_t hpa_limit(void)
{
    return 1ull << cpu.maxphyaddr;
}

enum eptfuzz_result api_reset(const struct eptfuzz_cpu *processor)
{
    if (processor->maxphyaddr < 12 || processor->maxphyaddr > 52)
        return EPTFUZZ_UNSUPPORTED;
    cpu = *processor;
    ept_configure(&cpu);
    memmap_reset();
    pml4 = NULL; /* the SDK took every page back */
    eptp = 0;
    return EPTFUZZ_OK;
}

epte_t *api_root(void)
{
    return pml4;
}

const struct eptfuzz_cpu *api_cpu(void)
{
    return &cpu;
}

/* "Extended-Page-Table Pointer (EPTP)" (§24.6.11, Table 24-8): bits 2:0 the memory type,
 * 5:3 the walk length minus 1, bit 6 enables accessed and dirty flags, 51:12 the PML4. */
enum eptfuzz_result api_set_eptp(unsigned memory_type, unsigned walk_length, int accessed_dirty, uint64_t *out)
{
    *out = eptp;
    if (walk_length != 4 || accessed_dirty)
        return EPTFUZZ_UNSUPPORTED;
    if (pml4 == NULL) {
        pml4 = eptfuzz_page_alloc();
        if (pml4 == NULL)
            return EPTFUZZ_RESOURCE_LIMIT;
    }
    eptp = eptfuzz_virt_to_phys(pml4) | (memory_type & 7) | (uint64_t)(walk_length - 1) << 3;
    *out = eptp;
    return EPTFUZZ_OK;
}

/* ------------------------------------------------------------------ argument checks */

static int page_level(uint64_t size)
{
    switch (size) {
    case 1ull << 12: return PT;
    case 1ull << 21: return PD;
    case 1ull << 30: return PDPT;
    default: return 0;
    }
}

int api_level_supported(int level)
{
    if (level == PD)
        return (cpu.flags & EPTFUZZ_CPU_PAGE_2M) != 0;
    if (level == PDPT)
        return (cpu.flags & EPTFUZZ_CPU_PAGE_1G) != 0;
    return level == PT;
}

/* User-mode execute (bit 10) exists only on a processor with mode-based execute control. */
static int permissions_supported(unsigned permissions)
{
    return (permissions & EPTFUZZ_PERM_XU) == 0 || (cpu.flags & EPTFUZZ_CPU_MBEC);
}

/* "EPT Misconfigurations" (§28.2.3.1), EPT-MISCONFIG-1 to -3: write without read, and
 * execute without read where the processor has no execute-only translations. */
static int permissions_valid(unsigned permissions)
{
    int read = (permissions & EPTFUZZ_PERM_R) != 0;
    int write = (permissions & EPTFUZZ_PERM_W) != 0;
    int execute = (permissions & (EPTFUZZ_PERM_X | EPTFUZZ_PERM_XU)) != 0;
#ifndef BUG_WRITE_ONLY
    if (write && !read)
        return 0;
#else
    (void)write; /* the SDM forbids execute-only unless supported; that is the only rule */
#endif
    return read || !execute || (cpu.flags & EPTFUZZ_CPU_EXEC_ONLY);
}

/* EPT-MISCONFIG-5: memory types 2, 3 and 7 are reserved. */
int api_memory_type_valid(unsigned memory_type)
{
    return memory_type == EPTFUZZ_MT_UC || memory_type == EPTFUZZ_MT_WC || memory_type == EPTFUZZ_MT_WT
        || memory_type == EPTFUZZ_MT_WP || memory_type == EPTFUZZ_MT_WB;
}

static int aligned(uint64_t value, uint64_t alignment)
{
    return (value & (alignment - 1)) == 0;
}

/* [start, start + size) lies below the limit (and does not wrap). */
static int in_range(uint64_t start, uint64_t size, uint64_t limit)
{
#ifndef BUG_RANGE_OFF_BY_ONE
    return start < limit && size <= limit - start;
#else
    return start < limit && size < limit - start;
#endif
}

/* ------------------------------------------------------------------ leaves */

/* A leaf of Table 28-2, 28-4 or 28-6: permissions, memory type, ignore-PAT, the page. */
epte_t api_leaf(uint64_t hpa, int level, unsigned permissions, unsigned memory_type, int ignore_pat)
{
    epte_t leaf = hpa | EPTE_MAPPED;
    leaf |= permissions & (EPTFUZZ_PERM_R | EPTFUZZ_PERM_W | EPTFUZZ_PERM_X);
    leaf |= (permissions & EPTFUZZ_PERM_XU) ? EPTE_XU : 0;
    leaf |= (epte_t)memory_type << EPTE_MT_SHIFT;
    leaf |= ignore_pat ? EPTE_IPAT : 0;
    leaf |= level == PT ? 0 : EPTE_PS;
    return leaf;
}

/* ------------------------------------------------------------------ map */

enum eptfuzz_result api_map(uint64_t gpa, uint64_t hpa, uint64_t size, unsigned permissions, unsigned memory_type, int ignore_pat)
{
    int level = page_level(size);
#ifndef BUG_PRECEDENCE
    if (level == 0 || !api_level_supported(level) || !permissions_supported(permissions))
        return EPTFUZZ_UNSUPPORTED;
    if (!aligned(gpa, size) || !aligned(hpa, size))
        return EPTFUZZ_UNALIGNED;
#else
    if (level == 0 || !permissions_supported(permissions))
        return EPTFUZZ_UNSUPPORTED;
    if (!aligned(gpa, size) || !aligned(hpa, size))
        return EPTFUZZ_UNALIGNED;
    if (!api_level_supported(level)) /* only aligned requests get this far */
        return EPTFUZZ_UNSUPPORTED;
#endif
    if (!in_range(gpa, size, gpa_limit) || !in_range(hpa, size, hpa_limit()))
        return EPTFUZZ_OUT_OF_RANGE;
    if (!permissions_valid(permissions) || !api_memory_type_valid(memory_type))
        return EPTFUZZ_INVALID_PERMISSION;
#ifndef BUG_MAP_REPLACES
    if (!ept_page_is_free(pml4, gpa, level))
        return EPTFUZZ_DUPLICATED;
#endif
    /* A new entry where none was present: nothing cached to invalidate. */
    return ept_map_page(pml4, gpa, level, api_leaf(hpa, level, permissions, memory_type, ignore_pat));
}

/* ------------------------------------------------------------------ unmap, protect */

/* After changing present entries, unmap and protect invalidate with a global INVEPT (as
 * HyperPlatform does): a single-context one reaches only the EPTP loaded at that moment, and
 * the processor may hold translations of these tables under another EPTP it used before
 * (found by eptfuzz: map, access, switch the EPTP, unmap, switch back, access). */

enum range_action { UNMAP, PROTECT };

/* Every 4 KiB page of [gpa, end) is mapped. */
static int range_is_mapped(uint64_t gpa, uint64_t end)
{
    while (gpa < end) {
        int level;
        if (ept_find(pml4, gpa, &level) == NULL)
            return 0;
        gpa = (gpa & ~(ept_span(level) - 1)) + ept_span(level);
    }
    return 1;
}

/* Changes every page of [gpa, end); a page the range covers only in part is split first
 * (and again, until the pieces are inside or outside the range). */
static enum eptfuzz_result range_apply(uint64_t gpa, uint64_t end, enum range_action action, epte_t permissions)
{
    uint64_t cursor = gpa;
    while (cursor < end) {
        int level;
        epte_t *entry = ept_find(pml4, cursor, &level);
        if (entry == NULL)
            return EPTFUZZ_NOT_EXIST; /* checked before: cannot happen */
        uint64_t page = cursor & ~(ept_span(level) - 1);
        int partial = page < gpa || end - page < ept_span(level);
#ifdef BUG_UNMAP_NO_SPLIT
        if (action == UNMAP)
            partial = 0; /* a huge page goes as a whole */
#endif
        if (partial) {
            if (!ept_split(entry, level))
                return EPTFUZZ_RESOURCE_LIMIT;
            continue;
        }
#ifdef BUG_PROTECT_LOOP
        if (action == PROTECT && (*entry & (EPTE_RWX | EPTE_XU)) == permissions)
            continue; /* nothing to change on this page */
#endif
        if (action == UNMAP)
            *entry = 0;
        else
            *entry = (*entry & ~(EPTE_RWX | EPTE_XU)) | permissions;
        cursor = page + ept_span(level);
    }
    return EPTFUZZ_OK;
}

static enum eptfuzz_result range_check(uint64_t gpa, uint64_t size)
{
    if (size == 0 || !aligned(gpa, 4096) || !aligned(size, 4096))
        return EPTFUZZ_UNALIGNED;
    if (!in_range(gpa, size, gpa_limit))
        return EPTFUZZ_OUT_OF_RANGE;
    return EPTFUZZ_OK;
}

enum eptfuzz_result api_unmap(uint64_t gpa, uint64_t size)
{
    enum eptfuzz_result check = range_check(gpa, size);
    if (check != EPTFUZZ_OK)
        return check;
#ifndef BUG_LEAK_ON_FAILURE
    if (!range_is_mapped(gpa, gpa + size))
        return EPTFUZZ_NOT_EXIST;
#else
    /* Split the huge page at the start first, so that the check sees the pages it needs. */
    int level;
    epte_t *first = ept_find(pml4, gpa, &level);
    if (first != NULL && level > PT && !aligned(gpa, ept_span(level))) {
        epte_t saved = *first;
        if (!ept_split(first, level))
            return EPTFUZZ_RESOURCE_LIMIT;
        if (!range_is_mapped(gpa, gpa + size)) {
            *first = saved; /* undo the split */
            return EPTFUZZ_NOT_EXIST;
        }
    }
    if (!range_is_mapped(gpa, gpa + size))
        return EPTFUZZ_NOT_EXIST;
#endif
    enum eptfuzz_result result = range_apply(gpa, gpa + size, UNMAP, 0);
    if (result != EPTFUZZ_OK)
        return result;
    ept_free_empty(pml4, PML4);
    /* Present entries changed: cached translations of them must go (after the last write). */
    eptfuzz_invept(EPTFUZZ_INVEPT_GLOBAL);
    return EPTFUZZ_OK;
}

enum eptfuzz_result api_protect(uint64_t gpa, uint64_t size, unsigned permissions)
{
    if (!permissions_supported(permissions))
        return EPTFUZZ_UNSUPPORTED;
    enum eptfuzz_result check = range_check(gpa, size);
    if (check != EPTFUZZ_OK)
        return check;
    if (!permissions_valid(permissions))
        return EPTFUZZ_INVALID_PERMISSION;
    if (!range_is_mapped(gpa, gpa + size))
        return EPTFUZZ_NOT_EXIST;
    epte_t bits = (permissions & (EPTFUZZ_PERM_R | EPTFUZZ_PERM_W | EPTFUZZ_PERM_X)) | ((permissions & EPTFUZZ_PERM_XU) ? EPTE_XU : 0);
    enum eptfuzz_result result = range_apply(gpa, gpa + size, PROTECT, bits);
    if (result != EPTFUZZ_OK)
        return result;
#ifndef BUG_NO_INVEPT
    eptfuzz_invept(EPTFUZZ_INVEPT_GLOBAL);
#endif
    return EPTFUZZ_OK;
}

/* ------------------------------------------------------------------ invept, walk */

enum eptfuzz_result api_invept(int type)
{
    if (type != EPTFUZZ_INVEPT_SINGLE && type != EPTFUZZ_INVEPT_GLOBAL)
        return EPTFUZZ_UNSUPPORTED;
    eptfuzz_invept(type);
    return EPTFUZZ_OK;
}

int api_walk_gpa(uint64_t gpa, struct eptfuzz_walk *out)
{
    return pml4 != NULL && ept_walk(pml4, gpa, out);
}

/* For the identity map (memmap.c). */
uint64_t api_gpa_limit(void)
{
    return gpa_limit;
}

uint64_t api_hpa_limit(void)
{
    return hpa_limit();
}
