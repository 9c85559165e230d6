#include "vmm/guest_fill.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vmm/seccomp.h"

/*
 * A background step copies STEP bytes, then looks for faults again: the longest a faulting
 * thread waits for the filler to notice it. A fault is served with the FAULT_CHUNK around
 * it (the guest reads code and data in runs).
 */
#define STEP (256u << 10)
#define FAULT_CHUNK (64u << 10)
#define MAX_RETRIES 64

/* A run of file data and where it goes; both page-aligned. */
struct fill_run {
	uint8_t *dst;
	const uint8_t *src;
	uint64_t len;
};

/* A registered range and the read-only mapping of its file bytes. */
struct fill_range {
	uint8_t *dst;
	uint64_t len;
	void *map;
};

/*
 * lock guards the thread's state as seen from outside (started, sandboxed, finished, the
 * counters); the runs and ranges are only changed before the thread sees them or by it.
 * It is a leaf lock: nothing else is taken while it is held.
 */
struct guest_fill {
	int uffd;
	uint64_t pg;
	struct fill_run *runs;
	size_t nr_runs, cap_runs, next_run; /* the sweep's position: run, bytes into it */
	uint64_t run_off;
	struct fill_range *ranges;
	size_t nr_ranges, cap_ranges;
	bool broken; /* no more ranges are taken */
	char why[96];

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool started, sandboxed, finished, failed;
	atomic_bool want_sandbox, sealed, stop, hold;

	/* counters, for the note (bytes is read while the thread runs) */
	_Atomic uint64_t bytes;
	uint64_t faults, zero_pages;
	double t_start, t_end;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct guest_fill *guest_fill_new(void)
{
	struct guest_fill *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->uffd = -1;
	f->pg = (uint64_t)sysconf(_SC_PAGESIZE);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->changed, NULL);
	return f;
}

static bool refuse(struct guest_fill *f, const char *why, int e)
{
	if (!f->why[0])
		snprintf(f->why, sizeof(f->why), "%s%s%s", why, e ? ": " : "",
			 e ? strerror(e) : "");
	return false;
}

static int open_uffd(struct guest_fill *f)
{
	struct uffdio_api api = {.api = UFFD_API};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return refuse(f, "userfaultfd", errno), -1;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		refuse(f, "UFFDIO_API", errno);
		close(fd);
		return -1;
	}
	f->uffd = fd;
	return 0;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap * 2 : 16;
	void *p;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	p = realloc(*arr, n * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = n;
	return true;
}

/*
 * Appends the data runs of [dst, dst+len) (page-aligned; its bytes at src, mapped from fd at
 * off), found with SEEK_DATA/SEEK_HOLE and widened to whole pages. False without memory.
 */
static bool add_runs(struct guest_fill *f, uint8_t *dst, const uint8_t *src, uint64_t len, int fd,
		     uint64_t off)
{
	for (uint64_t at = 0; at < len;) {
		off_t d = lseek(fd, (off_t)(off + at), SEEK_DATA), h;
		uint64_t data = at, end = len;

		if (d < 0 && errno == ENXIO)
			break; /* holes to the end */
		if (d >= 0) {
			data = (uint64_t)d - off < len ? (uint64_t)d - off : len;
			h = lseek(fd, d, SEEK_HOLE);
			if (h > d && (uint64_t)h - off < len)
				end = (uint64_t)h - off;
		}
		data &= ~(f->pg - 1);
		end = (end + f->pg - 1) & ~(f->pg - 1);
		end = end < len ? end : len;
		if (data < end) {
			if (!grow((void **)&f->runs, &f->cap_runs, f->nr_runs + 1,
				  sizeof(*f->runs)))
				return false;
			f->runs[f->nr_runs++] = (struct fill_run){
			    .dst = dst + data, .src = src + data, .len = end - data};
		}
		at = end > at ? end : len;
	}
	return true;
}

