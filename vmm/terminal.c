#include "vmm/terminal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define CTRL_A 0x01

static void block_set(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGINT);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGHUP);
}

int terminal_block_signals(struct kerr *err)
{
	sigset_t s;

	block_set(&s);
	if (pthread_sigmask(SIG_BLOCK, &s, NULL))
		return kerr_set(err, "cannot block signals");
	return 0;
}

static void on_shutdown_timeout(void *opaque, uint32_t events)
{
	struct terminal *t = opaque;
	uint64_t n;

	(void)events;
	if (read(t->shutdown_timer.fd, &n, sizeof(n)) != sizeof(n))
		return;
	vm_request_exit(t->vm, KESTREL_EXIT_SIGNAL_BASE + SIGTERM,
			"the guest did not power off within %u s of SIGTERM: stopped it",
			t->shutdown_timeout);
}

/* The first SIGTERM asks the guest to shut down cleanly, if it can be asked. */
static bool graceful_shutdown(struct terminal *t)
{
	struct itimerspec when = {.it_value = {.tv_sec = t->shutdown_timeout}};

	if (t->shutting_down || !t->shutdown_timeout || t->shutdown_timer.fd < 0 ||
	    timerfd_settime(t->shutdown_timer.fd, 0, &when, NULL) < 0)
		return false;
	if (!vm_power_button(t->vm)) {
		timerfd_settime(t->shutdown_timer.fd, 0, &(struct itimerspec){0}, NULL);
		return false;
	}
	t->shutting_down = true;
	fprintf(stderr,
		"kestrel: SIGTERM: pressed the power button; the guest has %u s to power off\n",
		t->shutdown_timeout);
	return true;
}

static void on_signal(void *opaque, uint32_t events)
{
	struct terminal *t = opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(t->signals.fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGTERM && graceful_shutdown(t))
		return;
	vm_request_exit(t->vm, KESTREL_EXIT_SIGNAL_BASE + (int)si.ssi_signo, "stopped by %s",
			strsignal((int)si.ssi_signo));
}

static void on_input(void *opaque, uint32_t events)
{
	struct terminal *t = opaque;
	uint8_t buf[256], out[256];
	size_t n_out = 0;
	ssize_t n;

	(void)events;
	n = read(t->input.fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		/* End of input (a pipe or /dev/null): the guest keeps running without it. */
		event_loop_del(&t->vm->loop, &t->input);
		t->input_registered = false;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		uint8_t c = buf[i];
		if (t->escape) {
			t->escape = false;
			if (c == 'x' || c == 'X') {
				vm_request_exit(t->vm, KESTREL_EXIT_REBOOT, "user quit (Ctrl-A x)");
				return;
			}
			if (c != CTRL_A)
				out[n_out++] = CTRL_A;
		} else if (c == CTRL_A) {
			t->escape = true;
			continue;
		}
		out[n_out++] = c;
		if (n_out >= sizeof(out) - 1) {
			t->sink(t->sink_opaque, out, n_out);
			n_out = 0;
		}
	}
	if (n_out)
		t->sink(t->sink_opaque, out, n_out);
}

int terminal_init(struct terminal *t, struct vm *vm, terminal_sink_fn sink, void *sink_opaque,
		  unsigned int shutdown_timeout, struct kerr *err)
{
	sigset_t s;

	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->sink = sink;
	t->sink_opaque = sink_opaque;
	t->shutdown_timeout = shutdown_timeout;
	t->shutdown_timer = (struct event_handler){
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), on_shutdown_timeout, t};
	if (t->shutdown_timer.fd < 0)
		return kerr_set(err, "timerfd_create: %s", strerror(errno));
	if (event_loop_add(&vm->loop, &t->shutdown_timer, EPOLLIN, err))
		return -1;

	block_set(&s);
	t->signals = (struct event_handler){signalfd(-1, &s, SFD_CLOEXEC), on_signal, t};
	if (t->signals.fd < 0)
		return kerr_set(err, "signalfd: %s", strerror(errno));
	if (event_loop_add(&vm->loop, &t->signals, EPOLLIN, err))
		return -1;

	t->input = (struct event_handler){STDIN_FILENO, on_input, t};
	if (event_loop_add(&vm->loop, &t->input, EPOLLIN, NULL) == 0)
		t->input_registered = true;
	/* else: stdin is a regular file or closed; the console is then output-only. */

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR; /* keep kestrel's own messages readable */
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			t->raw = true;
	}
	return 0;
}

void terminal_restore(struct terminal *t)
{
	if (t->raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
		t->raw = false;
	}
	if (t->signals.fd > 0) {
		close(t->signals.fd);
		t->signals.fd = -1;
	}
	if (t->shutdown_timer.fd > 0) {
		close(t->shutdown_timer.fd);
		t->shutdown_timer.fd = -1;
	}
}
