#include "virtio/queue.h"

#include <endian.h>
#include <stddef.h>
#include <string.h>

/*
 * Ring fields are little-endian (§2.4) and shared with vCPUs that run concurrently, so every
 * access is a single atomic load or store of the naturally aligned field; setup checked the
 * alignment.
 */
static inline uint16_t ld16(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static inline uint16_t ld16_acquire(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static inline void st16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void st16_release(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELEASE);
}

static inline void st32(void *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

/* used_event lives after the avail ring, avail_event after the used ring (§2.7.10). */
static inline uint16_t *used_event_ptr(const struct virtqueue *vq)
{
	return (uint16_t *)&vq->avail->ring[vq->size];
}

static inline uint16_t *avail_event_ptr(const struct virtqueue *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/*
 * One snapshot of a descriptor. Indirect tables need not be aligned, hence memcpy; the barrier
 * keeps the compiler from re-reading guest memory later in place of the copy (the guest could
 * change it between the check and the use).
 */
static inline void read_desc(const struct vring_desc *src, uint64_t *addr, uint32_t *len,
			     uint16_t *flags, uint16_t *next)
{
	struct vring_desc d;

	memcpy(&d, src, sizeof(d));
	__asm__ volatile("" ::: "memory");
	*addr = le64toh(d.addr);
	*len = le32toh(d.len);
	*flags = le16toh(d.flags);
	*next = le16toh(d.next);
}

static const char *const error_names[VIRTQ_ERR__COUNT] = {
    [VIRTQ_OK] = "no error",
    [VIRTQ_ERR_SETUP] = "bad queue setup",
    [VIRTQ_ERR_AVAIL_IDX] = "available index moved more than the queue size",
    [VIRTQ_ERR_HEAD] = "available ring entry out of range",
    [VIRTQ_ERR_NEXT] = "descriptor next index out of range",
    [VIRTQ_ERR_LOOP] = "descriptor chain loops",
    [VIRTQ_ERR_ADDR] = "buffer outside guest RAM",
    [VIRTQ_ERR_ORDER] = "readable descriptor after a writable one",
    [VIRTQ_ERR_LEN] = "descriptor chain longer than 4 GiB",
    [VIRTQ_ERR_INDIRECT] = "bad indirect descriptor",
    [VIRTQ_ERR_TOO_MANY_SEGS] = "too many buffers in one chain",
    [VIRTQ_ERR_PUSH] = "used buffer not in flight",
};

const char *virtq_strerror(enum virtq_error e)
{
	if ((unsigned int)e >= VIRTQ_ERR__COUNT)
		return "unknown error";
	return error_names[e];
}

/*
 * The stats are left untouched, not saved and restored: a transport may count a kick on
 * another thread while the device resets the queue, and that count must not be undone.
 */
_Static_assert(offsetof(struct virtqueue, stats) + sizeof(struct virtq_stats) ==
		   sizeof(struct virtqueue),
	       "stats must be the last member of struct virtqueue");

void virtq_reset(struct virtqueue *vq)
{
	memset(vq, 0, offsetof(struct virtqueue, stats));
}

static int setup_fail(struct virtqueue *vq, struct kerr *err, const char *what, uint64_t gpa,
		      uint64_t len)
{
	vq->errors[VIRTQ_ERR_SETUP]++;
	vq->last_error = VIRTQ_ERR_SETUP;
	return kerr_set(err, "virtqueue %s at 0x%llx (+%llu bytes) is misaligned or not in RAM",
			what, (unsigned long long)gpa, (unsigned long long)len);
}

int virtq_setup(struct virtqueue *vq, const struct guest_mem *mem, unsigned int size,
		uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, uint64_t features,
		struct kerr *err)
{
	uint64_t errors[VIRTQ_ERR__COUNT];
	uint64_t desc_len, avail_len, used_len;
	void *desc, *avail, *used;

	/* A failed setup is still worth counting; everything else starts afresh. */
	memcpy(errors, vq->errors, sizeof(errors));
	virtq_reset(vq);
	memcpy(vq->errors, errors, sizeof(errors));

	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1))) {
		vq->errors[VIRTQ_ERR_SETUP]++;
		vq->last_error = VIRTQ_ERR_SETUP;
		return kerr_set(err, "virtqueue size %u is not a power of 2 in 1..%d", size,
				VIRTQ_MAX_SIZE);
	}

	/* Sizes include the trailing used_event / avail_event fields (§2.7). */
	desc_len = 16ULL * size;
	avail_len = 6ULL + 2ULL * size;
	used_len = 6ULL + 8ULL * size;

	desc = guest_mem_ptr(mem, desc_gpa, desc_len);
	if (!desc || desc_gpa % VRING_DESC_ALIGN_SIZE || (uintptr_t)desc % VRING_DESC_ALIGN_SIZE)
		return setup_fail(vq, err, "descriptor table", desc_gpa, desc_len);
	avail = guest_mem_ptr(mem, avail_gpa, avail_len);
	if (!avail || avail_gpa % VRING_AVAIL_ALIGN_SIZE ||
	    (uintptr_t)avail % VRING_AVAIL_ALIGN_SIZE)
		return setup_fail(vq, err, "available ring", avail_gpa, avail_len);
	used = guest_mem_ptr(mem, used_gpa, used_len);
	if (!used || used_gpa % VRING_USED_ALIGN_SIZE || (uintptr_t)used % VRING_USED_ALIGN_SIZE)
		return setup_fail(vq, err, "used ring", used_gpa, used_len);

	vq->size = (uint16_t)size;
	vq->desc_gpa = desc_gpa;
	vq->avail_gpa = avail_gpa;
	vq->used_gpa = used_gpa;
	vq->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	vq->mem = mem;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	/* The driver starts with kicks on: used->flags and avail_event are zero. */
	vq->notify_enabled = true;
	vq->ready = true;
	return 0;
}

