/*
 * What the x86 loader tests share: a 64 MiB fake guest with the x86 RAM layout, and checks
 * that a rejected image failed with one clear line and left guest memory untouched.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (64 * MiB)
#define PAGE 4096ULL

extern struct guest_mem gm;
extern struct kerr err;
void map_ram(void);
void unmap_ram(void);
uint8_t *gp(uint64_t gpa, uint64_t len);
bool all_zero(const uint8_t *p, uint64_t len);
void assert_guest_untouched(void);
void assert_fails(int ret, const char *needle);
uint8_t *pattern(size_t len, uint8_t seed);
void check_e820(const struct boot_e820_entry *got, int n);
