/*
 * The virtio-pci transport alone: configuration space and capabilities (the PCI_CFG window,
 * MSI-X), every BAR 0 region at every width, with a small fake device behind it that serves
 * its queues like a real one (pops chains, writes into them, pushes, interrupts).
 */
#include "tests/fuzz/fake_dev.h"
#include "tests/fuzz/harness.h"

const struct fuzz_target fuzz_target = {.create = fake_dev_create, .destroy = fake_dev_destroy};
