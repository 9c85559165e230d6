#include "fixture_guest_mem.h"
#include "fixture_vring.h"

void fx_vring_init(struct fx_vring *r, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	*r = (struct fx_vring){.desc = desc, .avail = avail, .used = used, .size = size};
}

struct vring_desc *fx_desc_at(uint64_t table_gpa, unsigned int i)
{
	return (struct vring_desc *)host(table_gpa) + i;
}

void fx_set_desc(uint64_t table_gpa, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	struct vring_desc *d = fx_desc_at(table_gpa, i);

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

struct vring_avail *fx_avail(const struct fx_vring *r)
{
	return (struct vring_avail *)host(r->avail);
}

struct vring_used *fx_used(const struct fx_vring *r)
{
	return (struct vring_used *)host(r->used);
}

uint16_t fx_used_idx(const struct fx_vring *r)
{
	return __atomic_load_n(&fx_used(r)->idx, __ATOMIC_ACQUIRE);
}

void fx_make_avail(struct fx_vring *r, uint16_t head)
{
	fx_avail(r)->ring[r->avail_idx % r->size] = head;
	r->avail_idx++;
	__atomic_store_n(&fx_avail(r)->idx, r->avail_idx, __ATOMIC_RELEASE);
}

uint16_t fx_add_chain(struct fx_vring *r, const struct fx_seg *s, unsigned int n)
{
	uint16_t head;

	if (r->next_desc + n > r->size)
		r->next_desc = 0;
	head = r->next_desc;
	for (unsigned int i = 0; i < n; i++) {
		uint16_t flags =
		    (s[i].w ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		fx_set_desc(r->desc, r->next_desc, s[i].gpa, s[i].len, flags, r->next_desc + 1);
		r->next_desc++;
	}
	fx_make_avail(r, head);
	return head;
}

struct vring_used_elem *fx_take_used(struct fx_vring *r)
{
	struct vring_used_elem *e;

	if (fx_used_idx(r) == r->used_seen)
		return NULL;
	e = &fx_used(r)->ring[r->used_seen % r->size];
	r->used_seen++;
	return e;
}
