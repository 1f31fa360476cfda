/*
 * The bug catalog (BUGS.md): each BUG_<NAME> switch turns on one realistic mistake, so the
 * test suite can check that eptfuzz finds it. Only a test build may set them: the Makefile
 * passes -DJOS_TEST_BUILD together with a BUG_ switch for `make bug-NAME`, never for the
 * shipped `make sample`.
 */
#ifndef JOS_BUGS_H
#define JOS_BUGS_H

#if !defined(JOS_TEST_BUILD) && (defined(BUG_LOOKUP_NULL) || defined(BUG_PROTECT_LOOP) \
    || defined(BUG_LEAK_ON_FAILURE) || defined(BUG_DOUBLE_FREE) || defined(BUG_FREE_LINKED) \
    || defined(BUG_USE_AFTER_FREE) || defined(BUG_EMPTY_CHECK_BYTES) || defined(BUG_PDX_SHIFT) \
    || defined(BUG_MIXED_TYPE_2M) || defined(BUG_WRITE_ONLY) \
    || defined(BUG_PRECEDENCE) || defined(BUG_RANGE_OFF_BY_ONE) || defined(BUG_SPLIT_DROPS_TYPE) \
    || defined(BUG_SPLIT_HPA) || defined(BUG_ADDR_40BIT) || defined(BUG_NO_INVEPT) \
    || defined(BUG_UNMAP_NO_SPLIT) || defined(BUG_MAP_REPLACES) || defined(BUG_OFFSET_FROM))
#error "BUG_ switches are for test builds only (make bug-NAME)"
#endif

#endif
