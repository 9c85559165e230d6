/* kestrel: parse the command line, build the VM, run it, and report how it ended. */
#include <stdio.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/terminal.h"
#include "vmm/vm.h"

#define KESTREL_VERSION "0.1.0"

static int fail(const struct kerr *err)
{
	fprintf(stderr, "kestrel: %s\n", err->msg);
	return KESTREL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	struct terminal term;
	struct kerr err = {{0}};
	struct vm vm;
	int status;

	if (config_parse(argc, argv, &cfg, &err))
		return fail(&err);
	if (cfg.help) {
		fputs(config_usage(), stdout);
		return 0;
	}
	if (cfg.version) {
		printf("kestrel %s\n", KESTREL_VERSION);
		return 0;
	}
	/* Before any thread exists, so every thread inherits the mask and signals reach the
	 * event loop's signalfd. */
	if (terminal_block_signals(&err))
		return fail(&err);
	if (vm_create(&vm, &cfg, &err) || vm_load_kernel(&vm, &cfg, &err) ||
	    terminal_init(&term, &vm, &vm.uart, &err)) {
		vm_destroy(&vm);
		return fail(&err);
	}
	if (vm_start(&vm, &err)) {
		vm_request_exit(&vm, KESTREL_EXIT_INTERNAL, "%s", err.msg);
		status = vm_wait(&vm);
	} else {
		status = vm_wait(&vm);
	}
	terminal_restore(&term);
	fprintf(stderr, "\nkestrel: %s (exit status %d)\n", vm.exit_reason, status);
	vm_destroy(&vm);
	return status;
}