/* Walks one chain from head into *chain; returns VIRTQ_OK or why the chain is invalid. */
static enum virtq_error walk_chain(const struct virtqueue *vq, uint16_t head,
				   struct virtq_chain *chain)
{
	const struct vring_desc *table = vq->desc;
	unsigned int table_size = vq->size;
	/* A chain visits each slot at most once, so more steps than slots means a loop. */
	unsigned int budget = vq->size;
	unsigned int idx = head;
	bool in_indirect = false, seen_writable = false;
	uint64_t total = 0;

	chain->head = head;
	chain->nr_segs = 0;
	chain->nr_readable = 0;
	chain->readable_bytes = 0;
	chain->writable_bytes = 0;

	for (;;) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		bool writable;

		if (budget-- == 0)
			return VIRTQ_ERR_LOOP;
		read_desc(&table[idx], &addr, &len, &flags, &next);

		if (flags & VRING_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: only if negotiated, one level, never with NEXT. */
			if (!vq->indirect || in_indirect || (flags & VRING_DESC_F_NEXT))
				return VIRTQ_ERR_INDIRECT;
			if (len == 0 || len % sizeof(struct vring_desc) ||
			    len / sizeof(struct vring_desc) > VIRTQ_MAX_SEGS)
				return VIRTQ_ERR_INDIRECT;
			table = guest_mem_ptr(vq->mem, addr, len);
			if (!table)
				return VIRTQ_ERR_ADDR;
			table_size = len / sizeof(struct vring_desc);
			budget = table_size;
			idx = 0;
			in_indirect = true;
			continue;
		}

		writable = flags & VRING_DESC_F_WRITE;
		if (!writable && seen_writable)
			return VIRTQ_ERR_ORDER;
		seen_writable |= writable;
		total += len;
		if (total > UINT32_MAX)
			return VIRTQ_ERR_LEN;

		/* Empty buffers carry nothing; dropping them keeps segments non-empty. */
		if (len) {
			struct virtq_seg *s;
			void *p = guest_mem_ptr(vq->mem, addr, len);

			if (!p)
				return VIRTQ_ERR_ADDR;
			if (chain->nr_segs == VIRTQ_MAX_SEGS)
				return VIRTQ_ERR_TOO_MANY_SEGS;
			s = &chain->segs[chain->nr_segs++];
			s->addr = p;
			s->len = len;
			s->writable = writable;
			if (writable) {
				chain->writable_bytes += len;
			} else {
				chain->readable_bytes += len;
				chain->nr_readable++;
			}
		}

		if (!(flags & VRING_DESC_F_NEXT))
			return VIRTQ_OK;
		if (next >= table_size)
			return VIRTQ_ERR_NEXT;
		idx = next;
	}
}

static int pop_fail(struct virtqueue *vq, enum virtq_error e)
{
	vq->broken = true;
	vq->last_error = e;
	vq->errors[e]++;
	return -1;
}

