/* Mapping the kernel and initrd files, with one-line errors that name the file. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/file_map.h"

static void assert_one_line(const struct kerr *err)
{
	cr_assert_neq(err->msg[0], '\0', "empty message");
	cr_assert_null(strchr(err->msg, '\n'), "message has a newline: '%s'", err->msg);
}

static void make_file(char *path, const void *data, size_t len)
{
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	if (len)
		cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void assert_cleared(const struct file_map *f)
{
	cr_assert_null(f->data, "data left set after a failure");
	cr_assert_eq(f->len, 0);
}

Test(file_map, nonexistent)
{
	struct file_map f = {.data = (const uint8_t *)"x", .len = 1};
	struct kerr err = {{0}};

	cr_assert_eq(file_map_open(&f, "/nonexistent/kestrel/bzImage", "kernel", &err), -1);
	assert_one_line(&err);
	assert_cleared(&f);
	cr_assert_not_null(strstr(err.msg, "kernel"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "/nonexistent/kestrel/bzImage"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
}

Test(file_map, directory)
{
	struct file_map f;
	struct kerr err = {{0}};

	cr_assert_eq(file_map_open(&f, "/tmp", "initrd", &err), -1);
	assert_one_line(&err);
	assert_cleared(&f);
	cr_assert_not_null(strstr(err.msg, "not a regular file"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "initrd"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "/tmp"), "%s", err.msg);
}

Test(file_map, char_device)
{
	struct file_map f;
	struct kerr err = {{0}};

	cr_assert_eq(file_map_open(&f, "/dev/zero", "kernel", &err), -1);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "not a regular file"), "%s", err.msg);
}

Test(file_map, empty_file)
{
	char path[] = "/tmp/kestrel-fm-XXXXXX";
	struct file_map f;
	struct kerr err = {{0}};

	make_file(path, NULL, 0);
	cr_assert_eq(file_map_open(&f, path, "kernel", &err), -1);
	unlink(path);
	assert_one_line(&err);
	assert_cleared(&f);
	cr_assert_not_null(strstr(err.msg, "is empty"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
}

Test(file_map, valid_file)
{
	char path[] = "/tmp/kestrel-fm-XXXXXX";
	static uint8_t content[10000];
	struct file_map f;
	struct kerr err = {{0}};

	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)(i * 31 + 7);
	make_file(path, content, sizeof(content));
	cr_assert_eq(file_map_open(&f, path, "kernel", &err), 0, "%s", err.msg);
	/* The mapping stays valid after the file is gone. */
	unlink(path);
	cr_assert_not_null(f.data);
	cr_assert_eq(f.len, sizeof(content));
	cr_assert_eq(memcmp(f.data, content, sizeof(content)), 0);
	file_map_close(&f);
	assert_cleared(&f);
	file_map_close(&f); /* twice is harmless */
}

Test(file_map, one_byte_file)
{
	char path[] = "/tmp/kestrel-fm-XXXXXX";
	struct file_map f;
	struct kerr err = {{0}};

	make_file(path, "Z", 1);
	cr_assert_eq(file_map_open(&f, path, "initrd", &err), 0, "%s", err.msg);
	unlink(path);
	cr_assert_eq(f.len, 1);
	cr_assert_eq(f.data[0], 'Z');
	file_map_close(&f);
}

Test(file_map, no_fd_leak)
{
	char path[] = "/tmp/kestrel-fm-XXXXXX";
	struct file_map f;
	struct kerr err = {{0}};
	int before = dup(0);

	cr_assert_geq(before, 0);
	close(before);
	make_file(path, "abc", 3);
	cr_assert_eq(file_map_open(&f, path, "kernel", &err), 0, "%s", err.msg);
	cr_assert_eq(file_map_open(&f, "/tmp", "kernel", &err), -1);
	unlink(path);
	int after = dup(0);
	cr_assert_eq(after, before, "file_map_open leaked an fd");
	close(after);
}

Test(file_map, permission_denied_names_file)
{
	char path[] = "/tmp/kestrel-fm-XXXXXX";
	struct file_map f;
	struct kerr err = {{0}};

	if (geteuid() == 0)
		cr_skip_test("root can read a mode-000 file");
	make_file(path, "abc", 3);
	chmod(path, 0);
	cr_assert_eq(file_map_open(&f, path, "kernel", &err), -1);
	unlink(path);
	assert_one_line(&err);
	cr_assert_not_null(strstr(err.msg, "Permission denied"), "%s", err.msg);
}
