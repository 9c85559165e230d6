#include "vmm/device_report.h"

#include <linux/virtio_ids.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/mmio.h"
#include "virtio/net.h"
#include "virtio/pci.h"
#include "vmm/vm.h"

/* One write per line: seccomp allows write(2) on the main thread, not stdio's lseek. */
static void line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(int fd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(fd, buf, (size_t)n) < 0)
		return; /* stderr is gone: nothing to report to */
}

/* The device's own drops and failures, in its own words. */
static void device_line(int fd, struct virtio_dev *d, const char *bus, uint64_t errors)
{
	switch (d->device_id) {
	case VIRTIO_ID_BLOCK: {
		const struct virtio_blk_stats *s = virtio_blk_stats(d);
		line(fd,
		     "kestrel: stats %s (%s): reads %llu writes %llu flushes %llu "
		     "ioerr %llu unsupp %llu malformed %llu transport-errors %llu",
		     d->name, bus, (unsigned long long)s->reads, (unsigned long long)s->writes,
		     (unsigned long long)s->flushes, (unsigned long long)s->ioerr,
		     (unsigned long long)s->unsupp, (unsigned long long)s->malformed,
		     (unsigned long long)errors);
		break;
	}
	case VIRTIO_ID_NET: {
		const struct virtio_net_stats *s = virtio_net_stats(d);
		line(fd,
		     "kestrel: stats %s (%s, %s): rx-frames %llu rx-drops %llu "
		     "tx-frames %llu tx-drops %llu tx-blocked %llu transport-errors %llu",
		     d->name, bus, virtio_net_backend(d), (unsigned long long)s->rx_frames,
		     (unsigned long long)(s->rx_short + s->rx_too_big + s->rx_no_room +
					  s->rx_errors),
		     (unsigned long long)s->tx_frames,
		     (unsigned long long)(s->tx_malformed + s->tx_errors),
		     (unsigned long long)s->tx_blocked, (unsigned long long)errors);
		break;
	}
	case VIRTIO_ID_CONSOLE: {
		struct virtio_console_stats s;
		virtio_console_get_stats(d, &s);
		line(fd,
		     "kestrel: stats %s (%s): rx-bytes %llu tx-bytes %llu "
		     "input-drops %llu output-discarded %llu control-drops %llu "
		     "transport-errors %llu",
		     d->name, bus, (unsigned long long)s.rx_bytes, (unsigned long long)s.tx_bytes,
		     (unsigned long long)s.input_dropped, (unsigned long long)s.output_discarded,
		     (unsigned long long)s.ctrl_dropped, (unsigned long long)errors);
		break;
	}
	default:
		line(fd, "kestrel: stats %s (%s): transport-errors %llu", d->name, bus,
		     (unsigned long long)errors);
	}
}

void device_report(const struct vm *vm, int fd)
{
	const struct pci_devices *pd = &vm->pci;

	for (unsigned int i = 0; i < pd->nr; i++) {
		struct virtio_dev *d = pd->devs[i];
		struct virtio_transport *t = pd->vps[i] ? &pd->vps[i]->core : &pd->mmios[i]->core;

		device_line(fd, d, pd->vps[i] ? "pci" : "mmio", vt_errors(t));
		for (uint16_t q = 0; q < d->num_queues; q++) {
			const struct virtqueue *vq = &d->vqs[q];
			const struct virtq_stats *s = &vq->stats;
			uint64_t qerr = 0;
			for (int e = 0; e < VIRTQ_ERR__COUNT; e++)
				qerr += vq->errors[e];
			line(fd,
			     "kestrel: stats %s q%u: kicks %llu exit-kicks %llu interrupts %llu "
			     "batches %llu requests %llu bytes-read %llu bytes-written %llu errors "
			     "%llu",
			     d->name, q, (unsigned long long)s->kicks,
			     (unsigned long long)s->exit_kicks, (unsigned long long)s->interrupts,
			     (unsigned long long)s->batches, (unsigned long long)s->requests,
			     (unsigned long long)s->bytes_read,
			     (unsigned long long)s->bytes_written, (unsigned long long)qerr);
		}
	}
}