int virtq_pop(struct virtqueue *vq, struct virtq_chain *chain)
{
	uint16_t avail_idx, head;
	enum virtq_error e;

	if (vq->broken)
		return -1;
	if (!vq->ready)
		return 0;

	/* Acquire: the ring entry and descriptors behind this index are read after it. */
	avail_idx = ld16_acquire(&vq->avail->idx);
	if (avail_idx == vq->last_avail_idx)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->size)
		return pop_fail(vq, VIRTQ_ERR_AVAIL_IDX);

	head = ld16(&vq->avail->ring[vq->last_avail_idx & (vq->size - 1)]);
	if (head >= vq->size)
		return pop_fail(vq, VIRTQ_ERR_HEAD);
	e = walk_chain(vq, head, chain);
	if (e != VIRTQ_OK)
		return pop_fail(vq, e);

	vq->last_avail_idx++;
	vq->inflight++;
	vq->stats.bytes_read += chain->readable_bytes;
	/* Keep asking for the next kick while kicks are wanted (see virtq_enable_notify). */
	if (vq->event_idx && vq->notify_enabled)
		st16(avail_event_ptr(vq), vq->last_avail_idx);
	return 1;
}

void virtq_unpop(struct virtqueue *vq)
{
	if (!vq->ready || vq->inflight == 0)
		return;
	vq->last_avail_idx--;
	vq->inflight--;
}

int virtq_push(struct virtqueue *vq, uint16_t head, uint32_t written_len)
{
	struct vring_used_elem *elem;

	if (!vq->ready || head >= vq->size || vq->inflight == 0) {
		vq->errors[VIRTQ_ERR_PUSH]++;
		vq->last_error = VIRTQ_ERR_PUSH;
		return -1;
	}
	elem = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	st32(&elem->id, head);
	st32(&elem->len, written_len);
	vq->used_idx++;
	/* Release: the driver must see the element before the index that covers it. */
	st16_release(&vq->used->idx, vq->used_idx);
	vq->inflight--;
	vq->unsignalled++;
	vq->stats.requests++;
	vq->stats.bytes_written += written_len;
	return 0;
}

bool virtq_should_notify(struct virtqueue *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx;
	bool wrapped;

	if (!vq->ready || vq->unsignalled == 0)
		return false;
	/*
	 * Our used->idx store must be visible before we read the driver's suppression state,
	 * or the driver may re-enable interrupts after our read and miss this one (store-load
	 * ordering needs a full fence).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* 2^16 pushes without a decision make the 16-bit comparison meaningless. */
	wrapped = vq->unsignalled > UINT16_MAX;
	vq->signalled_used = new;
	vq->unsignalled = 0;
	vq->stats.batches++;

	bool need;
	if (vq->event_idx)
		need = wrapped || vring_need_event(ld16(used_event_ptr(vq)), new, old);
	else
		need = !(ld16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (need)
		vq->stats.interrupts++;
	return need;
}

bool virtq_has_avail(struct virtqueue *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	return ld16_acquire(&vq->avail->idx) != vq->last_avail_idx;
}

bool virtq_enable_notify(struct virtqueue *vq)
{
	if (!vq->ready)
		return false;
	if (vq->event_idx)
		st16(avail_event_ptr(vq), vq->last_avail_idx);
	else if (!vq->notify_enabled)
		st16(&vq->used->flags, 0);
	vq->notify_enabled = true;
	/*
	 * The driver may have added entries while kicks were off and skipped the kick: make our
	 * store visible before re-reading avail->idx (store-load, so a full fence).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_has_avail(vq);
}

void virtq_disable_notify(struct virtqueue *vq)
{
	if (!vq->ready || !vq->notify_enabled)
		return;
	/* With EVENT_IDX, leaving avail_event behind is enough: the driver kicks only on
	 * crossing it. */
	if (!vq->event_idx)
		st16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
	vq->notify_enabled = false;
}

static size_t chain_copy(const struct virtq_seg *segs, unsigned int nr, size_t offset, void *buf,
			 size_t len, bool to_guest)
{
	size_t done = 0;

	for (unsigned int i = 0; i < nr && done < len; i++) {
		size_t chunk;

		if (offset >= segs[i].len) {
			offset -= segs[i].len;
			continue;
		}
		chunk = segs[i].len - offset;
		if (chunk > len - done)
			chunk = len - done;
		if (to_guest)
			memcpy((uint8_t *)segs[i].addr + offset, (uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done, (uint8_t *)segs[i].addr + offset, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

size_t virtq_chain_read(const struct virtq_chain *chain, size_t offset, void *dst, size_t len)
{
	return chain_copy(chain->segs, chain->nr_readable, offset, dst, len, false);
}

size_t virtq_chain_write(const struct virtq_chain *chain, size_t offset, const void *src,
			 size_t len)
{
	return chain_copy(chain->segs + chain->nr_readable, chain->nr_segs - chain->nr_readable,
			  offset, (void *)src, len, true);
}
