/*
 * A cache of unpacked kernels on disk (the stream a compressed payload decompresses to), so a
 * kernel booted again skips its decoder. An architecture's loader sees only the callbacks of
 * struct arch_unpack_cache (arch/arch.h); this is where they are kept. See kernel_cache.c.
 */
#ifndef KESTREL_KERNEL_CACHE_H
#define KESTREL_KERNEL_CACHE_H

#include <limits.h>
#include <stdbool.h>

#include "arch/arch.h"

#define KERNEL_CACHE_MAX_ENTRIES 4 /* the oldest (by mtime: last stored or used) goes */

struct kernel_cache {
	struct arch_unpack_cache ops; /* what the loader gets (ops.opaque = this) */
	char dir[PATH_MAX];	      /* empty until first used */
	char hit[PATH_MAX + 80];      /* the entry a lookup found */
	char name[64];		      /* the entry for the payload looked up */
	uint32_t crc;		      /* that payload's key (payload_key), and its length */
	size_t crc_len;
	char note[200]; /* for -v: why nothing was stored, or where it was */
};

/* Sets up the callbacks; nothing on disk is touched before the loader looks a payload up. */
void kernel_cache_init(struct kernel_cache *kc);

#endif
