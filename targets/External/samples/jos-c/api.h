/* The hypervisor's EPT API: what main.c hands to the eptfuzz SDK. */
#ifndef JOS_API_H
#define JOS_API_H

#include "ept.h"

enum eptfuzz_result api_reset(const struct eptfuzz_cpu *processor);
enum eptfuzz_result api_set_eptp(unsigned memory_type, unsigned walk_length, int accessed_dirty, uint64_t *out);
enum eptfuzz_result api_map(uint64_t gpa, uint64_t hpa, uint64_t size, unsigned permissions, unsigned memory_type, int ignore_pat);
enum eptfuzz_result api_unmap(uint64_t gpa, uint64_t size);
enum eptfuzz_result api_protect(uint64_t gpa, uint64_t size, unsigned permissions);
enum eptfuzz_result api_invept(int type);
int api_walk_gpa(uint64_t gpa, struct eptfuzz_walk *out);

/* memmap.c: the guest's memory map and the identity map built from it. */
void memmap_reset(void);
enum eptfuzz_result api_memory_range(uint64_t start, uint64_t end, unsigned memory_type);
enum eptfuzz_result api_identity_map(uint64_t offset, uint64_t offset_from);

/* Shared by api.c and memmap.c. */
epte_t *api_root(void);
int api_level_supported(int level);
int api_memory_type_valid(unsigned memory_type);
epte_t api_leaf(uint64_t hpa, int level, unsigned permissions, unsigned memory_type, int ignore_pat);
uint64_t api_gpa_limit(void);
uint64_t api_hpa_limit(void);

#endif
