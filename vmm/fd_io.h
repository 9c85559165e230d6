/* Whole-buffer read and write on a file descriptor: short transfers resumed, EINTR retried. */
#ifndef KESTREL_FD_IO_H
#define KESTREL_FD_IO_H

#include <stddef.h>

/* 0 when all n bytes moved; -1 on an error or end of file (errno is set by the call). */
int fd_read_full(int fd, void *buf, size_t n);
int fd_write_full(int fd, const void *buf, size_t n);

#endif
