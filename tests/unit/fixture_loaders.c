#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "fixture_loaders.h"

struct guest_mem gm;
struct kerr err;

void map_ram(void)
{
	struct guest_mem_region r[2];
	int n = x86_ram_layout(RAM_SIZE, r);

	cr_assert_eq(n, 1);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(guest_mem_map(&gm, r, n, &err), 0, "%s", err.msg);
}

void unmap_ram(void)
{
	guest_mem_unmap(&gm);
}

uint8_t *gp(uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&gm, gpa, len);

	cr_assert_not_null(p, "[0x%llx, +0x%llx) not in RAM", (unsigned long long)gpa,
			   (unsigned long long)len);
	return p;
}

bool all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Failed loads must not have written a byte: all of guest RAM is still zero. */
void assert_guest_untouched(void)
{
	cr_assert(all_zero(gp(0, RAM_SIZE), RAM_SIZE), "guest memory was written");
}

void assert_fails(int ret, const char *needle)
{
	cr_assert_eq(ret, -1);
	cr_log_info("error: %s", err.msg);
	cr_assert_not_null(strstr(err.msg, needle), "error \"%s\" lacks \"%s\"", err.msg, needle);
	cr_assert_null(strchr(err.msg, '\n'), "error is not one line: \"%s\"", err.msg);
	assert_guest_untouched();
}

uint8_t *pattern(size_t len, uint8_t seed)
{
	uint8_t *p = malloc(len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
	return p;
}

void check_e820(const struct boot_e820_entry *got, int n)
{
	struct boot_e820_entry want[8];
	int nw = x86_build_e820(RAM_SIZE, want, 8);

	cr_assert_eq(n, nw);
	cr_assert_eq(memcmp(got, want, sizeof(want[0]) * nw), 0, "e820 differs");
}
