#include "vmm/pci_devices.h"

#include <linux/kvm.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arch.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "vmm/vm.h"

static int plat_ioeventfd(void *opaque, int efd, uint64_t addr, bool assign, struct kerr *err)
{
	struct vm *vm = opaque;

	/* Linux writes notify registers 16 bits wide; "any length" also takes other widths. */
	return kvm_ioeventfd(vm->vm_fd, efd, addr, vm->pci.ioeventfd_any_length ? 0 : 2, false,
			     assign, err);
}

static int plat_msi_route_add(void *opaque, uint32_t devid, uint32_t *gsi, struct kerr *err)
{
	struct vm *vm = opaque;

	return irq_router_add_msi(&vm->pci.router, devid, 0, 0, gsi, err);
}

static int plat_irqfd(void *opaque, int efd, uint32_t gsi, bool assign, struct kerr *err)
{
	struct vm *vm = opaque;

	return kvm_irqfd(vm->vm_fd, efd, gsi, assign, err);
}

static int plat_msi_route_set(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data,
			      struct kerr *err)
{
	struct vm *vm = opaque;

	return irq_router_set_msi(&vm->pci.router, gsi, addr, data, err);
}

static void pci_reset(void *opaque)
{
	vm_request_exit(opaque, KESTREL_EXIT_REBOOT, "guest reset the machine through port 0xcf9");
}

static void destroy_device(struct virtio_dev *d)
{
	switch (d->device_id) {
	case VIRTIO_ID_CONSOLE:
		virtio_console_destroy(d);
		break;
	case VIRTIO_ID_NET:
		virtio_net_destroy(d);
		break;
	default:
		virtio_blk_destroy(d);
		break;
	}
}

static int mmio_ioeventfd(void *opaque, int efd, uint64_t addr, uint32_t datamatch, bool assign,
			  struct kerr *err)
{
	struct vm *vm = opaque;

	return kvm_ioeventfd_match(vm->vm_fd, efd, addr, 4, false, datamatch, assign, err);
}

static int mmio_irqfd(void *opaque, int efd, int resample_fd, uint32_t gsi, bool assign,
		      struct kerr *err)
{
	struct vm *vm = opaque;

	return kvm_irqfd_resample(vm->vm_fd, efd, resample_fd, gsi, assign, err);
}

/* The next window of the virtio-mmio area, with its own interrupt. */
static int add_virtio_mmio(struct vm *vm, struct virtio_dev *dev, struct event_loop *loop,
			   struct kerr *err)
{
	struct pci_devices *pd = &vm->pci;
	struct virtio_mmio_platform plat = {
	    .opaque = vm, .ioeventfd = mmio_ioeventfd, .irqfd = mmio_irqfd, .loop = loop};
	uint64_t base = arch_layout.virtio_mmio_base + pd->nr_mmio * arch_layout.virtio_mmio_slot;
	struct virtio_mmio *m;

	pd->devs[pd->nr] = dev;
	if (pd->nr_mmio == arch_layout.virtio_mmio_max)
		return kerr_set(err,
				"%s: at most %d devices fit on virtio-mmio (use transport=pci)",
				dev->name, arch_layout.virtio_mmio_max);
	if (virtio_mmio_create(&m, dev, &plat, base, arch_virtio_mmio_irq(pd->nr_mmio), err))
		return -1;
	pd->mmios[pd->nr++] = m;
	pd->nr_mmio++;
	return io_bus_register(&vm->mmio, base, arch_layout.virtio_mmio_slot, virtio_mmio_io, m,
			       dev->name, err);
}

