/* virtio-net creation on raw fds: features, MACs, option errors, config space and the feature
 * dependency rules. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <unistd.h>

#include "fixture_virtio_net.h"
#include "virtio/net_tap.h"
#include "virtio/net_vhost.h"

TestSuite(net, .init = suite_init, .fini = suite_fini);

/* ---- creation, features, config ---- */

Test(net, features_and_config_on_a_raw_fd)
{
	struct net_options o = opts();
	uint8_t cfg[12], mac[6];
	uint64_t f;

	o.mtu = 9000;
	o.index = 2;
	create_raw(1, &o);
	f = dev->host_features;
	cr_assert_eq(dev->device_id, VIRTIO_ID_NET);
	cr_assert_eq(dev->num_queues, 3);
	cr_assert_eq(dev->config_len, 12);
	for (unsigned int b = 0; b < 64; b++) {
		bool want = b == VIRTIO_NET_F_MAC || b == VIRTIO_NET_F_MTU ||
			    b == VIRTIO_NET_F_STATUS || b == VIRTIO_NET_F_MRG_RXBUF ||
			    b == VIRTIO_RING_F_EVENT_IDX || b == VIRTIO_RING_F_INDIRECT_DESC ||
			    b == VIRTIO_NET_F_CTRL_VQ || b == VIRTIO_NET_F_CTRL_RX ||
			    b == VIRTIO_NET_F_CTRL_MAC_ADDR || b == VIRTIO_NET_F_GUEST_ANNOUNCE ||
			    b == VIRTIO_NET_F_CTRL_GUEST_OFFLOADS;

		/* No offloads on an fd that is not a tap; no MQ with one pair. */
		cr_assert_eq((f >> b) & 1, want, "feature bit %u", b);
	}
	cr_assert_eq(virtio_net_check_features(f | F(VIRTIO_F_VERSION_1), NULL), 0);
	dev->ops->config_read(dev, 0, cfg, sizeof(cfg));
	virtio_net_default_mac(mac, virtio_net_ifname(dev), 2);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert_eq(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
	cr_assert_eq(cfg[8] | cfg[9] << 8, 1);
	cr_assert_eq(cfg[10] | cfg[11] << 8, 9000);
	/* Partial and out-of-range reads. */
	dev->ops->config_read(dev, 10, cfg, 2);
	cr_assert_eq(cfg[0] | cfg[1] << 8, 9000);
	dev->ops->config_read(dev, 12, cfg, 4);
	cr_assert_eq(cfg[0] | cfg[1] | cfg[2] | cfg[3], 0);
	cr_assert_eq(strcmp(virtio_net_backend(dev), "tap"), 0);
}

Test(net, default_mac_is_stable_local_unicast)
{
	uint8_t a[6], b[6], c[6], d[6];

	virtio_net_default_mac(a, "tap0", 0);
	virtio_net_default_mac(b, "tap0", 0);
	virtio_net_default_mac(c, "tap0", 1);
	virtio_net_default_mac(d, "tap1", 0);
	cr_assert_arr_eq(a, b, 6);
	cr_assert_arr_neq(a, c, 6);
	cr_assert_arr_neq(a, d, 6);
	cr_assert(a[0] & 2, "locally administered");
	cr_assert_not(a[0] & 1, "unicast");
}

Test(net, given_mac_and_vhost_auto_fallback)
{
	struct net_options o = opts();
	const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	uint8_t cfg[6];

	memcpy(o.mac, mac, 6);
	o.mac_set = true;
	o.vhost = NET_VHOST_AUTO;
	create_raw(1, &o);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert(strstr(virtio_net_backend(dev), "tap (vhost-net unavailable"), "%s",
		  virtio_net_backend(dev));
}

Test(net, option_errors)
{
	struct net_options o = opts();
	struct kerr err = {.msg = ""};
	int sv[2];

	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "tap=NAME"), "%s", err.msg);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	peer[0] = sv[0];
	peer[1] = sv[1];
	o.tap_fd = sv[1];
	o.queues = 2;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "queues=2 needs tap=NAME"), "%s", err.msg);

	o.queues = 1;
	o.vhost = NET_VHOST_ON;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "vhost=on needs a tap"), "%s", err.msg);

	o.vhost = NET_VHOST_OFF;
	o.mtu = 20;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "mtu=20"), "%s", err.msg);

	o.mtu = 0;
	o.mac_set = true;
	o.mac[0] = 0x01;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "multicast"), "%s", err.msg);

	o = opts();
	o.tap_fd = 1000;
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "fd=1000 is not an open file descriptor"), "%s", err.msg);

	o = opts();
	o.tap_name = "a-name-that-is-far-too-long";
	cr_assert_eq(virtio_net_create(&dev, &o, &gm, &loop, &err), -1);
	cr_assert(strstr(err.msg, "longer than"), "%s", err.msg);
	cr_assert_null(dev);
}

/* ---- feature rules ---- */

Test(net, feature_dependency_rules)
{
	static const struct {
		uint64_t f;
		const char *rule;
	} bad[] = {
	    {F(VIRTIO_NET_F_GUEST_TSO4), "GUEST_TSO4 needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_TSO6), "GUEST_TSO6 needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_UFO), "GUEST_UFO needs GUEST_CSUM"},
	    {F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_ECN), "GUEST_ECN needs"},
	    {F(VIRTIO_NET_F_HOST_TSO4), "HOST_TSO4 needs CSUM"},
	    {F(VIRTIO_NET_F_HOST_TSO6), "HOST_TSO6 needs CSUM"},
	    {F(VIRTIO_NET_F_HOST_UFO), "HOST_UFO needs CSUM"},
	    {F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_ECN), "HOST_ECN needs"},
	    {F(VIRTIO_NET_F_CTRL_RX), "CTRL_RX needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_MQ), "MQ needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_GUEST_ANNOUNCE), "GUEST_ANNOUNCE needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_CTRL_MAC_ADDR), "CTRL_MAC_ADDR needs CTRL_VQ"},
	    {F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS), "CTRL_GUEST_OFFLOADS needs CTRL_VQ"},
	};
	const uint64_t good =
	    F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_ECN) |
	    F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |
	    F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_MQ);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		cr_assert_eq(virtio_net_check_features(bad[i].f, &why), -1, "case %zu", i);
		cr_assert(why && strstr(why, bad[i].rule), "case %zu: %s", i, why);
	}
	cr_assert_eq(virtio_net_check_features(good, NULL), 0);
	cr_assert_eq(virtio_net_check_features(0, NULL), 0);
}

Test(net, activate_refuses_broken_feature_set)
{
	struct net_options o = opts();

	create_raw(1, &o);
	/* CTRL_RX without CTRL_VQ: the device fails DRIVER_OK (the transport sets NEEDS_RESET). */
	cr_assert_eq(bring_up(F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_CTRL_RX)), -1);
	cr_assert_eq(virtio_net_stats(dev)->feature_errors, 1);
	cr_assert_eq(pending_device_events(~0U), 0);
	dev->ops->reset(dev);
	cr_assert_eq(bring_up(all_features()), 0);
}
