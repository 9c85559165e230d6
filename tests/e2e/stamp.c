/*
 * stamp: sub-second timing helper for the nested test host (busybox date has no %N).
 *
 *   stamp now            print CLOCK_MONOTONIC as seconds.nanoseconds
 *   stamp [--] CMD...    run CMD; print each line of its stdout prefixed with the
 *                        seconds elapsed since just before CMD was started
 *                        ("12.345678 line"); CMD's stderr passes through untouched.
 *                        Exits with CMD's exit status (128+N when killed by signal N).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: stamp now | stamp [--] CMD [ARG...]\n");
		return 2;
	}
	if (strcmp(argv[1], "now") == 0) {
		printf("%.9f\n", now());
		return 0;
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
