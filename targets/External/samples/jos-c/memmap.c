/*
 * The guest's memory map (E820 ranges with their MTRR memory types) and the identity map
 * of it: HPA = GPA, or GPA + offset at and above offset_from (the JOS layout, where the
 * guest's memory sits above the host's). Each page is the largest that the alignment of
 * both addresses and a uniform memory type allow, so the legacy VGA hole A0000-FFFFF,
 * UC in the map, keeps the first 2 MiB in 4 KiB pages.
 */
#include "api.h"

#include <stddef.h>

#define MAX_RANGES 256
/* Case files ask for at most 2^20 leaves; more is a case too large to run. */
#define MAX_IDENTITY_PAGES (1ull << 21)

struct range {
    uint64_t start, end; /* [start, end) */
    unsigned memory_type;
};

static struct range ranges[MAX_RANGES]; /* sorted by start, never overlapping */
static int nranges;

void memmap_reset(void)
{
    nranges = 0;
}

static int page_aligned(uint64_t value)
{
    return (value & 0xFFF) == 0;
}

enum eptfuzz_result api_memory_range(uint64_t start, uint64_t end, unsigned memory_type)
{
    if (end <= start || !page_aligned(start) || !page_aligned(end))
        return EPTFUZZ_UNALIGNED;
    if (end > api_gpa_limit())
        return EPTFUZZ_OUT_OF_RANGE;
    if (!api_memory_type_valid(memory_type))
        return EPTFUZZ_INVALID_PERMISSION;
    int at = 0;
    for (int i = 0; i < nranges; i++) {
        if (ranges[i].start < end && start < ranges[i].end)
            return EPTFUZZ_DUPLICATED;
        if (ranges[i].start < start)
            at = i + 1;
    }
    if (nranges == MAX_RANGES)
        return EPTFUZZ_RESOURCE_LIMIT;
    for (int i = nranges; i > at; i--)
        ranges[i] = ranges[i - 1];
    ranges[at] = (struct range){ start, end, memory_type };
    nranges++;
    return EPTFUZZ_OK;
}

/* A stretch of guest memory with one memory type and one offset. */
struct run {
    uint64_t start, end;
    uint64_t offset; /* HPA - GPA */
    unsigned memory_type;
};

static void add_run(struct run *runs, int *n, uint64_t start, uint64_t end, uint64_t offset, uint64_t offset_from, unsigned type)
{
#ifndef BUG_OFFSET_FROM
    uint64_t shift = start >= offset_from ? offset : 0;
#else
    uint64_t shift = start > offset_from ? offset : 0; /* "above offset_from" */
#endif
    runs[(*n)++] = (struct run){ start, end, shift, type };
}

/* Adjacent ranges of the same type count as one; where the offset starts the HPA jumps,
 * so a run is cut there. Returns the number of runs. */
static int make_runs(uint64_t offset, uint64_t offset_from, struct run *runs)
{
    int n = 0;
    int i = 0;
    while (i < nranges) {
        uint64_t start = ranges[i].start;
        uint64_t end = ranges[i].end;
        unsigned type = ranges[i].memory_type;
        i++;
#ifndef BUG_MIXED_TYPE_2M
        while (i < nranges && ranges[i].start == end && ranges[i].memory_type == type) {
#else
        while (i < nranges && ranges[i].start == end) { /* RAM is RAM */
#endif
            end = ranges[i].end;
            i++;
        }
        if (offset != 0 && start < offset_from && offset_from < end) {
            add_run(runs, &n, start, offset_from, offset, offset_from, type);
            add_run(runs, &n, offset_from, end, offset, offset_from, type);
        } else {
            add_run(runs, &n, start, end, offset, offset_from, type);
        }
    }
    return n;
}

/* The largest page at gpa that the alignment of both addresses and the room left allow. */
static int largest_level(uint64_t gpa, uint64_t hpa, uint64_t room)
{
    for (int level = PDPT; level > PT; level--) {
        uint64_t span = ept_span(level);
        if (api_level_supported(level) && ((gpa | hpa) & (span - 1)) == 0 && room >= span)
            return level;
    }
    return PT;
}

/* Each HPA of the run lies below 2^MAXPHYADDR (and the sum does not wrap). */
static int run_in_range(const struct run *r)
{
    uint64_t first = r->start + r->offset;
    uint64_t last = r->end + r->offset;
    return first >= r->start && last >= r->end && last <= api_hpa_limit();
}

enum pass { COUNT, CHECK, MAP };

/* Goes through the pages of every run: counts them, checks that each slot is free, or maps them. */
static enum eptfuzz_result identity_pass(const struct run *runs, int n, enum pass pass)
{
    uint64_t pages = 0;
    for (int i = 0; i < n; i++) {
        const struct run *r = &runs[i];
        for (uint64_t gpa = r->start; gpa < r->end;) {
            uint64_t hpa = gpa + r->offset;
            int level = largest_level(gpa, hpa, r->end - gpa);
            if (pass == COUNT && ++pages > MAX_IDENTITY_PAGES)
                return EPTFUZZ_RESOURCE_LIMIT;
            if (pass == CHECK && !ept_page_is_free(api_root(), gpa, level))
                return EPTFUZZ_DUPLICATED;
            if (pass == MAP) {
                epte_t leaf = api_leaf(hpa, level, EPTFUZZ_PERM_R | EPTFUZZ_PERM_W | EPTFUZZ_PERM_X, r->memory_type, 0);
                enum eptfuzz_result result = ept_map_page(api_root(), gpa, level, leaf);
                if (result != EPTFUZZ_OK)
                    return result;
            }
            gpa += ept_span(level);
        }
    }
    return EPTFUZZ_OK;
}

enum eptfuzz_result api_identity_map(uint64_t offset, uint64_t offset_from)
{
    /* Pages start on 4 KiB boundaries on both sides. */
    if (!page_aligned(offset) || !page_aligned(offset_from))
        return EPTFUZZ_UNALIGNED;
    struct run runs[MAX_RANGES + 1];
    int n = make_runs(offset, offset_from, runs);
    for (int i = 0; i < n; i++) {
        if (!run_in_range(&runs[i]))
            return EPTFUZZ_OUT_OF_RANGE;
    }
    enum eptfuzz_result result = identity_pass(runs, n, COUNT);
    if (result == EPTFUZZ_OK)
        result = identity_pass(runs, n, CHECK);
    if (result == EPTFUZZ_OK)
        result = identity_pass(runs, n, MAP); /* new entries only: nothing to invalidate */
    return result;
}
