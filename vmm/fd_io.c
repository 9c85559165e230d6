#include "vmm/fd_io.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

int fd_read_full(int fd, void *buf, size_t n)
{
	for (uint8_t *p = buf; n;) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int fd_write_full(int fd, const void *buf, size_t n)
{
	for (const uint8_t *p = buf; n;) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
