/*
 * Filling guest RAM from a file beside the guest instead of before it: the guest starts while
 * a thread copies a loaded kernel in, and a page the guest (or anyone) touches before the
 * copy reached it is served first (userfaultfd, missing-page mode: the toucher waits for that
 * page only). With it, the first KVM_RUN does not wait for a 30 MB copy.
 *
 * The filler only ever fills pages no one has written: a page the guest or kestrel made
 * present first is skipped (UFFDIO_COPY fails with EEXIST), so nothing is overwritten.
 * When it is done (or stopped) it unregisters its ranges, after which they are ordinary RAM.
 */
#ifndef KESTREL_GUEST_FILL_H
#define KESTREL_GUEST_FILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_fill;

/* A filler with nothing to fill yet, or NULL without memory. */
struct guest_fill *guest_fill_new(void);

/*
 * Takes the page-aligned middle of [dst, dst+len), whose bytes are at offset off of fd and
 * whose destination is still zero, to fill in the background; its holes (SEEK_HOLE) are left
 * zero. The first range taken starts the thread. Returns true with *head and *tail, the
 * bytes at each end the caller must copy itself (they share a page with something else), or
 * false when the filler cannot take it (offset and address not congruent modulo the page
 * size, no userfaultfd, ...; the reason in the note): the caller copies all of it.
 */
bool guest_fill_take(struct guest_fill *f, uint8_t *dst, uint64_t len, int fd, uint64_t off,
		     uint64_t *head, uint64_t *tail);

/*
 * Puts the thread in its seccomp class (SANDBOX_FILL), if it still runs, and returns once it
 * is: called before the guest's first instruction, after the filters were built.
 */
void guest_fill_sandbox(struct guest_fill *f);

/*
 * With hold set the thread only serves faults and does not copy ahead: for tests of the fault
 * path and to measure what the guest touches.
 */
void guest_fill_hold(struct guest_fill *f, bool hold);

/* Stops the thread (if it runs), unregisters everything and frees f. NULL is fine. */
void guest_fill_free(struct guest_fill *f);

/* One line on what happened (bytes, time, pages the guest had to wait for), "" if nothing. */
void guest_fill_note(struct guest_fill *f, char *buf, size_t n);

#endif
