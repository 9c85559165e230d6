/*
 * stamp: sub-second timing helper for the nested test host (busybox date has no %N).
 *
 *   stamp now            print CLOCK_MONOTONIC as seconds.nanoseconds
 *   stamp [--] CMD...    run CMD; print each line of its stdout prefixed with the
 *                        seconds elapsed since just before CMD was started
 *                        ("12.345678 line"); CMD's stderr passes through untouched.
 *                        Exits with CMD's exit status (128+N when killed by signal N).
 *   stamp scrub MB       fault in MB MiB of fresh memory (huge pages where the kernel has
 *                        them) and free it, printing the milliseconds it took.
 *
 * Why scrub: the test host is emulated (TCG), and the emulator tracks the pages it has
 * translated guest code from. After a VM exits, the pages its kernel ran in go back to the
 * host's free lists still tracked, and the first write to each (the host kernel zeroing it
 * for its next user) costs ~2 s in all for one VM (docs/performance.md, "A VM's pages cost
 * the next VM"). Whichever VMM allocates them next pays that inside its timed start-up;
 * real hardware has no such cost. Scrubbing before each timed run pays it outside.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(char **argv)
{
	int pfd[2];
	double t0;
	pid_t pid;
	FILE *in;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status;
	int at_line_start = 1;

	if (pipe(pfd) != 0) {
		perror("stamp: pipe");
		return 125;
	}
	t0 = now();
	pid = fork();
	if (pid < 0) {
		perror("stamp: fork");
		return 125;
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "stamp: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	in = fdopen(pfd[0], "r");
	if (!in) {
		perror("stamp: fdopen");
		return 125;
	}
	/* The stamp is taken when a whole line (up to \n) has arrived. */
	while ((n = getline(&line, &cap, in)) > 0) {
		if (at_line_start)
			printf("%.6f ", now() - t0);
		fwrite(line, 1, (size_t)n, stdout);
		at_line_start = line[n - 1] == '\n';
		fflush(stdout);
	}
	free(line);
	fclose(in);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("stamp: waitpid");
			return 125;
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Freed pages are reused most recently freed first, so MB a little over the last VM's
 * memory reaches all of its pages. Writing one byte per 4 KiB page is enough: the kernel
 * zeroes each page it hands out, 4 KiB or 2 MiB, whole. */
static int scrub(const char *arg)
{
	const size_t huge = 2u << 20;
	char *end;
	unsigned long mb = strtoul(arg, &end, 10);
	size_t len, off;
	double t0 = now();
	char *map, *p;

	if (*arg == '\0' || *end != '\0' || mb == 0 || mb > (1ul << 20)) {
		fprintf(stderr, "stamp: scrub takes a size in MiB (1 to 1048576), not '%s'\n", arg);
		return 2;
	}
	len = (size_t)mb << 20;
	map = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		perror("stamp: scrub: mmap");
		return 1;
	}
	p = (char *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise(p, len, MADV_HUGEPAGE); /* best effort: without THP it scrubs 4 KiB pages */
	for (off = 0; off < len; off += 4096)
		p[off] = 1;
	munmap(map, len + huge);
	printf("scrubbed %lu MiB in %.0f ms\n", mb, (now() - t0) * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: stamp now | stamp scrub MB | stamp [--] CMD [ARG...]\n");
		return 2;
	}
	if (strcmp(argv[1], "now") == 0) {
		printf("%.9f\n", now());
		return 0;
	}
	if (strcmp(argv[1], "scrub") == 0) {
		if (argc != 3) {
			fprintf(stderr, "stamp: scrub takes one argument, a size in MiB\n");
			return 2;
		}
		return scrub(argv[2]);
	}
	if (strcmp(argv[1], "--") == 0) {
		if (argc < 3) {
			fprintf(stderr, "stamp: no command after --\n");
			return 2;
		}
		return run(argv + 2);
	}
	return run(argv + 1);
}
