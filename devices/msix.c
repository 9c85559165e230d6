#include "devices/msix.h"

#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>

int msix_init(struct msix *m, unsigned int nr_vectors, const struct msix_ops *ops, struct kerr *err)
{
	memset(m, 0, sizeof(*m));
	if (nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS)
		return kerr_set(err, "MSI-X: %u vectors, want 1..%d", nr_vectors, MSIX_MAX_VECTORS);
	m->table = calloc(nr_vectors, sizeof(*m->table));
	if (!m->table)
		goto fail;
	m->pba = calloc(MSIX_PBA_SIZE(nr_vectors) / 8, sizeof(*m->pba));
	if (!m->pba)
		goto fail_table;
	m->nr = nr_vectors;
	/* Vectors come out of reset masked (PCI spec, MSI-X vector control). */
	for (unsigned int i = 0; i < nr_vectors; i++)
		m->table[i].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	if (ops)
		m->ops = *ops;
	pthread_mutex_init(&m->lock, NULL);
	return 0;

fail_table:
	free(m->table);
	m->table = NULL;
fail:
	return kerr_set(err, "MSI-X: out of memory for %u vectors", nr_vectors);
}

void msix_destroy(struct msix *m)
{
	if (!m->table)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->pba);
	free(m->table);
	m->table = NULL;
	m->pba = NULL;
}

