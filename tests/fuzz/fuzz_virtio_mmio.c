/*
 * The virtio-mmio transport alone: every register of the window at every width and offset,
 * the status machine, queue set-up and QueueNotify, InterruptStatus/ACK, with the fake device
 * of fuzz_virtio_pci behind it.
 */
#include "tests/fuzz/fake_dev.h"
#include "tests/fuzz/harness.h"

const struct fuzz_target fuzz_target = {
    .create = fake_dev_create, .destroy = fake_dev_destroy, .mmio = true};
