/*
 * Per-thread system call allow-lists (seccomp, built with libseccomp). Each kestrel thread
 * class gets only the calls it makes once the VM runs; anything else ends kestrel with one
 * line on stderr naming the call, and status KESTREL_EXIT_SECCOMP (docs/cli.md).
 * The functions are called sandbox_* because libseccomp owns the seccomp_* names.
 */
#ifndef KESTREL_SECCOMP_H
#define KESTREL_SECCOMP_H

#include <seccomp.h>
#include <stdbool.h>
#include <termios.h>

#include "vmm/error.h"

enum sandbox_class {
	SANDBOX_MAIN,	    /* waits for the end, joins the threads, tears the VM down */
	SANDBOX_VCPU,	    /* KVM_RUN and the device handlers run from exits */
	SANDBOX_EVENT_LOOP, /* epoll: device back ends, terminal input, signals */
	SANDBOX_NR_CLASSES,
};

/* Called (once) when a thread cannot install its filter; the VM must then end. */
typedef void (*sandbox_fail_fn)(void *opaque, const char *msg);

/*
 * Builds the allow-list of one class (SCMP_ACT_TRAP for everything else). NULL with a
 * message in err on failure; release with seccomp_release().
 */
scmp_filter_ctx sandbox_build(enum sandbox_class cls, struct kerr *err);

/*
 * Installs the SIGSYS handler that reports a forbidden call (exit status exit_status) and
 * resolves every system call name up front, since the handler may not allocate.
 */
int sandbox_prepare(int exit_status, struct kerr *err);

/*
 * With enabled set: sandbox_prepare() and sandbox_build() for every class, so that threads
 * later only load a ready filter. Without it, sandbox_enter() does nothing.
 */
int sandbox_setup(bool enabled, int exit_status, sandbox_fail_fn fail, void *opaque,
		  struct kerr *err);

/*
 * Loads the filter of cls into the calling thread (only that thread). Returns 0, or -1
 * after calling the fail callback given to sandbox_setup().
 */
int sandbox_enter(enum sandbox_class cls);

/* Loads a filter built by sandbox_build() into the calling thread. */
int sandbox_load(scmp_filter_ctx ctx, enum sandbox_class cls, struct kerr *err);

/* A terminal the SIGSYS handler puts back (tcsetattr on fd 0) before it ends kestrel. */
void sandbox_set_terminal(const struct termios *saved);

/* Frees the filters sandbox_setup() built (threads keep what they loaded). */
void sandbox_teardown(void);

#endif
