/*
 * An LD_PRELOAD heap allocation counter for `make bench`.
 *
 * It counts every allocation a process asks of the C heap (malloc, calloc, realloc to a new
 * block, posix_memalign, aligned_alloc, memalign, valloc) and the bytes asked for, and hands the
 * call on to glibc. The counts live in a small file, MALLOC_COUNT_FILE, mapped shared: the
 * harness reads it at the start and the end of a window and takes the difference, so what is
 * counted is the steady state and not start-up. Nothing in the counted process changes but the
 * two relaxed atomic additions per call.
 *
 * The file holds little-endian uint64 words: [0] magic 0x766967696c6d616c ("vigilmal"),
 * [1] allocations, [2] bytes requested, [3] frees.
 *
 * Why glibc's __libc_* entry points and not dlsym(RTLD_NEXT): dlsym itself allocates, so the
 * first malloc would recurse; the __libc_* names are exported for exactly this use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void __libc_free(void *);

enum { MAGIC, ALLOCATIONS, BYTES, FREES, WORDS };

/* Counts made before the file is mapped (the dynamic loader's and libc's own start-up). */
static uint64_t early[WORDS];
static uint64_t *counts = early;

__attribute__((constructor)) static void map_count_file(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL || *path == '\0') return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t size = (size_t)sysconf(_SC_PAGESIZE);
    if (ftruncate(fd, (off_t)size) != 0) { close(fd); return; }
    void *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mapped == MAP_FAILED) return;
    uint64_t *words = mapped;
    for (int i = 1; i < WORDS; i++) words[i] = __atomic_load_n(&early[i], __ATOMIC_RELAXED);
    words[MAGIC] = 0x766967696c6d616cULL;
    __atomic_store_n(&counts, words, __ATOMIC_RELEASE);
}

static inline void count_allocation(size_t bytes) {
    uint64_t *c = __atomic_load_n(&counts, __ATOMIC_ACQUIRE);
    __atomic_fetch_add(&c[ALLOCATIONS], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c[BYTES], bytes, __ATOMIC_RELAXED);
}

static inline void count_free(void) {
    uint64_t *c = __atomic_load_n(&counts, __ATOMIC_ACQUIRE);
    __atomic_fetch_add(&c[FREES], 1, __ATOMIC_RELAXED);
}

void *malloc(size_t size) {
    count_allocation(size);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_allocation(count * size);
    return __libc_calloc(count, size);
}

void *realloc(void *old, size_t size) {
    if (old == NULL) count_allocation(size);  /* a realloc that moves is still one block */
    else if (size == 0) count_free();
    return __libc_realloc(old, size);
}

void free(void *pointer) {
    if (pointer != NULL) count_free();
    __libc_free(pointer);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_allocation(size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL && size != 0) return ENOMEM;
    *result = pointer;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size) {
    count_allocation(size);
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count_allocation(size);
    return __libc_pvalloc(size);
}
