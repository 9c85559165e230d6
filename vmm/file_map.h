/* Read-only mappings of the files the user names (kernel, initrd), with one-line errors. */
#ifndef KESTREL_FILE_MAP_H
#define KESTREL_FILE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

struct file_map {
	const uint8_t *data;
	size_t len;
};

/* what names the file in messages ("kernel", "initrd"). An empty file is an error. */
int file_map_open(struct file_map *f, const char *path, const char *what, struct kerr *err);
void file_map_close(struct file_map *f);

#endif
