/* `kestrel -v`: what went through each virtio device and queue, printed when the VM ends. */
#ifndef KESTREL_DEVICE_REPORT_H
#define KESTREL_DEVICE_REPORT_H

struct vm;

/* One line per device and one per queue on fd; call once no vCPU or event loop runs. */
void device_report(const struct vm *vm, int fd);

#endif
