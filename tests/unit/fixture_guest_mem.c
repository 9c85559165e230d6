#include <criterion/criterion.h>

#include "fixture_guest_mem.h"

struct guest_mem gm;

void fx_guest_mem_map(uint64_t size)
{
	struct guest_mem_region layout = {.gpa = 0, .size = size};

	cr_assert_eq(guest_mem_map(&gm, &layout, 1, NULL), 0);
}

void fx_guest_mem_unmap(void)
{
	guest_mem_unmap(&gm);
}

uint8_t *host(uint64_t gpa)
{
	return gm.regions[0].host + gpa;
}
