/*
 * The per-thread seccomp profiles (vmm/seccomp.c): in a forked child that loaded the real
 * filter of a thread class, a forbidden call ends the process with status 8 and one line
 * naming the call; the calls the class needs still work.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <linux/vhost.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "devices/debug_port.h"
#include "vmm/seccomp.h"

#define STATUS 8

struct outcome {
	int status; /* exit status, or 128 + signal */
	char err[1024];
};

/* Loads the filter of cls in this thread; any failure is exit status 99. */
static void enter(enum sandbox_class cls)
{
	struct kerr err;
	scmp_filter_ctx ctx;

	if (sandbox_prepare(STATUS, &err))
		_exit(99);
	ctx = sandbox_build(cls, &err);
	if (!ctx || sandbox_load(ctx, cls, &err))
		_exit(99);
}

/* Runs fn(arg) in a child whose stderr is captured; fn returns the child's exit status. */
static struct outcome run_child(int (*fn)(void *), void *arg)
{
	struct outcome o = {0};
	int pfd[2], ws;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		if (dup2(pfd[1], STDERR_FILENO) < 0)
			_exit(98);
		_exit(fn(arg));
	}
	close(pfd[1]);
	while ((n = read(pfd[0], o.err + len, sizeof(o.err) - 1 - len)) > 0)
		len += (size_t)n;
	o.err[len] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	o.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	return o;
}

static void expect_violation(const struct outcome *o, const char *call, const char *thread)
{
	const char *nl = strchr(o->err, '\n');

	cr_assert_eq(o->status, STATUS, "exit status %d, want %d; stderr: %s", o->status, STATUS,
		     o->err);
	cr_assert_not_null(nl, "no complete line on stderr: '%s'", o->err);
	cr_assert_eq(nl[1], '\0', "more than one line on stderr: '%s'", o->err);
	cr_assert_eq(strncmp(o->err, "kestrel: ", 9), 0, "stderr: %s", o->err);
	cr_assert_not_null(strstr(o->err, call), "'%s' does not name %s", o->err, call);
	cr_assert_not_null(strstr(o->err, thread), "'%s' does not name the %s", o->err, thread);
	cr_assert_not_null(strstr(o->err, "(exit status 8)"), "stderr: %s", o->err);
}

static void expect_clean(const struct outcome *o)
{
	cr_assert_eq(o->status, 0, "exit status %d; stderr: %s", o->status, o->err);
	cr_assert_eq(o->err[0], '\0', "stderr: %s", o->err);
}

/* ---- forbidden calls ---- */

static int call_socket(void *arg)
{
	enter((enum sandbox_class)(intptr_t)arg);
	socket(AF_INET, SOCK_DGRAM, 0);
	return 0; /* reached only if the call was allowed */
}

Test(seccomp, socket_is_forbidden_in_every_class)
{
	static const char *const names[] = {"main thread", "vCPU thread", "event-loop thread"};

	for (int c = 0; c < SANDBOX_NR_CLASSES; c++) {
		struct outcome o = run_child(call_socket, (void *)(intptr_t)c);
		char want[32];

		snprintf(want, sizeof(want), "socket (%d)", SYS_socket);
		expect_violation(&o, want, names[c]);
	}
}

static int vcpu_tun_ioctl(void *arg)
{
	(void)arg;
	enter(SANDBOX_VCPU);
	/* The event loop may do this, a vCPU thread may not: the request number is filtered. */
	ioctl(STDIN_FILENO, TUNSETOFFLOAD, 0);
	return 0;
}

Test(seccomp, vcpu_ioctl_requests_are_filtered)
{
	struct outcome o = run_child(vcpu_tun_ioctl, NULL);
	char want[32];

	snprintf(want, sizeof(want), "ioctl (%d)", SYS_ioctl);
	expect_violation(&o, want, "vCPU thread");
}

static int exec_mapping(void *arg)
{
	(void)arg;
	enter(SANDBOX_EVENT_LOOP);
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 0;
}

