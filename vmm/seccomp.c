#include "vmm/seccomp.h"

#include <errno.h>
#include <malloc.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <linux/vhost.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * Every list holds what a thread calls after it loaded its filter: read from the code, then
 * checked with `strace -ff` on kestrel in the nested test host (disk, serial port, NIC with
 * vhost off and on, driver unbind/bind of every device, SIGTERM). Set-up calls (open, socket,
 * TUNSETIFF, VHOST_SET_OWNER, io_uring_setup...) are absent on purpose.
 */

/* Any thread: locks, heap, thread exit, clocks, eventfds and stderr, the kick's return. */
static const int common_calls[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(futex),
    SCMP_SYS(munmap),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(tgkill),
    /* glibc: malloc sizes its arenas from the affinity mask; rseq at thread exit. */
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(rseq),
    /* stdio asks for a stream's buffer size on its first use. */
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
};

/* Back ends: tap, vhost-net, io_uring or synchronous disk I/O, console sockets. */
static const int event_loop_calls[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(sendmsg),
    SCMP_SYS(accept4),
    SCMP_SYS(close),
    SCMP_SYS(eventfd2),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fallocate),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
    /* SIGTERM arms the shutdown timer. */
    SCMP_SYS(timerfd_settime),
};

/*
 * The main thread tears the VM down: joins, closes, drains and unlocks disks, removes sockets
 * (glibc's unlink() is unlinkat on arm64, which has no unlink call).
 */
static const int main_calls[] = {
    SCMP_SYS(close),
    SCMP_SYS(flock),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
};

/*
 * Only sanitizer builds: the raw system calls the ASan/UBSan runtime itself makes (every
 * `syscall` in libasan, less fork, execve and rename), e.g. reports reading /proc/self/maps
 * and LeakSanitizer's exit-time tracer, a clone of the main thread that inherits its filter
 * with every signal blocked, so that a trap there is a silent kill and kestrel hangs.
 */
static const int sanitizer_calls[] = {
    SCMP_SYS(open),	    SCMP_SYS(openat),	   SCMP_SYS(close),    SCMP_SYS(stat),
    SCMP_SYS(lstat),	    SCMP_SYS(lseek),	   SCMP_SYS(mprotect), SCMP_SYS(mremap),
    SCMP_SYS(rt_sigaction), SCMP_SYS(sched_yield), SCMP_SYS(dup),      SCMP_SYS(dup2),
    SCMP_SYS(nanosleep),    SCMP_SYS(clone),	   SCMP_SYS(wait4),    SCMP_SYS(uname),
    SCMP_SYS(getdents),	    SCMP_SYS(getdents64),  SCMP_SYS(readlink), SCMP_SYS(ptrace),
    SCMP_SYS(getppid),	    SCMP_SYS(sigaltstack), SCMP_SYS(prctl),    SCMP_SYS(getrandom),
    SCMP_SYS(prlimit64),    SCMP_SYS(getrlimit),   SCMP_SYS(kill),     SCMP_SYS(pipe2),
};

/*
 * A vCPU: masking an MSI-X vector detaches its irqfd and hands its eventfd to the event loop
 * (epoll_ctl); the UART waits a bounded time for a host reader with room (poll).
 */
static const int vcpu_calls[] = {
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
};

/* A vCPU: KVM_RUN, and what device registers do (IRQ lines, BAR moves, MSI-X messages). */
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN, KVM_IRQ_LINE, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, KVM_IRQFD,
};

/* Device activation and reset run on the event loop, and INTx from back ends. */
static const unsigned long event_loop_ioctls[] = {
    KVM_IRQ_LINE,	   TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,	   TUNSETQUEUE,
    VHOST_SET_FEATURES,	   VHOST_SET_MEM_TABLE,
    VHOST_SET_VRING_NUM,   VHOST_SET_VRING_BASE,
    VHOST_SET_VRING_ADDR,  VHOST_SET_VRING_CALL,
    VHOST_SET_VRING_KICK,  VHOST_GET_VRING_BASE,
    VHOST_NET_SET_BACKEND, SIOCINQ,
};

/* Tear-down unbinds the kick ioeventfds and the irqfds of unmasked vectors. */
static const unsigned long main_ioctls[] = {
    KVM_IOEVENTFD,
    KVM_IRQFD,
};