/* A source on the wired-OR of line irq, which functions in other slots may share. */
static int intx_source(struct vm *vm, unsigned int irq, struct irq_line *line, struct kerr *err)
{
	struct pci_devices *pd = &vm->pci;
	unsigned int i;

	for (i = 0; i < pd->nr_intx && pd->intx[i].irq != irq; i++)
		;
	if (i == pd->nr_intx) {
		if (i == PCI_DEVICES_MAX)
			return kerr_set(err, "PCI: no room for INTx line %u", irq);
		pd->intx[i].irq = irq;
		irq_or_init(&pd->intx[i].line, vm_irq(vm, irq));
		pd->nr_intx++;
	}
	if (irq_or_source(&pd->intx[i].line, line))
		return kerr_set(err, "PCI: too many functions on INTx line %u", irq);
	return 0;
}

static int add_virtio_pci(struct vm *vm, struct virtio_dev *dev, struct event_loop *loop,
			  struct kerr *err)
{
	struct pci_devices *pd = &vm->pci;
	struct virtio_pci_platform plat = {
	    .opaque = vm,
	    .ioeventfd = plat_ioeventfd,
	    .msi_route_add = plat_msi_route_add,
	    .msi_route_set = plat_msi_route_set,
	    .irqfd = plat_irqfd,
	    .loop = loop,
	};
	struct virtio_pci *vp;
	int slot;

	pd->devs[pd->nr] = dev;
	/* The slot decides the INTx pin and the requester ID, so pick it first: the next free
	 * one (bus 0, function 0). */
	slot = (int)pd->nr + 1;
	plat.msi_devid = (uint32_t)slot << 3;
	struct irq_line intx;
	if (intx_source(vm, arch_pci_intx_irq((unsigned int)slot), &intx, err) ||
	    virtio_pci_create(&vp, dev, &plat, intx, err))
		return -1;
	pd->vps[pd->nr++] = vp;
	if (pci_bus_add(&pd->bus, &vp->fn, slot, err) < 0)
		return -1;
	/* Firmware would assign BARs; there is none, so kestrel does, and Linux keeps them. */
	return pci_assign_bars(&vp->fn, &pd->w32, NULL, err);
}

/* loop: the device's own, which its transport polls the queue kicks on. */
static int add_virtio(struct vm *vm, struct virtio_dev *dev, struct event_loop *loop,
		      enum transport_kind t, struct kerr *err)
{
	return t == TRANSPORT_MMIO ? add_virtio_mmio(vm, dev, loop, err)
				   : add_virtio_pci(vm, dev, loop, err);
}

static int add_disks(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		const struct disk_config *dc = &cfg->disks[i];
		struct blk_options o = {
		    .path = dc->path,
		    .readonly = dc->readonly,
		    .direct = dc->direct,
		    .num_queues = dc->num_queues,
		};
		char name[32];
		struct virtio_dev *d;

		snprintf(name, sizeof(name), "vd%c", 'a' + i);
		if (virtio_blk_create(&d, &o, &vm->mem, &vm->loop, name, err))
			return -1;
		if (vm->verbose)
			fprintf(stderr, "kestrel: %s on %s: %s I/O\n", name, dc->path,
				virtio_blk_engine(d));
		if (add_virtio(vm, d, &vm->loop, dc->transport, err))
			return -1;
	}
	return 0;
}

static int add_nics(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	for (unsigned int i = 0; i < cfg->nr_nics; i++) {
		const struct net_config *nc = &cfg->nics[i];
		struct net_options o = {
		    .tap_name = nc->tap,
		    .tap_fd = nc->fd,
		    .mac_set = nc->mac_set,
		    .mtu = nc->mtu,
		    .queues = nc->queues,
		    .vhost = nc->vhost == NET_CHOICE_ON	   ? NET_VHOST_ON
			     : nc->vhost == NET_CHOICE_OFF ? NET_VHOST_OFF
							   : NET_VHOST_AUTO,
		    .index = i,
		    .rx_loop = &vm->net_rx_loop,
		};
		struct virtio_dev *d;

		memcpy(o.mac, nc->mac, sizeof(o.mac));
		/* Their own loop, for its SCHED_BATCH (vmm/event_loop.c says why). */
		if (virtio_net_create(&d, &o, &vm->mem, &vm->net_loop, err))
			return -1;
		vm->pci.nr_nics++;
		/* Users want to know whether their packets go through kestrel or the kernel. */
		fprintf(stderr, "kestrel: net%u on %s: %s\n", i, virtio_net_ifname(d),
			virtio_net_backend(d));
		if (add_virtio(vm, d, &vm->net_loop, nc->transport, err))
			return -1;
	}
	return 0;
}

