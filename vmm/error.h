/* One-line error messages carried from library-style code up to main(). */
#ifndef KESTREL_ERROR_H
#define KESTREL_ERROR_H

#include <stdarg.h>

struct kerr {
	char msg[512];
};

/* Formats a message into err (if non-NULL); always returns -1 so callers can `return
 * kerr_set(...)`. */
int kerr_set(struct kerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
