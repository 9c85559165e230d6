/*
 * netbench: a small static network tool for the e2e net tests (tests/e2e/test_net.sh,
 * bench_net.sh). It runs both in the nested test host and in the busybox guest, so it
 * depends on nothing but libc. IPv4 only; addresses are dotted quads.
 *
 *   netbench send [-p PID] [-n BYTES] [-w SECS] ADDR PORT [FILE]
 *       connect (retrying until the peer listens), send FILE (default stdin), or BYTES of
 *       a fixed pattern with -n, then half-close and wait for the peer to close: every
 *       byte has been read by then.
 *   netbench recv [-p PID] [-q] [-w SECS] PORT
 *       accept one connection on PORT, copy it to stdout (-q: discard), until EOF.
 *   netbench udpsend [-s SIZE] [-t SECS] ADDR PORT
 *       send SIZE-byte UDP datagrams (default 64) in a tight loop for SECS (default 5).
 *   netbench udprecv [-t SECS] [-w SECS] PORT
 *       count datagrams from the first one for SECS (or until 1 s without one).
 *   netbench rr [-s SIZE] [-t SECS] [-w SECS] ADDR PORT
 *       TCP request/response: connect (retrying), then for SECS (default 5) write SIZE
 *       bytes (default 64) and read SIZE back, one exchange at a time (TCP_NODELAY).
 *   netbench rrserve [-s SIZE] [-w SECS] PORT
 *       accept one connection and echo each SIZE-byte request until EOF.
 *
 * Each mode prints one result line on stderr:
 *   netbench: send|recv BYTES bytes in SECS s = MBPS MB/s
 *   netbench: udpsend|udprecv PKTS packets in SECS s = PPS pkt/s
 *   netbench: rr N round trips in SECS s = RATE rt/s       (rrserve: N round trips served)
 * With -p PID, send/recv also print the CPU time PID used between the connection being
 * established and the transfer's end, in ms:
 *   netbench: cpu pid=PID proc=MS vmm=MS vcpu=MS vhost=MS
 * proc is the CPU time of every thread of PID (but a vhost worker), each read from
 * /proc/PID/task/TID/schedstat (nanoseconds; utime+stime of .../stat, in 10 ms clock
 * ticks, where a kernel has no schedstat), and a vCPU thread's includes the time the guest
 * ran. vcpu is the vCPU threads (kestrel's vcpuN, QEMU's "CPU N/KVM"); vmm = proc - vcpu is
 * the VMM's own work (event loop, I/O threads, main); vhost is the kernel's vhost-net
 * worker for PID (a kernel thread "vhost-PID", or on Linux >= 6.4 a thread of PID with that
 * name).
 * -w SECS: give up (exit 1) after SECS (default 300). Exit status 0 on success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)
static char buf[BUF];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "netbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "netbench: time limit reached\n";
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(1);
	_exit(1);
}

/* utime+stime in clock ticks of DIR/stat (DIR: /proc/PID[/task/TID]); comm (2nd field) to
 * name. */
static long long stat_ticks(const char *dir, char *name, size_t namelen)
{
	char s[1024], path[400];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/stat", dir);
	fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, s, sizeof(s) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	s[n] = 0;
	char *lp = strchr(s, '('), *rp = strrchr(s, ')');
	if (!lp || !rp)
		return -1;
	if (name) {
		size_t l = (size_t)(rp - lp - 1);
		if (l >= namelen)
			l = namelen - 1;
		memcpy(name, lp + 1, l);
		name[l] = 0;
	}
	/* After ")": field 3 (state) ... field 14 utime, 15 stime. */
	char *p = rp + 2;
	long long v[16] = {0};
	for (int f = 3; f <= 15 && *p; f++) {
		v[f] = strtoll(p, &p, 10);
		if (f == 3) { /* the state is a letter */
			while (*p == ' ')
				p++;
			p++;
		}
	}
	return v[14] + v[15];
}

/* A thread's CPU time in ns: the scheduler's own sum (schedstat's first field) when the
 * kernel has it, else TICKS (stat_ticks of DIR), which round a few ms of VMM work to 0
 * or 10 ms. DIR is /proc/PID or /proc/PID/task/TID. */
static long long task_ns(const char *dir, long long ticks)
{
	char path[400], s[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/schedstat", dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, s, sizeof(s) - 1);
		close(fd);
		if (n > 0) {
			s[n] = 0;
			return strtoll(s, NULL, 10);
		}
	}
	return ticks * (1000000000LL / sysconf(_SC_CLK_TCK));
}

struct cpu {
	long long proc, vcpu, vhost;
};

/* vhost-net's worker for PID: a kernel thread "vhost-PID" (Linux < 6.4; later kernels make it
 * a thread of PID itself, found in its task list). */
