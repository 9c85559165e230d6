/* What the PCI tests share: the identity of a test function and a 32-bit MMIO window. */
#pragma once

#include "devices/pci.h"

/* Any 32-bit window will do; this is the one x86 uses. */
#define TEST_MMIO32_BASE 0xc0000000ULL
#define TEST_MMIO32_SIZE 0x20000000ULL

extern const struct pci_ids test_ids;