static void *fill_thread(void *opaque);

static void unregister(struct guest_fill *f, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct uffdio_range r = {.start = (uintptr_t)f->runs[i].dst, .len = f->runs[i].len};

		ioctl(f->uffd, UFFDIO_UNREGISTER, &r);
	}
}

bool guest_fill_take(struct guest_fill *f, uint8_t *dst, uint64_t len, int fd, uint64_t off,
		     uint64_t *head, uint64_t *tail)
{
	uint64_t pg = f->pg, a = ((uintptr_t)dst + pg - 1) & ~(pg - 1);
	uint64_t b = ((uintptr_t)dst + len) & ~(pg - 1);
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};
	size_t first_run = f->nr_runs;
	uint8_t *start = (uint8_t *)(uintptr_t)a;
	void *map;

	if (f->broken)
		return false;
	if ((uintptr_t)dst % pg != off % pg)
		return refuse(f, "file offset and address differ modulo the page size", 0);
	if (b <= a || len > UINT64_MAX - (uintptr_t)dst)
		return false; /* not a whole page: not worth a thread */
	if (f->uffd < 0 && open_uffd(f) < 0)
		return f->broken = true, false;
	map = mmap(NULL, b - a, PROT_READ, MAP_PRIVATE, fd, (off_t)(off + (a - (uintptr_t)dst)));
	if (map == MAP_FAILED)
		return refuse(f, "mmap", errno);
	/* The thread reads the runs under the lock: they may move here (realloc). */
	pthread_mutex_lock(&f->lock);
	if (!grow((void **)&f->ranges, &f->cap_ranges, f->nr_ranges + 1, sizeof(*f->ranges)) ||
	    !add_runs(f, start, map, b - a, fd, off + (a - (uintptr_t)dst))) {
		f->nr_runs = first_run;
		pthread_mutex_unlock(&f->lock);
		munmap(map, b - a);
		return refuse(f, "out of memory", 0);
	}
	pthread_mutex_unlock(&f->lock);
	/*
	 * Only the data runs are registered: a hole page is never a fault to serve (the kernel
	 * touches hundreds of them early), just zero-filled RAM, as without the filler.
	 */
	for (size_t i = first_run; i < f->nr_runs; i++) {
		reg.range.start = (uintptr_t)f->runs[i].dst;
		reg.range.len = f->runs[i].len;
		if (ioctl(f->uffd, UFFDIO_REGISTER, &reg) < 0) {
			int e = errno;

			unregister(f, first_run, i);
			pthread_mutex_lock(&f->lock);
			f->nr_runs = first_run;
			pthread_mutex_unlock(&f->lock);
			munmap(map, b - a);
			f->broken = true;
			return refuse(f, "UFFDIO_REGISTER", e);
		}
	}
	f->ranges[f->nr_ranges++] = (struct fill_range){.dst = start, .len = b - a, .map = map};
	/*
	 * The thread starts with the first range, so that anyone touching one (kestrel's own
	 * loader included) is always served. Later ranges are added before the guest runs,
	 * while the thread may be sweeping; it ends only once sealed (guest_fill_sandbox).
	 */
	if (!f->started) {
		f->t_start = now_ms();
		if (pthread_create(&f->thread, NULL, fill_thread, f)) {
			unregister(f, first_run, f->nr_runs);
			f->nr_ranges--; /* no thread: no lock needed */
			f->nr_runs = first_run;
			munmap(map, b - a);
			f->broken = true;
			return refuse(f, "pthread_create", 0);
		}
		f->started = true;
	}
	*head = a - (uintptr_t)dst;
	*tail = (uintptr_t)dst + len - b;
	return true;
}

