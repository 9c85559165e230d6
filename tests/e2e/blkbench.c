#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
/*
 * blkbench: a tiny block benchmark run inside guests (fio is not in the busybox guest).
 *   blkbench seq DEV            sequential O_DIRECT read of the whole device, 1 MiB requests
 *   blkbench rand DEV QD SECS   4 KiB O_DIRECT random reads from QD threads for SECS seconds
 * Prints one line "seq MiB/s=N" or "rand iops=N qd=N". Built static so it runs in any guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t dev_size(int fd)
{
	uint64_t sz = 0;

	if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
		off_t end = lseek(fd, 0, SEEK_END);
		sz = end > 0 ? (uint64_t)end : 0;
	}
	return sz;
}

static int seq(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_DIRECT);
	size_t bs = 1 << 20;
	uint64_t total = 0;
	void *buf;
	double t0;

	if (fd < 0 || posix_memalign(&buf, 4096, bs)) {
		perror(dev);
		return 1;
	}
	t0 = now();
	for (;;) {
		ssize_t n = read(fd, buf, bs);
		if (n < 0) {
			perror("read");
			return 1;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	printf("seq MiB/s=%.1f bytes=%llu\n", (double)total / (1 << 20) / (now() - t0),
	       (unsigned long long)total);
	return 0;
}

struct worker {
	int fd;
	uint64_t blocks;
	double end;
	uint64_t ios;
	unsigned int seed;
};

static void *rand_worker(void *arg)
{
	struct worker *w = arg;
	void *buf;

	if (posix_memalign(&buf, 4096, 4096))
		return NULL;
	while (now() < w->end) {
		for (int i = 0; i < 64; i++) {
			uint64_t blk =
			    ((uint64_t)rand_r(&w->seed) << 16 ^ (uint64_t)rand_r(&w->seed)) %
			    w->blocks;
			if (pread(w->fd, buf, 4096, (off_t)(blk * 4096)) != 4096) {
				perror("pread");
				return NULL;
			}
			w->ios++;
		}
	}
	free(buf);
	return NULL;
}

static int rnd(const char *dev, int qd, int secs)
{
	int fd = open(dev, O_RDONLY | O_DIRECT);
	struct worker *w = calloc((size_t)qd, sizeof(*w));
	pthread_t *t = calloc((size_t)qd, sizeof(*t));
	uint64_t total = 0;
	double t0, end;

	if (fd < 0 || !w || !t) {
		perror(dev);
		return 1;
	}
	t0 = now();
	end = t0 + secs;
	for (int i = 0; i < qd; i++) {
		w[i] = (struct worker){fd, dev_size(fd) / 4096, end, 0, (unsigned int)i * 7919 + 1};
		if (pthread_create(&t[i], NULL, rand_worker, &w[i]))
			return 1;
	}
	for (int i = 0; i < qd; i++) {
		pthread_join(t[i], NULL);
		total += w[i].ios;
	}
	printf("rand iops=%.0f qd=%d\n", (double)total / (now() - t0), qd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "seq"))
		return seq(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "rand"))
		return rnd(argv[2], atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: blkbench seq DEV | blkbench rand DEV QD SECS\n");
	return 2;
}