static const char *const class_names[SANDBOX_NR_CLASSES] = {
    [SANDBOX_MAIN] = "main thread",
    [SANDBOX_VCPU] = "vCPU thread",
    [SANDBOX_EVENT_LOOP] = "event-loop thread",
};

#define NAME_TABLE_SIZE 512
#define NAME_LEN 24

/* Filled by sandbox_prepare() before any filter exists; only read by the handler. */
static char syscall_names[NAME_TABLE_SIZE][NAME_LEN];
static int violation_status;
static unsigned int native_arch;
static struct termios saved_terminal;
static int terminal_saved;
static int reporting;
static __thread int thread_class = -1;

static struct {
	bool enabled;
	scmp_filter_ctx ctx[SANDBOX_NR_CLASSES];
	sandbox_fail_fn fail;
	void *opaque;
	int failed;
} state;

/* libseccomp keeps some global state: one load at a time. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t put_str(char *buf, size_t pos, size_t cap, const char *s)
{
	while (*s && pos < cap)
		buf[pos++] = *s++;
	return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t cap, unsigned long v)
{
	char digits[24];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && pos < cap)
		buf[pos++] = digits[--n];
	return pos;
}

/* Async-signal-safe: formats into a stack buffer, one write(2), then _exit. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char line[256];
	size_t n = 0, cap = sizeof(line) - 1;
	int nr = si->si_syscall;
	ssize_t w;

	(void)sig;
	(void)uctx;
	if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQ_REL)) {
		/* Another thread is already reporting and about to end the process. */
		for (;;)
			__asm__ volatile("" ::: "memory");
	}
	if (__atomic_load_n(&terminal_saved, __ATOMIC_ACQUIRE))
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
	n = put_str(line, n, cap, "kestrel: forbidden system call ");
	/* The names are the native ABI's: a call through another (int 0x80) has none. */
	if (si->si_arch == native_arch && nr >= 0 && nr < NAME_TABLE_SIZE && syscall_names[nr][0])
		n = put_str(line, n, cap, syscall_names[nr]);
	else
		n = put_str(line, n, cap, "?");
	n = put_str(line, n, cap, " (");
	n = put_uint(line, n, cap, (unsigned long)(unsigned int)nr);
	n = put_str(line, n, cap, ") on the ");
	if (thread_class >= 0 && thread_class < SANDBOX_NR_CLASSES)
		n = put_str(line, n, cap, class_names[thread_class]);
	else
		n = put_str(line, n, cap, "unfiltered thread");
	n = put_str(line, n, cap, ", stopped by seccomp (exit status ");
	n = put_uint(line, n, cap, (unsigned long)violation_status);
	n = put_str(line, n, cap, ")");
	line[n++] = '\n';
	w = write(STDERR_FILENO, line, n);
	(void)w;
	_exit(violation_status);
}

int sandbox_prepare(int exit_status, struct kerr *err)
{
	struct sigaction sa;

	violation_status = exit_status;
	native_arch = seccomp_arch_native();
	/*
	 * glibc loads the time zone on the first gmtime_r (the CMOS RTC calls it on a vCPU
	 * thread), opening /etc/localtime: do it now, while files may still be opened.
	 */
	tzset();
	/*
	 * glibc reads /proc/sys/vm/overcommit_memory the first time it shrinks a thread's heap
	 * (a device freeing its queues at reset, on the event loop), and the dynamic mmap
	 * threshold moves freed big blocks into those heaps. A fixed mmap threshold keeps big
	 * blocks mmapped (munmap returns them), and a trim threshold above a thread heap's
	 * 64 MiB means no thread heap is ever shrunk. A sanitizer's allocator refuses mallopt;
	 * it has no such heaps either.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	(void)mallopt(M_TRIM_THRESHOLD, 128 << 20);
	for (int nr = 0; nr < NAME_TABLE_SIZE; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (!name)
			continue;
		strncpy(syscall_names[nr], name, NAME_LEN - 1);
		free(name);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return kerr_set(err, "sigaction(SIGSYS): %s", strerror(errno));
	return 0;
}

static int add_calls(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* Negative: not a call on this architecture (or a list placeholder). */
		if (nrs[i] < 0)
			continue;
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The kernel reads an ioctl request as 32 bits: compare only those. */
static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, reqs[i]));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* mmap and mprotect only without PROT_EXEC: no thread ever maps new code. */
static int add_memory_rules(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));

	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/*
	 * The SIGSYS handler and the main thread restore the terminal on fd 0; glibc's
	 * tcsetattr reads the settings back (TCGETS) to check them.
	 */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
				      SCMP_A0(SCMP_CMP_EQ, STDIN_FILENO, 0),
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TCSETS));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
				      SCMP_A0(SCMP_CMP_EQ, STDIN_FILENO, 0),
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TCGETS));
	return rc;
}

