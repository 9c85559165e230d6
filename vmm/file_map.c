#include "vmm/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_map_open(struct file_map *f, const char *path, const char *what, struct kerr *err)
{
	struct stat st;
	void *p;
	int fd;

	f->data = NULL;
	f->len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kerr_set(err, "cannot open %s '%s': %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		kerr_set(err, "cannot stat %s '%s': %s", what, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		kerr_set(err, "%s '%s' is not a regular file", what, path);
		goto fail;
	}
	if (st.st_size == 0) {
		kerr_set(err, "%s '%s' is empty", what, path);
		goto fail;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		kerr_set(err, "cannot read %s '%s': %s", what, path, strerror(errno));
		goto fail;
	}
	close(fd);
	f->data = p;
	f->len = (size_t)st.st_size;
	return 0;
fail:
	close(fd);
	return -1;
}

void file_map_close(struct file_map *f)
{
	if (f->data)
		munmap((void *)f->data, f->len);
	f->data = NULL;
	f->len = 0;
}