static long long vhost_kthreads(int pid)
{
	char path[320], name[64], want[32];
	DIR *d = opendir("/proc");
	struct dirent *e;
	long long sum = 0;

	if (!d)
		return 0;
	snprintf(want, sizeof(want), "vhost-%d", pid);
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%s", e->d_name);
		long long t = stat_ticks(path, name, sizeof(name));
		if (t >= 0 && !strcmp(name, want))
			sum += task_ns(path, t);
	}
	closedir(d);
	return sum;
}

/* proc is the sum over the threads alive at both readings: a thread that ends between them
 * takes its time with it, and the transfers' threads all live through them. */
static void cpu_read(int pid, struct cpu *c)
{
	char path[320], name[64];
	DIR *d;
	struct dirent *e;

	c->proc = c->vcpu = c->vhost = 0;
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s", pid, e->d_name);
		long long t = stat_ticks(path, name, sizeof(name));
		if (t < 0)
			continue;
		t = task_ns(path, t);
		/* kestrel names them vcpuN, QEMU "CPU N/KVM" */
		if (strncmp(name, "vcpu", 4) == 0 || strstr(name, "/KVM"))
			c->vcpu += t;
		if (strncmp(name, "vhost-", 6) == 0)
			c->vhost += t; /* a vhost worker in our task list: not the VMM's own work */
		else
			c->proc += t;
	}
	closedir(d);
	c->vhost += vhost_kthreads(pid);
}

static void cpu_report(int pid, const struct cpu *a, const struct cpu *b)
{
	long long proc = b->proc - a->proc, vcpu = b->vcpu - a->vcpu, vhost = b->vhost - a->vhost;

	if (pid <= 0)
		return;
	/* a thread that ended in between: never show a negative rest. */
	long long vmm = proc > vcpu ? proc - vcpu : 0;
	fprintf(stderr, "netbench: cpu pid=%d proc=%.0f vmm=%.0f vcpu=%.0f vhost=%.0f\n", pid,
		proc / 1e6, vmm / 1e6, vcpu / 1e6, vhost / 1e6);
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};

	if (ip && inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "netbench: bad address %s\n", ip);
		exit(2);
	}
	if (!ip)
		a.sin_addr.s_addr = htonl(INADDR_ANY);
	return a;
}

static void report(const char *mode, long long bytes, double secs)
{
	fprintf(stderr, "netbench: %s %lld bytes in %.3f s = %.2f MB/s\n", mode, bytes, secs,
		secs > 0 ? bytes / secs / 1e6 : 0.0);
}

static int connect_retry(const char *ip, const char *port)
{
	struct sockaddr_in a = addr_of(ip, port);
	int s;

	for (;;) { /* the peer may not listen yet */
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			die("socket");
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			return s;
		if (errno != ECONNREFUSED && errno != ENETUNREACH && errno != EHOSTUNREACH &&
		    errno != ETIMEDOUT)
			die("connect");
		close(s);
		usleep(200000);
	}
}

