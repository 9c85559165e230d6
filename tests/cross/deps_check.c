// deps-check: uses each library kestrel links (libfdt, zlib, liburing, libseccomp) once,
// so a cross build proves its sysroot and static linking before kestrel itself is built,
// and a run on the target (the arm64 test host) proves the libraries work there.
// Prints one line per library and "deps-check: ok"; exits 1 on the first failure.
#include <errno.h>
#include <libfdt.h>
#include <liburing.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int fail(const char *what, int err)
{
	printf("deps-check: %s failed (%d)\n", what, err);
	return 1;
}

int main(void)
{
	// libfdt: build a tree with one property and read it back.
	static char fdt[256];
	int len, r = fdt_create_empty_tree(fdt, sizeof(fdt));
	if (r == 0)
		r = fdt_setprop_string(fdt, 0, "compatible", "kestrel,deps-check");
	const char *p = r == 0 ? fdt_getprop(fdt, 0, "compatible", &len) : NULL;
	if (!p || strcmp(p, "kestrel,deps-check") != 0)
		return fail("libfdt", r);
	printf("deps-check: libfdt ok (%d-byte tree)\n", fdt_totalsize(fdt));

	// zlib: compress and inflate a buffer.
	const char msg[] = "kestrel kestrel kestrel kestrel";
	unsigned char z[128], back[64];
	uLongf zlen = sizeof(z), blen = sizeof(back);
	if ((r = compress(z, &zlen, (const Bytef *)msg, sizeof(msg))) != Z_OK ||
	    (r = uncompress(back, &blen, z, zlen)) != Z_OK || memcmp(back, msg, sizeof(msg)) != 0)
		return fail("zlib", r);
	printf("deps-check: zlib %s ok\n", zlibVersion());

	// liburing: a ring and one NOP through it.
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	if ((r = io_uring_queue_init(4, &ring, 0)) < 0)
		return fail("io_uring_queue_init", r);
	io_uring_prep_nop(io_uring_get_sqe(&ring));
	if ((r = io_uring_submit_and_wait(&ring, 1)) < 0 ||
	    (r = io_uring_peek_cqe(&ring, &cqe)) < 0)
		return fail("io_uring nop", r);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	printf("deps-check: liburing ok\n");

	// libseccomp: a filter that makes dup fail with EPERM (getppid would not do:
	// glibc returns its raw result, -EPERM, without setting errno), loaded into this process.
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return fail("seccomp_init", 0);
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(dup), 0)) < 0 ||
	    (r = seccomp_load(ctx)) < 0)
		return fail("seccomp rule/load", r);
	seccomp_release(ctx);
	errno = 0;
	if (dup(1) != -1 || errno != EPERM)
		return fail("seccomp filter (dup still allowed)", errno);
	const struct scmp_version *v = seccomp_version();
	printf("deps-check: libseccomp %u.%u.%u ok\n", v->major, v->minor, v->micro);
	printf("deps-check: ok\n");
	return 0;
}
