/*
 * jos-c: a sample eptfuzz target, an EPT in the style of the JOS-vmx exercise, written
 * fresh in C. main() hands the hypervisor's API to the eptfuzz C SDK, which speaks the
 * protocol; see README.md.
 */
#include "api.h"

static const struct eptfuzz_target jos_ept = {
    .name = "jos-c",
    .page_sizes = EPTFUZZ_PAGE_4K | EPTFUZZ_PAGE_2M | EPTFUZZ_PAGE_1G,
    .features = 0, /* 4-level walks, no accessed/dirty flags, no mode-based execute control */
    .reset = api_reset,
    .set_eptp = api_set_eptp,
    .map = api_map,
    .unmap = api_unmap,
    .protect = api_protect,
    .memory_range = api_memory_range,
    .identity_map = api_identity_map,
    .invept = api_invept,
    .walk_gpa = api_walk_gpa,
};

#ifdef JOS_TEST_BUILD
/* The test build runs under AddressSanitizer. An unsymbolized report is written in
 * milliseconds; symbolizing takes seconds, long enough for eptfuzz to call a crash a hang.
 * For a symbolized trace, replay the finding with ASAN_OPTIONS=symbolize=1. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "symbolize=0";
}
#endif

int main(void)
{
    return eptfuzz_main(&jos_ept);
}