Test(seccomp, no_executable_mappings)
{
	struct outcome o = run_child(exec_mapping, NULL);
	char want[32];

	snprintf(want, sizeof(want), "mmap (%d)", SYS_mmap);
	expect_violation(&o, want, "event-loop thread");
}

static int raw_terminal_violation(void *arg)
{
	const char *slave = arg;
	struct termios saved, raw;
	int fd = open(slave, O_RDWR | O_NOCTTY);

	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || tcgetattr(STDIN_FILENO, &saved))
		return 50;
	raw = saved;
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw))
		return 51;
	sandbox_set_terminal(&saved);
	enter(SANDBOX_EVENT_LOOP);
	socket(AF_INET, SOCK_DGRAM, 0);
	return 0;
}

/* A violation while kestrel holds the terminal raw gives the user a cooked terminal back. */
Test(seccomp, violation_restores_the_terminal)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY), keep;
	struct termios before, after;
	struct outcome o;
	char want[32];
	char *slave;

	cr_assert_geq(master, 0);
	cr_assert_eq(grantpt(master), 0);
	cr_assert_eq(unlockpt(master), 0);
	slave = ptsname(master);
	cr_assert_not_null(slave);
	keep = open(slave, O_RDWR | O_NOCTTY);
	cr_assert_geq(keep, 0);
	cr_assert_eq(tcgetattr(keep, &before), 0);
	cr_assert(before.c_lflag & ICANON, "a new pty starts cooked");
	o = run_child(raw_terminal_violation, slave);
	snprintf(want, sizeof(want), "socket (%d)", SYS_socket);
	expect_violation(&o, want, "event-loop thread");
	cr_assert_eq(tcgetattr(keep, &after), 0);
	cr_assert_eq(after.c_lflag, before.c_lflag, "lflag 0x%x, want 0x%x", after.c_lflag,
		     before.c_lflag);
	cr_assert_eq(after.c_iflag, before.c_iflag);
	close(keep);
	close(master);
}

#ifdef __x86_64__
static int i386_call(void *arg)
{
	long ret = 20; /* getpid in the i386 table */

	if (arg)
		enter(SANDBOX_VCPU);
	__asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
	return 0;
}

/* Another ABI is trapped too, and not named from the x86-64 table. */
Test(seccomp, other_abi_is_forbidden)
{
	struct outcome o = run_child(i386_call, NULL);

	if (o.status != 0)
		cr_skip_test("this kernel has no i386 system calls (status %d)", o.status);
	o = run_child(i386_call, (void *)1);
	expect_violation(&o, "system call ? (20)", "vCPU thread");
}
#endif

static void *socket_thread(void *arg)
{
	(void)arg;
	enter(SANDBOX_VCPU);
	syscall(SYS_sysinfo, NULL);
	return NULL;
}

static int filter_is_per_thread(void *arg)
{
	pthread_t t;
	int s;

	(void)arg;
	/* The filter of the other thread must not apply here. */
	if (pthread_create(&t, NULL, socket_thread, NULL))
		return 97;
	pthread_join(t, NULL);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	return s >= 0 ? 0 : 96;
}

Test(seccomp, only_the_loading_thread_is_filtered)
{
	struct outcome o = run_child(filter_is_per_thread, NULL);
	char want[32];

	snprintf(want, sizeof(want), "sysinfo (%d)", SYS_sysinfo);
	expect_violation(&o, want, "vCPU thread");
}

/* ---- allowed calls ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Locks, heap (small and mmap-sized), clocks, stderr-free writes. */
static int common_calls_work(void)
{
	struct timespec ts;
	void *big = malloc(1 << 22);
	void *small = malloc(64);

	if (!big || !small)
		return 10;
	memset(big, 1, 1 << 22);
	free(big);
	free(small);
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return 11;
	return 0;
}

