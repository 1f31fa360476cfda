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

int main(void)
{
    return eptfuzz_main(&jos_ept);
}