/* Fills [dst, dst+len) from src, skipping pages already present. 0, or -1 (errno). */
static int copy_in(struct guest_fill *f, uint8_t *dst, const uint8_t *src, uint64_t len)
{
	int retries = 0;

	while (len) {
		struct uffdio_copy c = {.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len};
		uint64_t done;

		if (ioctl(f->uffd, UFFDIO_COPY, &c) == 0) {
			done = len;
			f->bytes += done;
		} else if (c.copy > 0) { /* partly: -EAGAIN */
			done = (uint64_t)c.copy;
			f->bytes += done;
		} else if (errno == EEXIST) {
			done = f->pg; /* someone wrote that page first: it stays theirs */
		} else if (errno == EAGAIN && retries++ < MAX_RETRIES) {
			continue;
		} else {
			return -1;
		}
		dst += done;
		src += done;
		len -= done;
	}
	return 0;
}

/* The file pages were mapped to be copied: drop them from kestrel's RSS (not the cache). */
static void drop_src(struct guest_fill *f, const uint8_t *src, uint64_t len)
{
	uintptr_t a = (uintptr_t)src & ~(f->pg - 1);

	madvise((void *)a, (uintptr_t)src + len - a, MADV_DONTNEED);
}

/* Serves a fault at addr: its chunk of file data, or a zero page in a hole. */
static int serve(struct guest_fill *f, uint64_t addr)
{
	uint64_t page = addr & ~(f->pg - 1);
	struct uffdio_range wake = {.start = page, .len = f->pg};
	struct fill_run r = {0};
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nr_runs; i++)
		if (page >= (uintptr_t)f->runs[i].dst &&
		    page - (uintptr_t)f->runs[i].dst < f->runs[i].len) {
			r = f->runs[i];
			break;
		}
	f->faults++;
	pthread_mutex_unlock(&f->lock);
	if (r.len) {
		uint64_t from = page & ~(uint64_t)(FAULT_CHUNK - 1), to;

		from = from > (uintptr_t)r.dst ? from : (uintptr_t)r.dst;
		to = from + FAULT_CHUNK < (uintptr_t)r.dst + r.len ? from + FAULT_CHUNK
								   : (uintptr_t)r.dst + r.len;
		ret = copy_in(f, (uint8_t *)(uintptr_t)from, r.src + (from - (uintptr_t)r.dst),
			      to - from);
		drop_src(f, r.src + (from - (uintptr_t)r.dst), to - from);
	} else {
		struct uffdio_zeropage z = {.range = wake};

		if (ioctl(f->uffd, UFFDIO_ZEROPAGE, &z) < 0 && errno != EEXIST)
			ret = -1;
		f->zero_pages++;
	}
	/* Present already (the sweep got there first): the toucher still waits for a wake. */
	ioctl(f->uffd, UFFDIO_WAKE, &wake);
	return ret;
}

static int serve_faults(struct guest_fill *f)
{
	struct uffd_msg msgs[16];
	ssize_t n;

	while ((n = read(f->uffd, msgs, sizeof(msgs))) > 0)
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
			    serve(f, msgs[i].arg.pagefault.address) < 0)
				return -1;
	return 0;
}

/* One background step: 1 copied something, 0 nothing left (for now), -1 failed. */
static int sweep_step(struct guest_fill *f)
{
	struct fill_run r;
	uint64_t at, n;

	pthread_mutex_lock(&f->lock);
	while (f->next_run < f->nr_runs && f->run_off >= f->runs[f->next_run].len) {
		f->next_run++;
		f->run_off = 0;
	}
	if (f->next_run == f->nr_runs) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	r = f->runs[f->next_run];
	at = f->run_off;
	n = r.len - at < STEP ? r.len - at : STEP;
	f->run_off += n;
	pthread_mutex_unlock(&f->lock);
	if (copy_in(f, r.dst + at, r.src + at, n) < 0)
		return -1;
	drop_src(f, r.src + at, n);
	return 1;
}

/*
 * Unregistering wakes whoever still waits on a range; they fault again as on any RAM. Then
 * the ranges get huge pages back: what UFFDIO_COPY fills is in 4 KiB pages, which KVM would
 * map one by one.
 */
