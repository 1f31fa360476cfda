/*
 * eptfuzz C SDK: make an EPT implementation an eptfuzz target (protocol version 1).
 *
 * Compile eptfuzz_target.c together with your code (C11, libc + POSIX). Fill in a
 * struct eptfuzz_target with one function per operation you implement (NULL = not
 * implemented: the harness never asks for it), and call eptfuzz_main() from main().
 * The SDK owns the protocol on stdin/stdout, the arena, the page allocator and the
 * events; your code never sees a byte of the protocol. Build EPT tables only in pages
 * from eptfuzz_page_alloc() (or report your own allocator's pages with
 * eptfuzz_note_alloc / eptfuzz_note_free), and convert addresses with
 * eptfuzz_virt_to_phys / eptfuzz_phys_to_virt.
 *
 * The protocol: targets/External/PROTOCOL.md. The meaning of each operation and
 * its results: shared/spec/case-format.md, "Operations on the implementation's API".
 */
#ifndef EPTFUZZ_TARGET_H
#define EPTFUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

#define EPTFUZZ_PROTOCOL_VERSION 1
#define EPTFUZZ_PAGE_SIZE 4096u

/* Operation results, as the protocol encodes them. */
enum eptfuzz_result {
    EPTFUZZ_OK = 0,
    EPTFUZZ_UNSUPPORTED = 1,
    EPTFUZZ_UNALIGNED = 2,
    EPTFUZZ_OUT_OF_RANGE = 3,
    EPTFUZZ_INVALID_PERMISSION = 4,
    EPTFUZZ_DUPLICATED = 5,
    EPTFUZZ_NOT_EXIST = 6,
    EPTFUZZ_NOT_MERGEABLE = 7,
    /* The arena ran out of pages; the SDK also forces it when eptfuzz_page_alloc failed. */
    EPTFUZZ_RESOURCE_LIMIT = 8,
};

/* Permissions (the protocol's permission byte). */
#define EPTFUZZ_PERM_R 0x1u  /* read */
#define EPTFUZZ_PERM_W 0x2u  /* write */
#define EPTFUZZ_PERM_X 0x4u  /* execute (supervisor execute under MBEC) */
#define EPTFUZZ_PERM_XU 0x8u /* user-mode execute (EPT entry bit 10) */

/* Memory types, architectural encoding. */
#define EPTFUZZ_MT_UC 0u
#define EPTFUZZ_MT_WC 1u
#define EPTFUZZ_MT_WT 4u
#define EPTFUZZ_MT_WP 5u
#define EPTFUZZ_MT_WB 6u

/* Page sizes a target's map accepts (struct eptfuzz_target.page_sizes). */
#define EPTFUZZ_PAGE_4K 0x1u
#define EPTFUZZ_PAGE_2M 0x2u
#define EPTFUZZ_PAGE_1G 0x4u

/* Optional EPTP and control features (struct eptfuzz_target.features). */
#define EPTFUZZ_FEATURE_WALK5 0x1u /* eptp walk=5 */
#define EPTFUZZ_FEATURE_AD 0x2u    /* eptp ad=1 */
#define EPTFUZZ_FEATURE_MBEC 0x4u  /* controls mbec=1 */

/* The processor a case runs on (RESET): IA32_VMX_EPT_VPID_CAP and CPUID facts. */
#define EPTFUZZ_CPU_EXEC_ONLY 0x001u
#define EPTFUZZ_CPU_PAGE_2M 0x002u
#define EPTFUZZ_CPU_PAGE_1G 0x004u
#define EPTFUZZ_CPU_AD 0x008u
#define EPTFUZZ_CPU_MBEC 0x010u
#define EPTFUZZ_CPU_WALK5 0x020u
#define EPTFUZZ_CPU_ADV_EXIT_INFO 0x040u
#define EPTFUZZ_CPU_EPTP_UC 0x080u
#define EPTFUZZ_CPU_EPTP_WB 0x100u

struct eptfuzz_cpu {
    unsigned maxphyaddr; /* physical-address width, bits */
    unsigned flags;      /* EPTFUZZ_CPU_* */
};

/* INVEPT types. */
#define EPTFUZZ_INVEPT_SINGLE 1
#define EPTFUZZ_INVEPT_GLOBAL 2

/* The answer of a lookup (walk_gpa, walk_gva) that found a translation. */
struct eptfuzz_walk {
    uint64_t hpa;         /* host-physical address of the address looked up (leaf + offset) */
    uint64_t page_size;   /* 4096, 2 MiB or 1 GiB */
    unsigned permissions; /* the leaf's EPTFUZZ_PERM_* bits */
};

