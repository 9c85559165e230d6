#include "fixture_pci.h"

const struct pci_ids test_ids = {
    .vendor = 0x1af4,
    .device = 0x1041,
    .subsys_vendor = 0x1af4,
    .subsys = 0x0001,
    .class_code = 0x020000,
    .revision = 0x01,
    .irq_pin = 1,
};
