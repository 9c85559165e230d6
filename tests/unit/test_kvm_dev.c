/* Opening /dev/kvm: each way it can fail gives one line the user can act on. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/kvm_dev.h"

static void assert_one_line(const struct kerr *err)
{
	cr_assert_neq(err->msg[0], '\0', "empty message");
	cr_assert_null(strchr(err->msg, '\n'), "message has a newline: '%s'", err->msg);
}

Test(kvm_dev, nonexistent_path)
{
	struct kerr err = {{0}};

	cr_assert_eq(kvm_dev_open("/nonexistent/kestrel-test/kvm", &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "/nonexistent/kestrel-test/kvm"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "kvm module"), "no hint in '%s'", err.msg);
}

Test(kvm_dev, not_a_kvm_device)
{
	struct kerr err = {{0}};
	int before = dup(0);

	cr_assert_geq(before, 0);
	close(before);
	cr_assert_eq(kvm_dev_open("/dev/null", &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "not a KVM device"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "/dev/null"), "%s", err.msg);
	/* The fd it opened was closed: the next one gets the same number back. */
	int after = dup(0);
	cr_assert_eq(after, before, "kvm_dev_open leaked an fd");
	close(after);
}

Test(kvm_dev, regular_file_is_not_kvm)
{
	char path[] = "/tmp/kestrel-kvm-XXXXXX";
	struct kerr err = {{0}};
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(kvm_dev_open(path, &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "not a KVM device"), "%s", err.msg);
	unlink(path);
}

Test(kvm_dev, permission_denied)
{
	char dir[] = "/tmp/kestrel-kvm-XXXXXX";
	char path[64];
	int pfd[2];
	pid_t pid;
	int status;

	if (geteuid() != 0)
		cr_skip_test("needs root to drop to another user");
	cr_assert_not_null(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/kvm", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(pipe(pfd), 0);

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct kerr err = {{0}};
		char code = 'E';

		close(pfd[0]);
		if (setgid(65534) == 0 && setuid(65534) == 0) {
			code = 'O';
			if (kvm_dev_open(path, &err) != -1)
				code = 'F';
		}
		if (write(pfd[1], &code, 1) != 1 || write(pfd[1], err.msg, strlen(err.msg)) < 0)
			_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	char buf[600] = {0};
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	unlink(path);
	rmdir(dir);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
	if (buf[0] == 'E')
		cr_skip_test("cannot drop privileges to uid 65534");
	cr_assert_eq(buf[0], 'O', "kvm_dev_open succeeded on a file it cannot open");
	const char *msg = buf + 1;
	cr_assert_neq(msg[0], '\0');
	cr_assert_null(strchr(msg, '\n'), "%s", msg);
	cr_assert_not_null(strstr(msg, "Permission denied"), "%s", msg);
	cr_assert_not_null(strstr(msg, "'kvm' group"), "no group hint in '%s'", msg);
	cr_assert_not_null(strstr(msg, path), "%s", msg);
}