static void finish(struct guest_fill *f)
{
	const uint64_t huge = 2ULL << 20;

	serve_faults(f);
	unregister(f, 0, f->nr_runs);
	close(f->uffd);
	f->uffd = -1;
	for (size_t i = 0; i < f->nr_ranges; i++) {
		uintptr_t a = ((uintptr_t)f->ranges[i].dst + huge - 1) & ~(huge - 1);
		uintptr_t b = ((uintptr_t)f->ranges[i].dst + f->ranges[i].len) & ~(huge - 1);

		munmap(f->ranges[i].map, f->ranges[i].len);
		if (b > a && !getenv("KESTREL_FILL_NO_COLLAPSE"))
			madvise((void *)a, b - a, 25 /* MADV_COLLAPSE */);
	}
	pthread_mutex_lock(&f->lock);
	f->finished = true;
	f->t_end = now_ms();
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
}

static void *fill_thread(void *opaque)
{
	struct guest_fill *f = opaque;
	bool sandboxed = false;

	while (!atomic_load(&f->stop)) {
		int step;

		if (!sandboxed && atomic_load(&f->want_sandbox)) {
			sandbox_enter(SANDBOX_FILL); /* on failure the VM is ending anyway */
			sandboxed = true;
			pthread_mutex_lock(&f->lock);
			f->sandboxed = true;
			pthread_cond_broadcast(&f->changed);
			pthread_mutex_unlock(&f->lock);
		}
		step = serve_faults(f) < 0 ? -1 : atomic_load(&f->hold) ? 0 : sweep_step(f);
		if (step < 0) {
			f->failed = true;
			break;
		}
		if (step == 0) {
			struct pollfd p = {.fd = f->uffd, .events = POLLIN};

			if (atomic_load(&f->sealed) && !atomic_load(&f->hold))
				break;
			poll(&p, 1, 5); /* more ranges may come until sealed */
		}
	}
	finish(f);
	return NULL;
}

void guest_fill_sandbox(struct guest_fill *f)
{
	if (!f || !f->started)
		return;
	atomic_store(&f->sealed, true);
	atomic_store(&f->want_sandbox, true);
	pthread_mutex_lock(&f->lock);
	while (!f->sandboxed && !f->finished)
		pthread_cond_wait(&f->changed, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

void guest_fill_hold(struct guest_fill *f, bool hold)
{
	atomic_store(&f->hold, hold);
}

void guest_fill_free(struct guest_fill *f)
{
	if (!f)
		return;
	if (f->started) {
		atomic_store(&f->stop, true);
		pthread_join(f->thread, NULL);
	} else {
		for (size_t i = 0; i < f->nr_ranges; i++)
			munmap(f->ranges[i].map, f->ranges[i].len);
		if (f->uffd >= 0)
			close(f->uffd);
	}
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->changed);
	free(f->runs);
	free(f->ranges);
	free(f);
}

void guest_fill_note(struct guest_fill *f, char *buf, size_t n)
{
	if (!f || n == 0)
		return;
	buf[0] = '\0';
	pthread_mutex_lock(&f->lock);
	if (f->started && f->finished)
		snprintf(buf, n,
			 "kernel fill: %.1f MB beside the guest in %.0f ms%s; %llu faults served "
			 "first (%llu of them in holes)",
			 atomic_load(&f->bytes) / 1e6, f->t_end - f->t_start,
			 f->failed ? " (failed: the rest was left zero)" : "",
			 (unsigned long long)f->faults, (unsigned long long)f->zero_pages);
	else if (f->started)
		snprintf(buf, n, "kernel fill: %.1f MB so far (still running at exit)",
			 atomic_load(&f->bytes) / 1e6);
	else if (f->why[0])
		snprintf(buf, n, "kernel fill: copied up front (%s)", f->why);
	pthread_mutex_unlock(&f->lock);
}