static int do_send(int pid, long long nbytes, const char *ip, const char *port, const char *file)
{
	int in = 0, s;
	struct cpu c0, c1;

	if (file && (in = open(file, O_RDONLY)) < 0)
		die(file);
	s = connect_retry(ip, port);
	cpu_read(pid, &c0);
	double t0 = now();
	long long total = 0;
	if (nbytes >= 0)
		memset(buf, 0x5a, sizeof(buf));
	for (;;) {
		ssize_t n;
		if (nbytes >= 0) {
			long long left = nbytes - total;
			n = left < BUF ? (ssize_t)left : BUF;
		} else {
			n = read(in, buf, BUF);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("read");
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(s, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("send");
			off += w;
		}
		total += n;
	}
	shutdown(s, SHUT_WR);
	while (read(s, buf, BUF) > 0) /* the peer closes once it has read everything */
		;
	double t1 = now();
	cpu_read(pid, &c1);
	report("send", total, t1 - t0);
	cpu_report(pid, &c0, &c1);
	close(s);
	return 0;
}

static int listen_on(const char *port, int type)
{
	struct sockaddr_in a = addr_of(NULL, port);
	int one = 1, s = socket(AF_INET, type, 0);

	if (s < 0)
		die("socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (type == SOCK_STREAM && listen(s, 1) < 0)
		die("listen");
	return s;
}

static int do_recv(int pid, int quiet, const char *port)
{
	int l = listen_on(port, SOCK_STREAM), s;
	struct cpu c0, c1;

	s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	close(l);
	cpu_read(pid, &c0);
	double t0 = now();
	long long total = 0;
	for (;;) {
		ssize_t n = read(s, buf, BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("recv");
		if (n == 0)
			break;
		total += n;
		for (ssize_t off = 0; !quiet && off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("write");
			off += w;
		}
	}
	double t1 = now();
	cpu_read(pid, &c1);
	close(s);
	report("recv", total, t1 - t0);
	cpu_report(pid, &c0, &c1);
	return 0;
}

static int do_udpsend(int size, double secs, const char *ip, const char *port)
{
	struct sockaddr_in a = addr_of(ip, port);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	long long sent = 0, errs = 0;

	if (s < 0)
		die("socket");
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	memset(buf, 0x5a, (size_t)size);
	double t0 = now(), t = t0, end = t0 + secs;
	while (t < end) {
		for (int i = 0; i < 256; i++) { /* read the clock now and then only */
			if (send(s, buf, (size_t)size, 0) == size)
				sent++;
			else
				errs++; /* ENOBUFS/ECONNREFUSED: keep going */
		}
		t = now();
	}
	fprintf(stderr, "netbench: udpsend %lld packets in %.3f s = %.0f pkt/s (%lld errors)\n",
		sent, t - t0, sent / (t - t0), errs);
	return 0;
}

static int do_udprecv(double secs, const char *port)
{
	int s = listen_on(port, SOCK_DGRAM);
	struct timeval tv = {.tv_sec = 1};
	long long n = 0;
	double t0 = 0, last = 0;

	for (;;) {
		ssize_t r = recv(s, buf, BUF, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break; /* idle for 1 s after the first datagram: the sender stopped */
		if (r < 0)
			die("recv");
		last = now();
		if (n++ == 0) {
			t0 = last;
			setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		}
		if (last - t0 >= secs)
			break;
	}
	/* n-1 intervals between the first and the last datagram. */
	double d = last - t0;
	fprintf(stderr, "netbench: udprecv %lld packets in %.3f s = %.0f pkt/s\n", n, d,
		d > 0 ? (n - 1) / d : 0.0);
	return n > 0 ? 0 : 1;
}

/* Reads exactly len bytes: 1, 0 on EOF before any byte. */
static int read_full(int s, char *p, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(s, p + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0) {
			if (got)
				die("short request");
			return 0;
		}
		got += (size_t)r;
	}
	return 1;
}

static void write_full(int s, const char *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(s, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		off += (size_t)w;
	}
}

static void nodelay(int s)
{
	int one = 1;

	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("TCP_NODELAY");
}

/* One request of size bytes out, one response back, for secs: the latency of a round trip. */
static int do_rr(int size, double secs, const char *ip, const char *port)
{
	int s = connect_retry(ip, port);
	long long n = 0;

	nodelay(s);
	memset(buf, 0x5a, (size_t)size);
	double t0 = now(), t = t0, end = t0 + secs;
	while (t < end) {
		for (int i = 0; i < 16; i++) { /* read the clock now and then only */
			write_full(s, buf, (size_t)size);
			if (!read_full(s, buf, (size_t)size)) {
				errno = ECONNRESET;
				die("rr");
			}
			n++;
		}
		t = now();
	}
	close(s);
	fprintf(stderr, "netbench: rr %lld round trips in %.3f s = %.0f rt/s\n", n, t - t0,
		n / (t - t0));
	return 0;
}

static int do_rrserve(int size, const char *port)
{
	int l = listen_on(port, SOCK_STREAM), s;
	long long n = 0;

	s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	close(l);
	nodelay(s);
	while (read_full(s, buf, (size_t)size)) {
		write_full(s, buf, (size_t)size);
		n++;
	}
	close(s);
	fprintf(stderr, "netbench: rrserve %lld round trips served\n", n);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: netbench send [-p PID] [-n BYTES] [-w S] ADDR PORT [FILE]\n"
			"       netbench recv [-p PID] [-q] [-w S] PORT\n"
			"       netbench udpsend [-s SIZE] [-t S] ADDR PORT\n"
			"       netbench udprecv [-t S] [-w S] PORT\n"
			"       netbench rr [-s SIZE] [-t S] [-w S] ADDR PORT\n"
			"       netbench rrserve [-s SIZE] [-w S] PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int pid = 0, quiet = 0, size = 64, c;
	long long nbytes = -1;
	double secs = 5, limit = 300;

	if (argc < 2)
		usage();
	const char *mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "p:n:qw:s:t:")) != -1) {
		switch (c) {
		case 'p':
			pid = atoi(optarg);
			break;
		case 'n':
			nbytes = atoll(optarg);
			break;
		case 'q':
			quiet = 1;
			break;
		case 'w':
			limit = atof(optarg);
			break;
		case 's':
			size = atoi(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (size < 1 || size > BUF)
		usage();
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned int)(limit > 0 ? limit : 0));
	int na = argc - optind;
	char **a = argv + optind;
	if (!strcmp(mode, "send") && (na == 2 || na == 3))
		return do_send(pid, nbytes, a[0], a[1], na == 3 ? a[2] : NULL);
	if (!strcmp(mode, "recv") && na == 1)
		return do_recv(pid, quiet, a[0]);
	if (!strcmp(mode, "udpsend") && na == 2)
		return do_udpsend(size, secs, a[0], a[1]);
	if (!strcmp(mode, "udprecv") && na == 1)
		return do_udprecv(secs, a[0]);
	if (!strcmp(mode, "rr") && na == 2)
		return do_rr(size, secs, a[0], a[1]);
	if (!strcmp(mode, "rrserve") && na == 1)
		return do_rrserve(size, a[0]);
	usage();
	return 2;
}
