/* virtio-net backends: a real multiqueue tap when the host allows one, vhost argument builders,
 * vhost=on/auto. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture_virtio_net.h"
#include "virtio/net_tap.h"
#include "virtio/net_vhost.h"

TestSuite(net, .init = suite_init, .fini = suite_fini);

/* ---- a real tap, when this host lets us make one ---- */

Test(net, real_multiqueue_tap)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};
	struct virtio_net_info info;
	uint16_t k = htole16(2);

	o.tap_name = "kntest%d";
	o.queues = 2;
	if (virtio_net_create(&dev, &o, &gm, &loop, &err) < 0) {
		cr_assert(strstr(err.msg, "CAP_NET_ADMIN") || strstr(err.msg, "modprobe tun") ||
			      strstr(err.msg, "/dev/net/tun"),
			  "%s", err.msg);
		cr_skip_test("no tap here: %s", err.msg);
	}
	dev->transport = &fake_transport;
	cr_assert(strncmp(virtio_net_ifname(dev), "kntest", 6) == 0);
	/* A vnet-header tap takes partial checksums and TSO from us. */
	cr_assert(dev->host_features & F(VIRTIO_NET_F_CSUM));
	cr_assert(dev->host_features & F(VIRTIO_NET_F_HOST_TSO4));
	cr_assert(dev->host_features & F(VIRTIO_NET_F_MQ));
	cr_assert_eq(virtio_net_check_features(all_features(), NULL), 0);
	cr_assert_eq(bring_up(all_features()), 0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	k = htole16(1);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.curr_pairs, 1);
	cr_assert_eq(info.hdr_len, 12);
}

/* Every queue's send buffer is unlimited (QEMU's setting), not wmem_default. */
Test(net, tap_send_buffer_is_unlimited)
{
	struct net_tap t;
	struct kerr err = {.msg = ""};

	if (net_tap_open(&t, "kntest%d", 2, &err) < 0)
		cr_skip_test("no tap here: %s", err.msg);
	for (unsigned int i = 0; i < t.nr_fds; i++) {
		int sndbuf = 0;

		cr_assert_eq(ioctl(t.fds[i], TUNGETSNDBUF, &sndbuf), 0, "%s", strerror(errno));
		cr_expect_eq(sndbuf, INT_MAX, "queue %u: sndbuf %d", i, sndbuf);
	}
	net_tap_close(&t);
}

/* ---- vhost argument builders (no /dev/vhost-net needed) ---- */

Test(net, vhost_memory_table_from_regions)
{
	struct guest_mem two = {
	    .regions = {{0, 0xc0000000, (uint8_t *)0x7f0000000000},
			{0x100000000ULL, 0x40000000, (uint8_t *)0x7f1000000000}},
	    .nr_regions = 2,
	};
	struct vhost_memory *m = net_vhost_mem_table(&two);

	cr_assert_not_null(m);
	cr_assert_eq(m->nregions, 2);
	cr_assert_eq(m->regions[0].guest_phys_addr, 0);
	cr_assert_eq(m->regions[0].memory_size, 0xc0000000);
	cr_assert_eq(m->regions[0].userspace_addr, 0x7f0000000000ULL);
	cr_assert_eq(m->regions[1].guest_phys_addr, 0x100000000ULL);
	cr_assert_eq(m->regions[1].memory_size, 0x40000000);
	cr_assert_eq(m->regions[1].userspace_addr, 0x7f1000000000ULL);
	cr_assert_eq(m->regions[1].flags_padding, 0);
	free(m);
	two.nr_regions = 0;
	cr_assert_null(net_vhost_mem_table(&two));
}

Test(net, vhost_vring_addr_and_features)
{
	struct virtqueue vq = {0};
	struct vhost_vring_addr a;
	uint64_t vf = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
		      F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC) |
		      F(VHOST_NET_F_VIRTIO_NET_HDR) | F(VIRTIO_F_ANY_LAYOUT);
	uint64_t g = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
		     F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_CTRL_VQ);

	cr_assert_eq(virtq_setup(&vq, &gm, 256, desc_gpa(0), avail_gpa(0), used_gpa(0), 0, NULL),
		     0);
	net_vhost_vring_addr(&a, 1, &vq);
	cr_assert_eq(a.index, 1);
	cr_assert_eq(a.flags, 0);
	cr_assert_eq(a.desc_user_addr, (uint64_t)(uintptr_t)host(desc_gpa(0)));
	cr_assert_eq(a.avail_user_addr, (uint64_t)(uintptr_t)host(avail_gpa(0)));
	cr_assert_eq(a.used_user_addr, (uint64_t)(uintptr_t)host(used_gpa(0)));
	cr_assert_eq(a.log_guest_addr, 0);
	/* Only what both know, and never VHOST_NET_F_VIRTIO_NET_HDR (the tap has the header). */
	cr_assert_eq(net_vhost_features(g | F(VHOST_NET_F_VIRTIO_NET_HDR), vf),
		     F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) |
			 F(VIRTIO_RING_F_EVENT_IDX));
}

Test(net, tap_offload_flags_from_features)
{
	cr_assert_eq(net_tap_offload_flags(0), 0);
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_TSO4)), 0,
		     "TSO without checksum offload means nothing to the tap");
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_CSUM)), TUN_F_CSUM);
	cr_assert_eq(net_tap_offload_flags(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
					   F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |
					   F(VIRTIO_NET_F_GUEST_UFO)),
		     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO);
}

Test(net, vhost_on_without_vhost_net_is_an_error_auto_falls_back)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};

	if (access("/dev/vhost-net", F_OK) == 0)
		cr_skip_test("/dev/vhost-net exists here");
	o.tap_name = "kntest%d";
	o.vhost = NET_VHOST_ON;
	if (virtio_net_create(&dev, &o, &gm, &loop, &err) < 0 && !strstr(err.msg, "vhost"))
		cr_skip_test("no tap here: %s", err.msg);
	cr_assert_null(dev);
	cr_assert(strstr(err.msg, "vhost=on but /dev/vhost-net cannot be opened: ") &&
		      strstr(err.msg, "(modprobe vhost_net, or use vhost=off)"),
		  "%s", err.msg);
	o.vhost = NET_VHOST_AUTO;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), 0, "%s", err.msg);
	cr_assert(strstr(virtio_net_backend(dev), "tap (vhost-net unavailable: "), "%s",
		  virtio_net_backend(dev));
}