static int add_console(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	struct console_port_options ports[KESTREL_MAX_PORTS];
	struct virtio_dev *d;

	if (cfg->console != CONSOLE_VIRTIO && cfg->nr_ports == 0)
		return 0;
	for (unsigned int i = 0; i < cfg->nr_ports; i++)
		ports[i] = (struct console_port_options){cfg->ports[i].name, cfg->ports[i].socket};
	/* Port 0 writes to the terminal; input comes through pci_devices_console_input. */
	if (virtio_console_create(&d, -1, STDOUT_FILENO, ports, cfg->nr_ports, &vm->mem, &vm->loop,
				  err))
		return -1;
	vm->pci.console = d;
	return add_virtio(vm, d, &vm->loop, cfg->console_transport, err);
}

int pci_devices_create(struct vm *vm, const struct vm_config *cfg, struct kerr *err)
{
	const struct arch_layout *L = &arch_layout;
	struct pci_devices *pd = &vm->pci;

	memset(pd, 0, sizeof(*pd));
	pd->ioeventfd_any_length =
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	pci_bus_init(&pd->bus);
	pd->bus.reset = pci_reset;
	pd->bus.reset_opaque = vm;
	pci_window_init(&pd->w32, &pd->bus, L->pci_mmio32_base, L->pci_mmio32_size);
	if (irq_router_init(&pd->router, vm->vm_fd, err))
		return -1;
	if (L->pci_cf8 &&
	    (io_bus_register(&vm->pio, PCI_CF8_PORT, PCI_CF8_LEN, pci_cf8_io, &pd->bus, "pci-cf8",
			     err) ||
	     io_bus_register(&vm->pio, PCI_CFC_PORT, PCI_CFC_LEN, pci_cfc_io, &pd->bus, "pci-cfc",
			     err) ||
	     /* CONFIG_ADDRESS: only the CONFIG_DATA access that follows uses it. */
	     coalesced_io_add_pio(&vm->coalesced, vm->vm_fd, PCI_CF8_PORT, PCI_CF8_LEN, err)))
		return -1;
	if (io_bus_register(&vm->mmio, L->pci_ecam_base, L->pci_ecam_size, pci_ecam_io, &pd->bus,
			    "pci-ecam", err) ||
	    io_bus_register(&vm->mmio, L->pci_mmio32_base, L->pci_mmio32_size, pci_window_io,
			    &pd->w32, "pci-mmio32", err))
		return -1;
	if (add_disks(vm, cfg, err) || add_nics(vm, cfg, err) || add_console(vm, cfg, err))
		return -1;
	return 0;
}

void pci_devices_destroy(struct vm *vm)
{
	struct pci_devices *pd = &vm->pci;

	for (unsigned int i = 0; i < pd->nr; i++) {
		struct virtio_dev *d = pd->devs[i];
		if (pd->vps[i])
			virtio_pci_destroy(pd->vps[i]);
		else
			virtio_mmio_destroy(pd->mmios[i]);
		pd->vps[i] = NULL;
		pd->mmios[i] = NULL;
		destroy_device(d);
	}
	for (unsigned int i = 0; i < pd->nr_intx; i++)
		irq_or_destroy(&pd->intx[i].line);
	pd->nr_intx = 0;
	/* A device created but not yet wrapped in a transport. */
	if (pd->nr < PCI_DEVICES_MAX && pd->devs[pd->nr])
		destroy_device(pd->devs[pd->nr]);
	pd->nr = 0;
	pci_bus_destroy(&pd->bus);
}

void pci_devices_console_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;

	virtio_console_input(vm->pci.console, buf, len);
}
