#include "devices/pci.h"

#include <linux/pci_regs.h>
#include <string.h>

#define CF8_ENABLE 0x80000000u
#define RCR_SYS_RST 0x02
#define RCR_RST_CPU 0x04
#define RCR_FULL_RST 0x08

static uint32_t get_le(const uint8_t *p, unsigned int size)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, unsigned int size, uint32_t v)
{
	for (unsigned int i = 0; i < size; i++)
		p[i] = v >> (8 * i);
}

static void set_mask(uint8_t *mask, unsigned int offset, unsigned int size, uint32_t v)
{
	put_le(mask + offset, size, v);
}

static unsigned int bar_reg(int bar)
{
	return PCI_BASE_ADDRESS_0 + 4 * bar;
}

static bool bar_valid(int bar)
{
	return bar >= 0 && bar < PCI_NR_BARS;
}

void pci_function_init(struct pci_function *f, const struct pci_ids *ids, const char *name)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->name = name;
	f->cfg_size = PCI_CFG_SIZE;
	f->next_cap = PCI_CAP_START;
	for (int i = 0; i < PCI_NR_BARS; i++)
		f->bars[i].mapped = PCI_BAR_UNMAPPED;

	put_le(f->cfg + PCI_VENDOR_ID, 2, ids->vendor);
	put_le(f->cfg + PCI_DEVICE_ID, 2, ids->device);
	put_le(f->cfg + PCI_CLASS_REVISION, 4, ids->class_code << 8 | ids->revision);
	put_le(f->cfg + PCI_SUBSYSTEM_VENDOR_ID, 2, ids->subsys_vendor);
	put_le(f->cfg + PCI_SUBSYSTEM_ID, 2, ids->subsys);
	f->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	f->cfg[PCI_INTERRUPT_PIN] = ids->irq_pin;

	set_mask(f->wmask, PCI_COMMAND, 2,
		 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
		     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	set_mask(f->w1cmask, PCI_STATUS, 2,
		 PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
		     PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |
		     PCI_STATUS_DETECTED_PARITY);
	/* Linux writes these two; they mean nothing to an emulated device but must stick. */
	f->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	f->wmask[PCI_LATENCY_TIMER] = 0xff;
	f->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

void pci_function_destroy(struct pci_function *f)
{
	pthread_mutex_destroy(&f->lock);
}

static uint16_t command(const struct pci_function *f)
{
	return get_le(f->cfg + PCI_COMMAND, 2);
}

static uint64_t bar_addr_locked(const struct pci_function *f, int bar)
{
	uint64_t addr = get_le(f->cfg + bar_reg(bar), 4) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;

	if (f->bars[bar].flags & PCI_BAR_MEM64)
		addr |= (uint64_t)get_le(f->cfg + bar_reg(bar + 1), 4) << 32;
	return addr;
}

/*
 * What the BAR decodes. Address 0 and ranges that wrap or end at the top of the address
 * space (what the sizing protocol's all-ones writes leave behind) decode nothing.
 */
static uint64_t bar_decode(const struct pci_function *f, int bar)
{
	const struct pci_bar *b = &f->bars[bar];
	uint64_t addr, last;

	if (!b->size || !(command(f) & PCI_COMMAND_MEMORY))
		return PCI_BAR_UNMAPPED;
	addr = bar_addr_locked(f, bar);
	last = addr + b->size - 1;
	if (!addr || last < addr || last == UINT64_MAX)
		return PCI_BAR_UNMAPPED;
	if (!(b->flags & PCI_BAR_MEM64) && last > UINT32_MAX)
		return PCI_BAR_UNMAPPED;
	return addr;
}

static void update_bars(struct pci_function *f)
{
	for (int i = 0; i < PCI_NR_BARS; i++) {
		struct pci_bar *b = &f->bars[i];
		uint64_t old = b->mapped, now = bar_decode(f, i);

		if (old == now)
			continue;
		__atomic_store_n(&b->mapped, now, __ATOMIC_RELEASE);
		if (f->bar_remap)
			f->bar_remap(f->bar_remap_opaque, f, i, old, now);
	}
}

static void update_intx(struct pci_function *f)
{
	int out = f->intx_level && !(command(f) & PCI_COMMAND_INTX_DISABLE);

	if (f->intx_level)
		f->cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		f->cfg[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
	if (out == f->intx_output)
		return;
	f->intx_output = out;
	irq_line_set(&f->intx, out);
}

int pci_add_bar(struct pci_function *f, int bar, uint64_t size, unsigned int flags,
		io_handler_fn fn, void *opaque, struct kerr *err)
{
	bool is64 = flags & PCI_BAR_MEM64;
	uint32_t type = is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32;
	uint64_t mask = ~(size - 1);

	if (!bar_valid(bar) || (is64 && bar == PCI_NR_BARS - 1))
		return kerr_set(err, "%s: BAR %d out of range", f->name, bar);
	if (size < 16 || (size & (size - 1)) || (!is64 && size > (1ULL << 31)))
		return kerr_set(err, "%s: BAR %d size 0x%llx is not a power of two in range",
				f->name, bar, (unsigned long long)size);
	if (f->bars[bar].size || (bar > 0 && (f->bars[bar - 1].flags & PCI_BAR_MEM64)) ||
	    (is64 && f->bars[bar + 1].size))
		return kerr_set(err, "%s: BAR %d already in use", f->name, bar);

	if (flags & PCI_BAR_PREFETCH)
		type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
	f->bars[bar] = (struct pci_bar){size, flags, PCI_BAR_UNMAPPED, fn, opaque};
	put_le(f->cfg + bar_reg(bar), 4, type);
	/* Address bits below the size stay zero: that is how sizing reads back the size. */
	set_mask(f->wmask, bar_reg(bar), 4, (uint32_t)mask & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK);
	if (is64) {
		put_le(f->cfg + bar_reg(bar + 1), 4, 0);
		set_mask(f->wmask, bar_reg(bar + 1), 4, mask >> 32);
	}
	return 0;
}

void pci_set_bar_addr(struct pci_function *f, int bar, uint64_t addr)
{
	uint32_t lo;

	if (!bar_valid(bar) || !f->bars[bar].size)
		return;
	pthread_mutex_lock(&f->lock);
	lo = get_le(f->cfg + bar_reg(bar), 4) & ~(uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
	lo |= (uint32_t)addr & get_le(f->wmask + bar_reg(bar), 4);
	put_le(f->cfg + bar_reg(bar), 4, lo);
	if (f->bars[bar].flags & PCI_BAR_MEM64)
		put_le(f->cfg + bar_reg(bar + 1), 4,
		       (addr >> 32) & get_le(f->wmask + bar_reg(bar + 1), 4));
	update_bars(f);
	pthread_mutex_unlock(&f->lock);
}

uint64_t pci_bar_addr(struct pci_function *f, int bar)
{
	uint64_t addr;

	if (!bar_valid(bar) || !f->bars[bar].size)
		return 0;
	pthread_mutex_lock(&f->lock);
	addr = bar_addr_locked(f, bar);
	pthread_mutex_unlock(&f->lock);
	return addr;
}

uint64_t pci_bar_mapped(const struct pci_function *f, int bar)
{
	if (!bar_valid(bar))
		return PCI_BAR_UNMAPPED;
	return __atomic_load_n(&f->bars[bar].mapped, __ATOMIC_ACQUIRE);
}

int pci_add_cap(struct pci_function *f, uint8_t id, const void *cap, size_t len, const void *wmask,
		struct kerr *err)
{
	unsigned int off = f->next_cap;

	if (len < 2 || len > PCI_CFG_SIZE - off)
		return kerr_set(err, "%s: no room for a %zu-byte capability 0x%02x", f->name, len,
				id);
	memcpy(f->cfg + off, cap, len);
	if (wmask)
		memcpy(f->wmask + off, wmask, len);
	f->cfg[off + PCI_CAP_LIST_ID] = id;
	f->cfg[off + PCI_CAP_LIST_NEXT] = 0;
	f->wmask[off + PCI_CAP_LIST_ID] = 0;
	f->wmask[off + PCI_CAP_LIST_NEXT] = 0;

	if (f->last_cap)
		f->cfg[f->last_cap + PCI_CAP_LIST_NEXT] = off;
	else
		f->cfg[PCI_CAPABILITY_LIST] = off;
	f->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	f->last_cap = off;
	/* Capabilities are dword aligned (the low two bits of a pointer are reserved). */
	f->next_cap = (off + len + 3) & ~3u;
	return off;
}

unsigned int pci_find_cap(struct pci_function *f, uint8_t id)
{
	unsigned int off = f->cfg[PCI_CAPABILITY_LIST];

	/* Bounded: 48 dwords fit after the header, so a longer walk is a loop. */
	for (int n = 0; off && n < 48; n++) {
		if (f->cfg[off + PCI_CAP_LIST_ID] == id)
			return off;
		off = f->cfg[off + PCI_CAP_LIST_NEXT];
	}
	return 0;
}

static int add_hook(struct pci_function *f, unsigned int start, unsigned int len,
		    pci_cfg_hook_fn fn, void *opaque, bool unlocked, struct kerr *err)
{
	if (f->nr_hooks == PCI_MAX_CFG_HOOKS)
		return kerr_set(err, "%s: too many config-space hooks", f->name);
	if (!len || start >= PCI_CFG_EXT_SIZE || len > PCI_CFG_EXT_SIZE - start)
		return kerr_set(err, "%s: config hook range 0x%x+%u out of range", f->name, start,
				len);
	f->hooks[f->nr_hooks++] = (struct pci_cfg_hook){start, len, fn, opaque, unlocked};
	return 0;
}

int pci_add_cfg_hook(struct pci_function *f, unsigned int start, unsigned int len,
		     pci_cfg_hook_fn fn, void *opaque, struct kerr *err)
{
	return add_hook(f, start, len, fn, opaque, false, err);
}

int pci_add_cfg_hook_unlocked(struct pci_function *f, unsigned int start, unsigned int len,
			      pci_cfg_hook_fn fn, void *opaque, struct kerr *err)
{
	return add_hook(f, start, len, fn, opaque, true, err);
}

static bool overlaps(unsigned int a, unsigned int alen, unsigned int b, unsigned int blen)
{
	return a < b + blen && b < a + alen;
}

/* Hooks are fixed before the function is on a bus, so the list is read without the lock. */
static void run_hooks(struct pci_function *f, unsigned int offset, uint8_t *data, unsigned int size,
		      bool is_write, bool unlocked)
{
	for (int i = 0; i < f->nr_hooks; i++) {
		const struct pci_cfg_hook *h = &f->hooks[i];

		if (h->unlocked == unlocked && overlaps(offset, size, h->start, h->len))
			h->fn(h->opaque, f, offset, data, size, is_write);
	}
}

static bool size_ok(unsigned int size)
{
	return size == 1 || size == 2 || size == 4;
}

void pci_cfg_read(struct pci_function *f, unsigned int offset, uint8_t *data, unsigned int size)
{
	memset(data, 0xff, size);
	if (!size_ok(size) || offset >= f->cfg_size)
		return;
	pthread_mutex_lock(&f->lock);
	for (unsigned int i = 0; i < size && offset + i < f->cfg_size; i++)
		data[i] = f->cfg[offset + i];
	run_hooks(f, offset, data, size, false, false);
	pthread_mutex_unlock(&f->lock);
	run_hooks(f, offset, data, size, false, true);
}

void pci_cfg_write(struct pci_function *f, unsigned int offset, const uint8_t *data,
		   unsigned int size)
{
	uint8_t buf[4];

	if (!size_ok(size) || offset >= f->cfg_size)
		return;
	memcpy(buf, data, size);
	pthread_mutex_lock(&f->lock);
	for (unsigned int i = 0; i < size && offset + i < f->cfg_size; i++) {
		unsigned int o = offset + i;
		uint8_t wm = f->wmask[o];

		f->cfg[o] = (f->cfg[o] & ~wm) | (data[i] & wm);
		f->cfg[o] &= ~(data[i] & f->w1cmask[o]);
	}
	if (overlaps(offset, size, PCI_COMMAND, 2) ||
	    overlaps(offset, size, PCI_BASE_ADDRESS_0, 4 * PCI_NR_BARS))
		update_bars(f);
	if (overlaps(offset, size, PCI_COMMAND, 2))
		update_intx(f);
	run_hooks(f, offset, buf, size, true, false);
	pthread_mutex_unlock(&f->lock);
	run_hooks(f, offset, buf, size, true, true);
}

uint32_t pci_cfg_read_val(struct pci_function *f, unsigned int offset, unsigned int size)
{
	uint8_t buf[4];

	if (!size_ok(size))
		return UINT32_MAX;
	pci_cfg_read(f, offset, buf, size);
	return get_le(buf, size);
}

void pci_cfg_write_val(struct pci_function *f, unsigned int offset, unsigned int size, uint32_t val)
{
	uint8_t buf[4];

	if (!size_ok(size))
		return;
	put_le(buf, size, val);
	pci_cfg_write(f, offset, buf, size);
}

void pci_cfg_peek(const struct pci_function *f, unsigned int offset, void *buf, size_t len)
{
	if (offset > PCI_CFG_EXT_SIZE || len > PCI_CFG_EXT_SIZE - offset) {
		memset(buf, 0xff, len);
		return;
	}
	memcpy(buf, f->cfg + offset, len);
}

void pci_cfg_poke(struct pci_function *f, unsigned int offset, const void *buf, size_t len)
{
	if (offset > PCI_CFG_EXT_SIZE || len > PCI_CFG_EXT_SIZE - offset)
		return;
	memcpy(f->cfg + offset, buf, len);
}

void pci_cfg_get(struct pci_function *f, unsigned int offset, void *buf, size_t len)
{
	pthread_mutex_lock(&f->lock);
	pci_cfg_peek(f, offset, buf, len);
	pthread_mutex_unlock(&f->lock);
}

void pci_cfg_set(struct pci_function *f, unsigned int offset, const void *buf, size_t len)
{
	pthread_mutex_lock(&f->lock);
	pci_cfg_poke(f, offset, buf, len);
	pthread_mutex_unlock(&f->lock);
}

void pci_intx_set(struct pci_function *f, int level)
{
	pthread_mutex_lock(&f->lock);
	f->intx_level = !!level;
	update_intx(f);
	pthread_mutex_unlock(&f->lock);
}

bool pci_bus_master_enabled(struct pci_function *f)
{
	bool on;

	pthread_mutex_lock(&f->lock);
	on = command(f) & PCI_COMMAND_MASTER;
	pthread_mutex_unlock(&f->lock);
	return on;
}

void pci_bus_init(struct pci_bus *bus)
{
	static const struct pci_ids host_ids = {
	    .vendor = PCI_HOST_BRIDGE_VENDOR,
	    .device = PCI_HOST_BRIDGE_DEVICE,
	    .class_code = PCI_CLASS_HOST_BRIDGE,
	};

	memset(bus, 0, sizeof(*bus));
	pci_function_init(&bus->host_bridge, &host_ids, "host-bridge");
	/* It decodes the whole bus; Linux checks nothing more of it. */
	put_le(bus->host_bridge.cfg + PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	bus->slots[0] = &bus->host_bridge;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pci_function_destroy(&bus->host_bridge);
}

int pci_bus_add(struct pci_bus *bus, struct pci_function *f, int slot, struct kerr *err)
{
	if (slot < 0) {
		for (slot = 1; slot < PCI_NR_SLOTS && bus->slots[slot]; slot++)
			;
		if (slot == PCI_NR_SLOTS)
			return kerr_set(err, "%s: no free PCI slot", f->name);
	} else if (slot == 0 || slot >= PCI_NR_SLOTS) {
		return kerr_set(err, "%s: PCI slot %d out of range 1..%d", f->name, slot,
				PCI_NR_SLOTS - 1);
	} else if (bus->slots[slot]) {
		return kerr_set(err, "%s: PCI slot %d taken by %s", f->name, slot,
				bus->slots[slot]->name);
	}
	bus->slots[slot] = f;
	return slot;
}

static struct pci_function *lookup(struct pci_bus *bus, unsigned int busno, unsigned int dev,
				   unsigned int fn)
{
	if (busno != 0 || fn != 0 || dev >= PCI_NR_SLOTS)
		return NULL;
	return bus->slots[dev];
}

static void cfg_access(struct pci_function *f, unsigned int reg, uint8_t *data, unsigned int size,
		       bool is_write)
{
	if (!f) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write)
		pci_cfg_write(f, reg, data, size);
	else
		pci_cfg_read(f, reg, data, size);
}

void pci_cf8_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pci_bus *bus = opaque;

	/* Only dword accesses reach CONFIG_ADDRESS; byte 0xCF9 is the reset control register. */
	if (offset == 0 && size == 4) {
		if (is_write)
			__atomic_store_n(&bus->cf8, get_le(data, 4), __ATOMIC_RELAXED);
		else
			put_le(data, 4, __atomic_load_n(&bus->cf8, __ATOMIC_RELAXED));
		return;
	}
	if (offset == 1 && size == 1) {
		if (!is_write) {
			data[0] = __atomic_load_n(&bus->rcr, __ATOMIC_RELAXED);
			return;
		}
		/* RST_CPU is a trigger, not state: it reads back as 0. */
		__atomic_store_n(&bus->rcr, data[0] & (RCR_SYS_RST | RCR_FULL_RST),
				 __ATOMIC_RELAXED);
		if ((data[0] & RCR_RST_CPU) && bus->reset)
			bus->reset(bus->reset_opaque);
		return;
	}
	if (!is_write)
		memset(data, 0xff, size);
}

void pci_cfc_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pci_bus *bus = opaque;
	uint32_t addr = __atomic_load_n(&bus->cf8, __ATOMIC_RELAXED);
	struct pci_function *f = NULL;

	if (addr & CF8_ENABLE)
		f = lookup(bus, (addr >> 16) & 0xff, (addr >> 11) & 0x1f, (addr >> 8) & 0x7);
	if (f && offset + size > 4)
		f = NULL;
	/* CONFIG_ADDRESS reaches only the 256 standard bytes, even of a PCIe function. */
	if (f && (addr & 0xfc) + offset + size > PCI_CFG_SIZE)
		f = NULL;
	cfg_access(f, (addr & 0xfc) + offset, data, size, is_write);
}

void pci_ecam_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pci_bus *bus = opaque;
	unsigned int reg = offset & 0xfff;
	struct pci_function *f;

	f = lookup(bus, offset >> 20, (offset >> 15) & 0x1f, (offset >> 12) & 0x7);
	/* An access may not spill into the next function's space. */
	if (f && reg + size > PCI_CFG_EXT_SIZE)
		f = NULL;
	cfg_access(f, reg, data, size, is_write);
}

