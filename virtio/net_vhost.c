#include "virtio/net_vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void net_vhost_close(struct net_vhost *v)
{
	for (unsigned int i = 0; i < v->nr_fds; i++)
		if (v->fds[i] >= 0)
			close(v->fds[i]);
	v->nr_fds = 0;
}

int net_vhost_open(struct net_vhost *v, unsigned int pairs, struct kerr *err)
{
	memset(v, 0, sizeof(*v));
	if (pairs == 0 || pairs > NET_TAP_MAX_QUEUES)
		return kerr_set(err, "bad queue pair count %u", pairs);
	for (unsigned int i = 0; i < pairs; i++) {
		uint64_t f = 0;
		int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);

		if (fd < 0) {
			kerr_set(err, "%s", strerror(errno));
			goto fail;
		}
		v->fds[v->nr_fds++] = fd;
		/* The kernel worker that serves the rings runs on behalf of this process. */
		if (ioctl(fd, VHOST_SET_OWNER) < 0) {
			kerr_set(err, "VHOST_SET_OWNER: %s", strerror(errno));
			goto fail;
		}
		if (ioctl(fd, VHOST_GET_FEATURES, &f) < 0) {
			kerr_set(err, "VHOST_GET_FEATURES: %s", strerror(errno));
			goto fail;
		}
		v->features = i ? (v->features & f) : f;
	}
	if (!(v->features & (1ULL << VIRTIO_F_VERSION_1))) {
		kerr_set(err, "the kernel's vhost-net does not support VIRTIO_F_VERSION_1");
		goto fail;
	}
	return 0;
fail:
	net_vhost_close(v);
	return -1;
}

uint64_t net_vhost_features(uint64_t guest_features, uint64_t vhost_features)
{
	return guest_features & vhost_features & ~(1ULL << VHOST_NET_F_VIRTIO_NET_HDR);
}

struct vhost_memory *net_vhost_mem_table(const struct guest_mem *mem)
{
	struct vhost_memory *m;
	int n = mem->nr_regions;

	if (n <= 0 || n > GUEST_MEM_MAX_REGIONS)
		return NULL;
	m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->regions[0]));
	if (!m)
		return NULL;
	m->nregions = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		m->regions[i].guest_phys_addr = mem->regions[i].gpa;
		m->regions[i].memory_size = mem->regions[i].size;
		m->regions[i].userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host;
	}
	return m;
}

void net_vhost_vring_addr(struct vhost_vring_addr *a, unsigned int index,
			  const struct virtqueue *vq)
{
	memset(a, 0, sizeof(*a));
	a->index = index;
	a->flags = 0; /* no dirty logging: kestrel does not migrate */
	a->desc_user_addr = (uint64_t)(uintptr_t)vq->desc;
	a->avail_user_addr = (uint64_t)(uintptr_t)vq->avail;
	a->used_user_addr = (uint64_t)(uintptr_t)vq->used;
}

int net_vhost_setup(struct net_vhost *v, unsigned int pair, uint64_t features,
		    const struct vhost_memory *mem, struct kerr *err)
{
	int fd = v->fds[pair];

	if (ioctl(fd, VHOST_SET_FEATURES, &features) < 0)
		return kerr_set(err, "VHOST_SET_FEATURES: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_MEM_TABLE, mem) < 0)
		return kerr_set(err, "VHOST_SET_MEM_TABLE: %s", strerror(errno));
	return 0;
}

int net_vhost_start_vring(struct net_vhost *v, unsigned int pair, const struct net_vhost_vring *r,
			  struct kerr *err)
{
	struct vhost_vring_state num = {.index = r->index, .num = r->num};
	struct vhost_vring_state base = {.index = r->index, .num = r->base};
	struct vhost_vring_file kick = {.index = r->index, .fd = r->kick_fd};
	struct vhost_vring_file call = {.index = r->index, .fd = r->call_fd};
	int fd = v->fds[pair];

	if (ioctl(fd, VHOST_SET_VRING_NUM, &num) < 0)
		return kerr_set(err, "VHOST_SET_VRING_NUM: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_VRING_BASE, &base) < 0)
		return kerr_set(err, "VHOST_SET_VRING_BASE: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_VRING_ADDR, &r->addr) < 0)
		return kerr_set(err, "VHOST_SET_VRING_ADDR: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_VRING_CALL, &call) < 0)
		return kerr_set(err, "VHOST_SET_VRING_CALL: %s", strerror(errno));
	if (ioctl(fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return kerr_set(err, "VHOST_SET_VRING_KICK: %s", strerror(errno));
	return 0;
}

int net_vhost_set_call(struct net_vhost *v, unsigned int pair, unsigned int index, int fd)
{
	struct vhost_vring_file call = {.index = index, .fd = fd};

	return ioctl(v->fds[pair], VHOST_SET_VRING_CALL, &call) < 0 ? -1 : 0;
}

int net_vhost_set_backend(struct net_vhost *v, unsigned int pair, int tap_fd, struct kerr *err)
{
	for (unsigned int i = 0; i < 2; i++) {
		struct vhost_vring_file b = {.index = i, .fd = tap_fd};

		if (ioctl(v->fds[pair], VHOST_NET_SET_BACKEND, &b) < 0)
			return kerr_set(err, "VHOST_NET_SET_BACKEND: %s", strerror(errno));
	}
	return 0;
}

int net_vhost_stop_vring(struct net_vhost *v, unsigned int pair, unsigned int index, uint16_t *base)
{
	struct vhost_vring_state st = {.index = index};
	struct vhost_vring_file unbind = {.index = index, .fd = VHOST_FILE_UNBIND};
	int fd = v->fds[pair], rc = 0;

	if (ioctl(fd, VHOST_GET_VRING_BASE, &st) < 0)
		rc = -1;
	else
		*base = (uint16_t)st.num;
	if (ioctl(fd, VHOST_SET_VRING_KICK, &unbind) < 0)
		rc = -1;
	if (ioctl(fd, VHOST_SET_VRING_CALL, &unbind) < 0)
		rc = -1;
	return rc;
}
