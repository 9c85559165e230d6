/* virtio-net control queue: rx mode, MAC tables and address, announce, guest offloads, bad
 * commands. */
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

/* ---- control queue ---- */

Test(net, ctrl_rx_mode)
{
	struct virtio_net_info info;
	uint8_t off = 0, on = 1, two[2] = {1, 1};

	start(0);
	virtio_net_get_info(dev, &info);
	cr_assert(info.promisc, "promiscuous by default");
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), VIRTIO_NET_OK);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_not(info.promisc);
	cr_assert(info.allmulti);
	/* Wrong length, CTRL_RX_EXTRA commands (not offered). */
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, two, 2), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, NULL, 0), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1), VIRTIO_NET_ERR);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_ok, 2);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_err, 3);
}

static size_t mac_tables(uint8_t *buf, uint32_t uc, uint32_t uc_claim, uint32_t mc,
			 uint32_t mc_claim)
{
	size_t off = 0;
	uint32_t v = htole32(uc_claim);

	memcpy(buf + off, &v, 4);
	off += 4;
	for (uint32_t i = 0; i < uc; i++, off += 6)
		memcpy(buf + off, (uint8_t[6]){0x02, 0, 0, 0, 0, (uint8_t)i}, 6);
	v = htole32(mc_claim);
	memcpy(buf + off, &v, 4);
	off += 4;
	for (uint32_t i = 0; i < mc; i++, off += 6)
		memcpy(buf + off, (uint8_t[6]){0x01, 0, 0x5e, 0, 0, (uint8_t)i}, 6);
	return off;
}

Test(net, ctrl_mac_table)
{
	static uint8_t buf[8 + 100 * 6];
	struct virtio_net_info info;
	size_t len;

	start(0);
	len = mac_tables(buf, 1, 1, 2, 2);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.uc_entries, 1);
	cr_assert_eq(info.mc_entries, 2);
	/* Counts larger than the data, trailing bytes, a missing second table: ERR, kept. */
	len = mac_tables(buf, 1, 5, 0, 0);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_ERR);
	len = mac_tables(buf, 0, 0, 1, 0xffffffffu);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_ERR);
	len = mac_tables(buf, 0, 0, 1, 1);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len + 1),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, 4),
		     VIRTIO_NET_ERR);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.uc_entries, 1);
	cr_assert_eq(info.mc_entries, 2);
	/* More entries than we keep: accepted, overflow flagged. */
	len = mac_tables(buf, 0, 0, 90, 90);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, len),
		     VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.mc_entries, VIRTIO_NET_MAC_TABLE_MAX);
	cr_assert(info.mc_overflow);
	cr_assert_eq(info.uc_entries, 0);
}

Test(net, ctrl_mac_addr_set)
{
	const uint8_t mac[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
	uint8_t cfg[6], orig[6];

	start(0);
	dev->ops->config_read(dev, 0, orig, 6);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6),
		     VIRTIO_NET_OK);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 5),
		     VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MAC, 7, mac, 6), VIRTIO_NET_ERR);
	/* With CTRL_MAC_ADDR, config writes are ignored. */
	dev->ops->config_write(dev, 0, orig, 6);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, mac, 6);
	/* Reset restores the configured MAC. */
	dev->ops->reset(dev);
	dev->ops->config_read(dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, orig, 6);
}

Test(net, ctrl_announce_ack)
{
	uint8_t cfg[2];

	start(0);
	virtio_net_announce(dev);
	cr_assert_eq(config_signals, 1);
	dev->ops->config_read(dev, 6, cfg, 2);
	cr_assert_eq(cfg[0], VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
		     VIRTIO_NET_OK);
	dev->ops->config_read(dev, 6, cfg, 2);
	cr_assert_eq(cfg[0], VIRTIO_NET_S_LINK_UP);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_ANNOUNCE, 1, NULL, 0), VIRTIO_NET_ERR);
}

Test(net, ctrl_unknown_short_and_statusless)
{
	uint16_t cq;
	struct fx_seg one, noack[2];
	uint8_t x = 0;

	start(0);
	cq = (uint16_t)(dev->num_queues - 1);
	cr_assert_eq(ctrl(99, 0, NULL, 0), VIRTIO_NET_ERR);
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &x, 1), VIRTIO_NET_ERR);
	/* MQ not offered with one pair. */
	cr_assert_eq(ctrl(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\1\0", 2),
		     VIRTIO_NET_ERR);
	/* A one-byte message: no room for class and command. */
	one = (struct fx_seg){alloc_buf(1), 1, false};
	{
		struct fx_seg s[2] = {one, {alloc_buf(1), 1, true}};

		*host(s[1].gpa) = 0xee;
		add_chain(cq, s, 2);
		dev->ops->queue_notify(dev, cq);
		cr_assert_eq(take_used(cq)->len, 1);
		cr_assert_eq(*host(s[1].gpa), VIRTIO_NET_ERR);
	}
	/* No writable byte: nowhere to answer; completed with len 0 and counted. */
	noack[0] = (struct fx_seg){alloc_buf(2), 2, false};
	noack[1] = (struct fx_seg){alloc_buf(1), 1, false};
	add_chain(cq, noack, 2);
	dev->ops->queue_notify(dev, cq);
	cr_assert_eq(take_used(cq)->len, 0);
	cr_assert_eq(virtio_net_stats(dev)->ctrl_malformed, 1);
	cr_assert_eq(needs_resets, 0);
}

Test(net, ctrl_guest_offloads)
{
	struct net_options o = opts();
	struct virtio_net_info info;
	uint64_t v;

	create_raw(1, &o);
	/* A raw fd offers no offloads; pretend the driver got GUEST_CSUM + GUEST_TSO4. */
	cr_assert_eq(
	    bring_up(all_features() | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4)), 0);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	v = htole64(F(VIRTIO_NET_F_GUEST_CSUM));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM));
	/* Not negotiated, or not an offload bit at all. */
	v = htole64(F(VIRTIO_NET_F_GUEST_TSO6));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_ERR);
	v = htole64(F(VIRTIO_NET_F_MAC));
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_ERR);
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 4),
	    VIRTIO_NET_ERR);
	v = 0;
	cr_assert_eq(
	    ctrl(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &v, 8),
	    VIRTIO_NET_OK);
	virtio_net_get_info(dev, &info);
	cr_assert_eq(info.guest_offloads, 0);
}