static int vcpu_allowed(void *arg)
{
	uint64_t one = 1, v;
	int efd = eventfd(0, EFD_NONBLOCK), rc;
	time_t now = time(NULL);
	struct tm tm;

	(void)arg;
	if (efd < 0)
		return 20;
	enter(SANDBOX_VCPU);
	rc = common_calls_work();
	if (rc)
		return rc;
	if (write(efd, &one, sizeof(one)) != sizeof(one) || read(efd, &v, sizeof(v)) != sizeof(v))
		return 21;
	/* The CMOS RTC converts the host time on a vCPU thread (glibc loads the zone once). */
	if (!gmtime_r(&now, &tm))
		return 24;
	/* Allowed requests reach the kernel: an eventfd is not a vCPU, so ENOTTY. */
	if (ioctl(efd, KVM_RUN, 0) != -1 || errno != ENOTTY)
		return 22;
	if (ioctl(efd, KVM_SET_GSI_ROUTING, NULL) != -1 || errno != ENOTTY)
		return 23;
	return 0;
}

Test(seccomp, vcpu_calls_still_work)
{
	struct outcome o = run_child(vcpu_allowed, NULL);

	expect_clean(&o);
}

static double no_time(void *opaque)
{
	(void)opaque;
	return 1.5;
}

/* What device registers do on a vCPU thread: the boot-timer port logs (it used dprintf, whose
 * lseek the profile refuses: found by the hostile-guest test), the UART waits for room. */
static int vcpu_devices(void *arg)
{
	struct debug_port d;
	int p[2];
	uint8_t b = 1;
	char buf[256];

	(void)arg;
	if (pipe(p))
		return 30;
	debug_port_init(&d, (struct vm_control){.elapsed_ms = no_time}, p[1]);
	enter(SANDBOX_VCPU);
	for (int i = 0; i < DEBUG_PORT_BOOT_TIMER_LOGGED + 2; i++)
		debug_port_io(&d, DEBUG_PORT_BOOT_TIMER, &b, 1, true);
	debug_port_finish(&d);
	if (read(p[0], buf, sizeof(buf)) <= 0)
		return 31;
	if (poll(&(struct pollfd){.fd = p[1], .events = POLLOUT}, 1, 0) != 1)
		return 32;
	return 0;
}

Test(seccomp, vcpu_device_handlers_stay_inside_the_profile)
{
	struct outcome o = run_child(vcpu_devices, NULL);

	expect_clean(&o);
}

static int event_loop_allowed(void *arg)
{
	struct epoll_event ev = {.events = EPOLLIN}, out;
	char buf[8] = "abcdefg", tmpl[] = "/tmp/kestrel-seccomp.XXXXXX";
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int ep = epoll_create1(0), sv[2], file = mkstemp(tmpl), rc, inq;

	(void)arg;
	if (ep < 0 || file < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 30;
	unlink(tmpl);
	ev.data.fd = sv[1];
	enter(SANDBOX_EVENT_LOOP);
	rc = common_calls_work();
	if (rc)
		return rc;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev) || sendmsg(sv[0], &msg, MSG_DONTWAIT) != 8 ||
	    writev(sv[0], &iov, 1) != 8)
		return 31;
	if (epoll_wait(ep, &out, 1, 1000) != 1 || ioctl(sv[1], SIOCINQ, &inq) || inq != 16)
		return 32;
	if (readv(sv[1], &iov, 1) != 8 || read(sv[1], buf, 8) != 8)
		return 33;
	/* The synchronous disk engine. */
	if (pwrite(file, buf, 8, 4096) != 8 || preadv2(file, &iov, 1, 4096, 0) != 8 ||
	    pwritev2(file, &iov, 1, 0, 0) != 8 || fdatasync(file))
		return 34;
	if (ioctl(file, VHOST_SET_VRING_CALL, NULL) != -1 || errno != ENOTTY)
		return 35;
	if (close(sv[0]) || eventfd(0, 0) < 0)
		return 36;
	/* The network loop's own policy (vmm/batch_policy.h). */
	if (sched_setscheduler(0, SCHED_BATCH, &(struct sched_param){0}) ||
	    sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0}))
		return 37;
	return 0;
}

