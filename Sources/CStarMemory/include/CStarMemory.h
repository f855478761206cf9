#ifndef C_STAR_MEMORY_H
#define C_STAR_MEMORY_H

#include <stdint.h>

// glibc's malloc controls, which Swift's Glibc module does not export (<malloc.h>). With another
// C library (musl, Darwin) they do nothing and return 0.

/// Bytes in use by the program and bytes free in the allocator's arenas (mallinfo2's uordblks +
/// hblkhd, and fordblks); returns 0 where unknown.
int star_malloc_usage(int64_t *in_use, int64_t *free_bytes);

/// Gives free memory back to the system (malloc_trim(0)); returns 1 if some was, else 0.
int star_malloc_trim(void);

/// Sets the trim and mmap thresholds (mallopt M_TRIM_THRESHOLD, M_MMAP_THRESHOLD); returns 1 on success.
int star_malloc_set_thresholds(int trim_threshold, int mmap_threshold);

#endif