/* The network loop switches itself, and only itself, between these two (vmm/batch_policy.h). */
static int add_sched_rules(scmp_filter_ctx ctx)
{
	static const int policies[] = {SCHED_OTHER, SCHED_BATCH};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(policies) / sizeof(policies[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_setscheduler), 2,
				      SCMP_A0(SCMP_CMP_EQ, 0, 0),
				      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)policies[i], 0));
	return rc;
}

#define ADD_LIST(fn, ctx, list) fn(ctx, list, sizeof(list) / sizeof(list[0]))

scmp_filter_ctx sandbox_build(enum sandbox_class cls, struct kerr *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int rc;

	if (!ctx) {
		kerr_set(err, "seccomp_init failed");
		return NULL;
	}
	/* A call through another ABI (int 0x80, x32) is reported like any forbidden call. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	if (rc == 0)
		rc = ADD_LIST(add_calls, ctx, common_calls);
	if (rc == 0)
		rc = add_memory_rules(ctx);
	if (rc == 0) {
		switch (cls) {
		case SANDBOX_VCPU:
			rc = ADD_LIST(add_calls, ctx, vcpu_calls);
			if (rc == 0)
				rc = ADD_LIST(add_ioctls, ctx, vcpu_ioctls);
			break;
		case SANDBOX_EVENT_LOOP:
			rc = ADD_LIST(add_calls, ctx, event_loop_calls);
			if (rc == 0)
				rc = ADD_LIST(add_ioctls, ctx, event_loop_ioctls);
			if (rc == 0)
				rc = add_sched_rules(ctx);
			break;
		default:
			rc = ADD_LIST(add_calls, ctx, main_calls);
			if (rc == 0)
				rc = ADD_LIST(add_ioctls, ctx, main_ioctls);
			break;
		}
	}
#ifdef KESTREL_SANITIZE
	if (rc == 0)
		rc = ADD_LIST(add_calls, ctx, sanitizer_calls);
#else
	(void)sanitizer_calls;
#endif
	if (rc < 0) {
		kerr_set(err, "seccomp filter for the %s: %s", class_names[cls], strerror(-rc));
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

int sandbox_load(scmp_filter_ctx ctx, enum sandbox_class cls, struct kerr *err)
{
	int rc;

	pthread_mutex_lock(&load_lock);
	thread_class = (int)cls;
	rc = seccomp_load(ctx);
	pthread_mutex_unlock(&load_lock);
	if (rc < 0) {
		thread_class = -1;
		return kerr_set(err, "cannot load the seccomp filter of the %s: %s",
				class_names[cls], strerror(-rc));
	}
	return 0;
}

int sandbox_setup(bool enabled, int exit_status, sandbox_fail_fn fail, void *opaque,
		  struct kerr *err)
{
	state.enabled = enabled;
	state.fail = fail;
	state.opaque = opaque;
	if (!enabled)
		return 0;
	if (sandbox_prepare(exit_status, err))
		return -1;
	for (int c = 0; c < SANDBOX_NR_CLASSES; c++) {
		state.ctx[c] = sandbox_build((enum sandbox_class)c, err);
		if (!state.ctx[c]) {
			sandbox_teardown();
			return -1;
		}
	}
	return 0;
}

int sandbox_enter(enum sandbox_class cls)
{
	struct kerr err;

	if (!state.enabled)
		return 0;
	if (sandbox_load(state.ctx[cls], cls, &err) == 0)
		return 0;
	if (state.fail && !__atomic_exchange_n(&state.failed, 1, __ATOMIC_ACQ_REL))
		state.fail(state.opaque, err.msg);
	return -1;
}

void sandbox_set_terminal(const struct termios *saved)
{
	saved_terminal = *saved;
	__atomic_store_n(&terminal_saved, 1, __ATOMIC_RELEASE);
}

void sandbox_teardown(void)
{
	for (int c = 0; c < SANDBOX_NR_CLASSES; c++) {
		if (state.ctx[c])
			seccomp_release(state.ctx[c]);
		state.ctx[c] = NULL;
	}
}