bool pci_bus_mmio(struct pci_bus *bus, uint64_t addr, uint8_t *data, unsigned int size,
		  bool is_write)
{
	for (int s = 0; s < PCI_NR_SLOTS; s++) {
		struct pci_function *f = bus->slots[s];

		if (!f)
			continue;
		for (int i = 0; i < PCI_NR_BARS; i++) {
			const struct pci_bar *b = &f->bars[i];
			uint64_t base = pci_bar_mapped(f, i);

			if (base == PCI_BAR_UNMAPPED || addr < base || addr - base >= b->size)
				continue;
			if (b->fn)
				b->fn(b->opaque, addr - base, data, size, is_write);
			else if (!is_write)
				memset(data, 0xff, size);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}

void pci_window_init(struct pci_window *w, struct pci_bus *bus, uint64_t base, uint64_t size)
{
	*w = (struct pci_window){base, size, base, bus};
}

int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t *addr, struct kerr *err)
{
	uint64_t a, end = w->base + w->size;

	if (!size || (size & (size - 1)))
		return kerr_set(err, "BAR size 0x%llx is not a power of two",
				(unsigned long long)size);
	a = (w->next + size - 1) & ~(size - 1);
	if (a < w->next || a > end || size > end - a)
		return kerr_set(err, "no room for a 0x%llx-byte BAR in [0x%llx, 0x%llx)",
				(unsigned long long)size, (unsigned long long)w->base,
				(unsigned long long)end);
	w->next = a + size;
	*addr = a;
	return 0;
}

int pci_assign_bars(struct pci_function *f, struct pci_window *w32, struct pci_window *w64,
		    struct kerr *err)
{
	for (int i = 0; i < PCI_NR_BARS; i++) {
		const struct pci_bar *b = &f->bars[i];
		struct pci_window *w = (b->flags & PCI_BAR_MEM64) && w64 ? w64 : w32;
		struct kerr why;
		uint64_t addr;

		if (!b->size)
			continue;
		if (!w)
			return kerr_set(err, "%s: BAR %d: no window to put it in", f->name, i);
		if (pci_window_alloc(w, b->size, &addr, &why))
			return kerr_set(err, "%s: BAR %d: %s", f->name, i, why.msg);
		if (!(b->flags & PCI_BAR_MEM64) && addr + b->size - 1 > UINT32_MAX)
			return kerr_set(err, "%s: 32-bit BAR %d placed above 4 GiB", f->name, i);
		pci_set_bar_addr(f, i, addr);
	}
	return 0;
}

void pci_window_io(void *opaque, uint64_t offset, uint8_t *data, unsigned int size, bool is_write)
{
	struct pci_window *w = opaque;

	pci_bus_mmio(w->bus, w->base + offset, data, size, is_write);
}