/*
 * One EPT implementation. Every function returns the operation's result; the SDK has
 * already decoded the arguments. NULL means "not implemented": its capability bit is
 * clear and the harness never sends it (set_controls NULL accepts mbec=0).
 */
struct eptfuzz_target {
    const char *name;     /* 1-40 letters, digits, '-' or '_' */
    unsigned page_sizes;  /* EPTFUZZ_PAGE_* that map accepts */
    unsigned features;    /* EPTFUZZ_FEATURE_* */

    /* Required. A new case: forget every table (the SDK has already taken back every
     * arena page without FREE events and zeroed them) and prepare for this processor;
     * EPTFUZZ_UNSUPPORTED if the implementation cannot run on it. */
    enum eptfuzz_result (*reset)(const struct eptfuzz_cpu *cpu);
    /* Required. The EPTP to load (root included) goes to *eptp, also on an error. */
    enum eptfuzz_result (*set_eptp)(unsigned memory_type, unsigned walk_length, int accessed_dirty, uint64_t *eptp);
    enum eptfuzz_result (*set_controls)(int mbec);

    enum eptfuzz_result (*map)(uint64_t gpa, uint64_t hpa, uint64_t size, unsigned permissions, unsigned memory_type, int ignore_pat);
    enum eptfuzz_result (*unmap)(uint64_t gpa, uint64_t size);
    enum eptfuzz_result (*protect)(uint64_t gpa, uint64_t size, unsigned permissions);
    enum eptfuzz_result (*retype)(uint64_t gpa, uint64_t size, unsigned memory_type, int ignore_pat);
    enum eptfuzz_result (*split)(uint64_t gpa);
    enum eptfuzz_result (*merge)(uint64_t gpa, uint64_t size);
    /* Both or neither: one range [start, end) of the guest's memory map, and the
     * identity map (HPA = GPA, or GPA + offset for GPAs >= offset_from). */
    enum eptfuzz_result (*memory_range)(uint64_t start, uint64_t end, unsigned memory_type);
    enum eptfuzz_result (*identity_map)(uint64_t offset, uint64_t offset_from);
    /* The API's invalidation: it calls eptfuzz_invept(type). */
    enum eptfuzz_result (*invept)(int type);

    /* Your own lookup: return 1 and fill *out when `address` translates, 0 when it is
     * not mapped (an entry with bits 2:0 clear on the way). */
    int (*walk_gpa)(uint64_t gpa, struct eptfuzz_walk *out);
    int (*walk_gva)(uint64_t gva, struct eptfuzz_walk *out);
};

/* Runs the message loop until the harness closes stdin; returns the exit status. */
int eptfuzz_main(const struct eptfuzz_target *target);

/* A zeroed, read-write arena page for an EPT table, or NULL when the case's pages are
 * exhausted (the operation then answers EPTFUZZ_RESOURCE_LIMIT whatever it returns). */
void *eptfuzz_page_alloc(void);
/* Gives a page back. A page freed twice, or never taken, ends the target with a FAULT. */
void eptfuzz_page_free(void *page);

/* Host-physical address of a pointer into an arena page (or into host memory the
 * harness sent); any other pointer is a broken invariant (eptfuzz_fail). */
uint64_t eptfuzz_virt_to_phys(const void *pointer);
/* Pointer for a host-physical address: an arena page this target holds, or host memory
 * outside the arena that the harness sent with WRITE (read-only); NULL otherwise. */
void *eptfuzz_phys_to_virt(uint64_t hpa);

/* True when `pointer` lies in an arena page this target holds: one of its own tables (a
 * raw edit can point an entry at guest memory that eptfuzz_phys_to_virt also answers for). */
int eptfuzz_page_held(const void *pointer);

/* INVEPT: every write before it reaches the harness's translators before the
 * invalidation (the SDK reports the writes so far, in journal mode as WRITE events, else by
 * stopping until the harness has read the arena). type is EPTFUZZ_INVEPT_SINGLE or
 * EPTFUZZ_INVEPT_GLOBAL. */
void eptfuzz_invept(int type);

/* A broken invariant of your own: reports it (a crash finding) and exits. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
_Noreturn void eptfuzz_fail(const char *format, ...);

/*
 * For code with its own page allocator. eptfuzz_arena() (call it in reset) gives the
 * arena's first page and how many pages this case may use; from then on this case's
 * pages are all read-write and yours to manage, and you report every table page you
 * take and give back. The page-protection hardening is off for such a case. RESET
 * zeroes the pages that were noted; keep the allocator's own bookkeeping outside the
 * arena (a free list threaded through free arena pages would survive into the next case).
 */
void eptfuzz_arena(void **base, size_t *pages);
void eptfuzz_note_alloc(void *page);
void eptfuzz_note_free(void *page);

#endif