static bool masked(const struct msix *m, unsigned int v)
{
	return !m->enabled || m->func_masked || (m->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static uint64_t entry_addr(const struct msix_entry *e)
{
	return (uint64_t)e->addr_hi << 32 | e->addr_lo;
}

static bool pending(const struct msix *m, unsigned int v)
{
	return m->pba[v / 64] & (1ULL << (v % 64));
}

static void set_pending(struct msix *m, unsigned int v, bool on)
{
	if (on)
		m->pba[v / 64] |= 1ULL << (v % 64);
	else
		m->pba[v / 64] &= ~(1ULL << (v % 64));
}

static void fire(struct msix *m, unsigned int v)
{
	const struct msix_entry *e = &m->table[v];

	if (m->ops.fire)
		m->ops.fire(m->ops.opaque, v, entry_addr(e), e->data);
}

/* After a change to vector v: tell the VMM, then deliver what the mask held back. */
static void vector_update(struct msix *m, unsigned int v, const struct msix_entry *old,
			  bool was_masked)
{
	const struct msix_entry *e = &m->table[v];
	bool now_masked = masked(m, v);

	if (was_masked != now_masked || e->addr_lo != old->addr_lo || e->addr_hi != old->addr_hi ||
	    e->data != old->data) {
		if (m->ops.vector_changed)
			m->ops.vector_changed(m->ops.opaque, v, entry_addr(e), e->data, now_masked);
	}
	if (!now_masked && pending(m, v)) {
		set_pending(m, v, false);
		fire(m, v);
	}
}

static void set_control(struct msix *m, uint16_t ctrl)
{
	bool was[MSIX_MAX_VECTORS];

	pthread_mutex_lock(&m->lock);
	for (unsigned int v = 0; v < m->nr; v++)
		was[v] = masked(m, v);
	m->enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
	m->func_masked = ctrl & PCI_MSIX_FLAGS_MASKALL;
	for (unsigned int v = 0; v < m->nr; v++)
		vector_update(m, v, &m->table[v], was[v]);
	pthread_mutex_unlock(&m->lock);
}

static void control_hook(void *opaque, struct pci_function *f, unsigned int offset, uint8_t *data,
			 unsigned int size, bool is_write)
{
	struct msix *m = opaque;
	uint8_t buf[2];

	(void)offset;
	(void)data;
	(void)size;
	if (!is_write)
		return;
	pci_cfg_peek(f, m->cap + PCI_MSIX_FLAGS, buf, 2);
	set_control(m, buf[0] | buf[1] << 8);
}

int msix_add_cap(struct msix *m, struct pci_function *f, int table_bar, uint32_t table_off,
		 int pba_bar, uint32_t pba_off, struct kerr *err)
{
	uint8_t cap[PCI_CAP_MSIX_SIZEOF] = {0}, wmask[PCI_CAP_MSIX_SIZEOF] = {0};
	uint16_t ctrl = m->nr - 1;
	uint32_t table = table_off | table_bar, pba = pba_off | pba_bar;
	int off;

	if (table_bar < 0 || table_bar >= PCI_NR_BARS || pba_bar < 0 || pba_bar >= PCI_NR_BARS ||
	    (table_off & PCI_MSIX_TABLE_BIR) || (pba_off & PCI_MSIX_PBA_BIR))
		return kerr_set(err, "%s: MSI-X table/PBA BAR or offset invalid", f->name);
	cap[PCI_MSIX_FLAGS] = ctrl;
	cap[PCI_MSIX_FLAGS + 1] = ctrl >> 8;
	for (int i = 0; i < 4; i++) {
		cap[PCI_MSIX_TABLE + i] = table >> (8 * i);
		cap[PCI_MSIX_PBA + i] = pba >> (8 * i);
	}
	wmask[PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;

	off = pci_add_cap(f, PCI_CAP_ID_MSIX, cap, sizeof(cap), wmask, err);
	if (off < 0)
		return -1;
	m->cap = off;
	if (pci_add_cfg_hook(f, off + PCI_MSIX_FLAGS, 2, control_hook, m, err))
		return -1;
	return off;
}

static void entry_read(const struct msix *m, uint64_t offset, uint8_t *data, unsigned int size)
{
	for (unsigned int i = 0; i < size; i++) {
		uint64_t o = offset + i;
		const struct msix_entry *e = &m->table[o / 16];
		const uint32_t w[4] = {e->addr_lo, e->addr_hi, e->data, e->ctrl};

		data[i] = w[(o % 16) / 4] >> (8 * (o % 4));
	}
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void entry_write_dword(struct msix_entry *e, unsigned int field, uint32_t val)
{
	switch (field) {
	case PCI_MSIX_ENTRY_LOWER_ADDR:
		e->addr_lo = val;
		break;
	case PCI_MSIX_ENTRY_UPPER_ADDR:
		e->addr_hi = val;
		break;
	case PCI_MSIX_ENTRY_DATA:
		e->data = val;
		break;
	default:
		/* Only the mask bit is ours; the rest is reserved and reads as zero. */
		e->ctrl = val & PCI_MSIX_ENTRY_CTRL_MASKBIT;
		break;
	}
}

void msix_table_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct msix *m = opaque;
	unsigned int v = offset / 16;

	if ((size != 4 && size != 8) || offset % size || offset >= MSIX_TABLE_SIZE(m->nr)) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (is_write) {
		struct msix_entry old = m->table[v];
		bool was = masked(m, v);

		for (unsigned int i = 0; i < size; i += 4)
			entry_write_dword(&m->table[v], (offset + i) % 16, le32(data + i));
		vector_update(m, v, &old, was);
	} else {
		entry_read(m, offset, data, size);
	}
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct msix *m = opaque;

	if (is_write)
		return;
	if (offset >= MSIX_PBA_SIZE(m->nr) || size > MSIX_PBA_SIZE(m->nr) - offset) {
		memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < size; i++)
		data[i] = m->pba[(offset + i) / 8] >> (8 * ((offset + i) % 8));
	pthread_mutex_unlock(&m->lock);
}

bool msix_notify(struct msix *m, unsigned int vector)
{
	pthread_mutex_lock(&m->lock);
	if (!m->enabled) {
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	if (vector < m->nr) {
		if (masked(m, vector))
			set_pending(m, vector, true);
		else
			fire(m, vector);
	}
	pthread_mutex_unlock(&m->lock);
	return true;
}

bool msix_enabled(struct msix *m)
{
	bool on;

	pthread_mutex_lock(&m->lock);
	on = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return on;
}
