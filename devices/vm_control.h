/* What a device may ask of the VM as a whole: to end it, or to log something about it. */
#ifndef KESTREL_DEVICES_VM_CONTROL_H
#define KESTREL_DEVICES_VM_CONTROL_H

struct vm_control {
	/* Ends the VM with the process exit status and a one-line reason. */
	void (*request_exit)(void *opaque, int status, const char *reason);
	/* Milliseconds since kestrel started. */
	double (*elapsed_ms)(void *opaque);
	void *opaque;
};

#endif