/* Any other policy, or another thread's, is not the loop's to set. */
static int loop_sets_fifo(void *arg)
{
	enter(SANDBOX_EVENT_LOOP);
	sched_setscheduler(arg ? getpid() : 0, arg ? SCHED_BATCH : SCHED_FIFO,
			   &(struct sched_param){.sched_priority = arg ? 0 : 1});
	return 0;
}

Test(seccomp, event_loop_sets_only_its_own_batch_policy)
{
	char want[48];

	snprintf(want, sizeof(want), "sched_setscheduler (%d)", SYS_sched_setscheduler);
	for (intptr_t other_pid = 0; other_pid < 2; other_pid++) {
		struct outcome o = run_child(loop_sets_fifo, (void *)other_pid);

		expect_violation(&o, want, "event-loop thread");
	}
}

Test(seccomp, event_loop_calls_still_work)
{
	struct outcome o = run_child(event_loop_allowed, NULL);

	expect_clean(&o);
}

/*
 * A thread's heap growing and shrinking, as a device's queues being set up and freed at each
 * reset: glibc reads /proc/sys/vm/overcommit_memory the first time it shrinks a thread's
 * heap, and a freed 1 MiB would have moved its mmap threshold so that the next ones come
 * from the heap (found on arm64: a guest resetting five disks ended kestrel).
 */
static void *heap_churn(void *arg)
{
	static void *small[512], *big[5];

	enter(SANDBOX_EVENT_LOOP);
	for (int round = 0; round < 4; round++) {
		for (unsigned int i = 0; i < 5; i++)
			big[i] = calloc(1, 1 << 20);
		for (unsigned int i = 0; i < 5; i++)
			free(big[i]);
		for (unsigned int i = 0; i < 512; i++)
			small[i] = malloc(2048);
		for (unsigned int i = 0; i < 512; i++)
			free(small[i]);
	}
	*(int *)arg = 1;
	return NULL;
}

static int heap_churn_thread(void *arg)
{
	pthread_t t;
	int done = 0;

	(void)arg;
	if (pthread_create(&t, NULL, heap_churn, &done) || pthread_join(t, NULL))
		return 97;
	return done ? 0 : 96;
}

Test(seccomp, a_thread_heap_may_grow_and_shrink)
{
	struct outcome o = run_child(heap_churn_thread, NULL);

	expect_clean(&o);
}

static int stop;

static void on_kick(int sig)
{
	(void)sig;
}

/* Started before the filter, so unfiltered: waits to be kicked like a vCPU thread. */
static void *kicked_thread(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		usleep(1000);
	return NULL;
}

static int main_allowed(void *arg)
{
	int efd = eventfd(0, 0);
	uint64_t one = 1, v;
	pthread_t t;
	int rc;

	int master = posix_openpt(O_RDWR | O_NOCTTY), slave;
	struct termios saved;

	(void)arg;
	/* stdin is a terminal the main thread puts back at the end (terminal_restore). */
	if (master < 0 || grantpt(master) || unlockpt(master))
		return 44;
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	if (slave < 0 || dup2(slave, STDIN_FILENO) < 0 || tcgetattr(STDIN_FILENO, &saved))
		return 45;
	signal(SIGUSR1, on_kick);
	if (efd < 0 || pthread_create(&t, NULL, kicked_thread, NULL))
		return 40;
	enter(SANDBOX_MAIN);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &saved))
		return 46;
	rc = common_calls_work();
	if (rc)
		return rc;
	if (write(efd, &one, sizeof(one)) != sizeof(one) || read(efd, &v, sizeof(v)) != sizeof(v))
		return 41;
	/* How the main thread stops a vCPU: pthread_kill, then join. */
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	if (pthread_kill(t, SIGUSR1))
		return 42;
	if (pthread_join(t, NULL) || close(efd))
		return 43;
	return 0;
}

Test(seccomp, main_thread_calls_still_work)
{
	struct outcome o = run_child(main_allowed, NULL);

	expect_clean(&o);
}
