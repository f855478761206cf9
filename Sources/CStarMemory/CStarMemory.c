#include "CStarMemory.h"

#if defined(__GLIBC__)
#include <malloc.h>

int star_malloc_usage(int64_t *in_use, int64_t *free_bytes) {
    struct mallinfo2 info = mallinfo2();
    *in_use = (int64_t)(info.uordblks + info.hblkhd);
    *free_bytes = (int64_t)info.fordblks;
    return 1;
}

int star_malloc_trim(void) { return malloc_trim(0); }

int star_malloc_set_thresholds(int trim_threshold, int mmap_threshold) {
    return mallopt(M_TRIM_THRESHOLD, trim_threshold) && mallopt(M_MMAP_THRESHOLD, mmap_threshold);
}
#else
int star_malloc_usage(int64_t *in_use, int64_t *free_bytes) { return 0; }
int star_malloc_trim(void) { return 0; }
int star_malloc_set_thresholds(int trim_threshold, int mmap_threshold) { return 0; }
#endif
