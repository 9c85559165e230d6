#include "vmm/kvm_irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"

static int commit(struct irq_router *r, struct kerr *err)
{
	struct kvm_irq_routing *t =
	    malloc(sizeof(*t) + r->nr * sizeof(struct kvm_irq_routing_entry));
	int rc = 0;

	if (!t)
		return kerr_set(err, "out of memory for the GSI routing table");
	t->nr = r->nr;
	t->flags = 0;
	memcpy(t->entries, r->entries, r->nr * sizeof(r->entries[0]));
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		rc = kerr_set(err, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
	free(t);
	return rc;
}

int irq_router_init(struct irq_router *r, int vm_fd, struct kerr *err)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->vm_fd = vm_fd;
	r->nr = arch_default_gsi_routes(r->entries, IRQ_ROUTER_MAX, &r->next_gsi);
	return commit(r, err);
}

static struct kvm_irq_routing_entry *find(struct irq_router *r, uint32_t gsi)
{
	for (unsigned int i = 0; i < r->nr; i++)
		if (r->entries[i].gsi == gsi && r->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &r->entries[i];
	return NULL;
}

/* Keeps the entry's requester ID: it belongs to the function, not to what the guest wrote. */
static void fill_msi(struct kvm_irq_routing_entry *e, uint32_t gsi, uint64_t addr, uint32_t data)
{
	uint32_t flags = e->flags, devid = e->u.msi.devid;

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->flags = flags;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	e->u.msi.devid = devid;
}

int irq_router_add_msi(struct irq_router *r, uint32_t devid, uint64_t addr, uint32_t data,
		       uint32_t *gsi, struct kerr *err)
{
	int rc;

	pthread_mutex_lock(&r->lock);
	if (r->nr == IRQ_ROUTER_MAX) {
		pthread_mutex_unlock(&r->lock);
		return kerr_set(err, "GSI routing table full");
	}
	*gsi = r->next_gsi++;
	memset(&r->entries[r->nr], 0, sizeof(r->entries[0]));
	if (arch_layout.msi_devid) {
		r->entries[r->nr].flags = KVM_MSI_VALID_DEVID;
		r->entries[r->nr].u.msi.devid = devid;
	}
	fill_msi(&r->entries[r->nr++], *gsi, addr, data);
	rc = commit(r, err);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int irq_router_set_msi(struct irq_router *r, uint32_t gsi, uint64_t addr, uint32_t data,
		       struct kerr *err)
{
	struct kvm_irq_routing_entry *e;
	int rc;

	pthread_mutex_lock(&r->lock);
	e = find(r, gsi);
	if (!e) {
		pthread_mutex_unlock(&r->lock);
		return kerr_set(err, "GSI %u is not an MSI route", gsi);
	}
	if (e->u.msi.address_lo == (uint32_t)addr && e->u.msi.address_hi == (addr >> 32) &&
	    e->u.msi.data == data) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	fill_msi(e, gsi, addr, data);
	rc = commit(r, err);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int kvm_irqfd(int vm_fd, int efd, uint32_t gsi, bool assign, struct kerr *err)
{
	return kvm_irqfd_resample(vm_fd, efd, -1, gsi, assign, err);
}

int kvm_irqfd_resample(int vm_fd, int efd, int resample_fd, uint32_t gsi, bool assign,
		       struct kerr *err)
{
	struct kvm_irqfd f = {
	    .fd = (uint32_t)efd,
	    .gsi = gsi,
	    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (assign && resample_fd >= 0) {
		f.flags |= KVM_IRQFD_FLAG_RESAMPLE;
		f.resamplefd = (uint32_t)resample_fd;
	}
	if (ioctl(vm_fd, KVM_IRQFD, &f) < 0)
		return kerr_set(err, "KVM_IRQFD (gsi %u): %s", gsi, strerror(errno));
	return 0;
}

int kvm_ioeventfd(int vm_fd, int efd, uint64_t addr, uint32_t len, bool pio, bool assign,
		  struct kerr *err)
{
	return kvm_ioeventfd_match(vm_fd, efd, addr, len, pio, -1, assign, err);
}

int kvm_ioeventfd_match(int vm_fd, int efd, uint64_t addr, uint32_t len, bool pio,
			int64_t datamatch, bool assign, struct kerr *err)
{
	struct kvm_ioeventfd io = {
	    .addr = addr,
	    .len = len,
	    .fd = efd,
	    .flags =
		(pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (datamatch >= 0) {
		io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
		io.datamatch = (uint64_t)datamatch;
	}
	if (ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0)
		return kerr_set(err, "KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr,
				strerror(errno));
	return 0;
}
