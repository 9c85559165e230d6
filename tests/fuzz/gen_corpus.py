#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus and the issue-7 regression inputs.

    tests/fuzz/gen_corpus.py [OUT_DIR]     (default: tests/fuzz, i.e. corpus/ and regressions/)

Seeds are what a Linux driver does (reset, ACK, DRIVER, features, FEATURES_OK, MSI-X, queue
set-up, DRIVER_OK, a few real requests), so the fuzzer starts deep. Regressions replay the
attacks of issue 7 that a single thread can express. The format is harness.h's: a 4 KiB guest
RAM image, then ops. Output is deterministic, so the files in git are this script's output.
"""
import os
import struct
import sys

IMG_SIZE = 4096  # FUZZ_IMG_SIZE
(CFG_READ, CFG_WRITE, BAR_READ, BAR_WRITE, STEP, MEM_WRITE, STATUS, QUEUE, KICK, REPEAT,
 FEATURES, TARGET) = range(12)  # enum fuzz_op

# BAR 0 (virtio/pci.h) and the common config (linux/virtio_pci.h).
COMMON, ISR, DEVCFG, NOTIFY, MSIX_TABLE, PBA = 0x0, 0x1000, 0x2000, 0x3000, 0x4000, 0x6000
DEVICE_FEATURE_SELECT, DEVICE_FEATURE, MSIX_CONFIG, NUM_QUEUES = 0x00, 0x04, 0x10, 0x12
DEVICE_STATUS, QUEUE_SELECT, QUEUE_SIZE, QUEUE_MSIX_VECTOR = 0x14, 0x16, 0x18, 0x1a
QUEUE_ENABLE = 0x1c
# Config space: the capabilities every device here gets, in the order virtio/pci.c adds them.
CFG_WINDOW = 0x84  # VIRTIO_PCI_CAP_PCI_CFG: bar +4, offset +8, length +12, data +16
MSIX_CAP = 0x98
ACK, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
VERSION_1, EVENT_IDX, INDIRECT = 1 << 32, 1 << 29, 1 << 28

QSIZE = 16
RING_BASE = 0x10000  # rings, 0x1000 per queue, outside the image so mutations keep them valid
PAYLOAD = 0x100  # readable buffer contents live in the image, from here
BUFS = 0x30000  # writable buffers


class Driver:
    """A guest driver writing ops; rings and descriptors go to RAM through MEM_WRITE."""

    def __init__(self, nqueues):
        self.img = bytearray(IMG_SIZE)
        self.ops = bytearray()
        self.payload = PAYLOAD
        self.bufs = BUFS
        self.q = [dict(size=QSIZE, desc=RING_BASE + 0x1000 * i, next=0, idx=0)
                  for i in range(nqueues)]

    def op(self, code, fmt='', *args):
        self.ops += struct.pack('<B' + fmt, code, *args)

    def cfg_write(self, off, width, val):
        self.op(CFG_WRITE, 'HBI', off, width.bit_length() - 1, val)

    def bar_read(self, off, width=4):
        self.op(BAR_READ, 'HB', off, width.bit_length() - 1)

    def bar_write(self, off, width, val):
        self.op(BAR_WRITE, 'HBQ', off, width.bit_length() - 1, val)

    def mem(self, gpa, data):
        self.op(MEM_WRITE, 'IH', gpa, len(data))
        self.ops += data

    def step(self, n=1):
        for _ in range(n):
            self.op(STEP)

    def status(self, v):
        self.op(STATUS, 'B', v)

    def features(self, f):
        self.op(FEATURES, 'Q', f)

    def target(self, sub, data=b''):
        self.op(TARGET, 'BH', sub, len(data))
        self.ops += data

    def repeat(self, n):
        self.op(REPEAT, 'H', n)

    def kick(self, q):
        self.op(KICK, 'H', q)

    def ring(self, q):
        r = self.q[q]
        return r['desc'], r['desc'] + 16 * r['size'], r['desc'] + 16 * r['size'] + 0x800

    def setup_queue(self, q, size=QSIZE, vector=None):
        self.q[q]['size'] = size
        desc, avail, used = self.ring(q)
        if vector is not None:
            self.bar_write(COMMON + QUEUE_SELECT, 2, q)
            self.bar_write(COMMON + QUEUE_MSIX_VECTOR, 2, vector)
        self.op(QUEUE, 'HHIIIB', q, size, desc, avail, used, 1)

    def data(self, blob):
        """Readable bytes in the image; returns their guest address."""
        gpa = self.payload
        self.img[gpa:gpa + len(blob)] = blob
        self.payload += (len(blob) + 15) & ~15
        return gpa

    def space(self, n):
        gpa = self.bufs
        self.bufs += (n + 15) & ~15
        return gpa

    def post(self, q, bufs, kick=True):
        """bufs: [(gpa, len, writable)] made one chain and made available."""
        r = self.q[q]
        desc, avail, _ = self.ring(q)
        head = r['next']
        blob = b''
        for i, (gpa, n, w) in enumerate(bufs):
            nxt = (head + i + 1) % r['size']
            flags = (F_WRITE if w else 0) | (F_NEXT if i + 1 < len(bufs) else 0)
            blob += struct.pack('<QIHH', gpa, n, flags, nxt if i + 1 < len(bufs) else 0)
        self.mem(desc + 16 * head, blob)
        r['next'] = (head + len(bufs)) % r['size']
        self.mem(avail + 4 + 2 * (r['idx'] % r['size']), struct.pack('<H', head))
        r['idx'] = (r['idx'] + 1) & 0xffff
        self.mem(avail + 2, struct.pack('<H', r['idx']))
        if kick:
            self.kick(q)

    def msix(self, nvec):
        self.cfg_write(MSIX_CAP + 2, 2, 0x8000)  # MSI-X enable
        for v in range(nvec):
            e = MSIX_TABLE + 16 * v
            self.bar_write(e, 8, 0xfee00000)
            self.bar_write(e + 8, 4, 0x4020 + v)
            self.bar_write(e + 12, 4, 0)  # unmask
        self.bar_write(COMMON + MSIX_CONFIG, 2, 0)

    def bring_up(self, features, nqueues=None, size=QSIZE, msix=True):
        """Linux's virtio_pci probe order, up to DRIVER_OK."""
        nq = len(self.q) if nqueues is None else nqueues
        self.status(0)
        self.status(ACK)
        self.status(ACK | DRIVER)
        for sel in (0, 1):
            self.bar_write(COMMON + DEVICE_FEATURE_SELECT, 4, sel)
            self.bar_read(COMMON + DEVICE_FEATURE)
        self.features(features)
        self.status(ACK | DRIVER | FEATURES_OK)
        self.bar_read(COMMON + DEVICE_STATUS, 1)
        if msix:
            self.msix(nq + 1)
        self.bar_read(COMMON + NUM_QUEUES, 2)
        for q in range(nq):
            self.setup_queue(q, size, q + 1 if msix else None)
        self.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
        self.step()

    def window_write(self, bar_off, width, val):
        """A BAR write through the VIRTIO_PCI_CAP_PCI_CFG window (firmware's way)."""
        self.cfg_write(CFG_WINDOW + 4, 1, 0)
        self.cfg_write(CFG_WINDOW + 8, 4, bar_off)
        self.cfg_write(CFG_WINDOW + 12, 4, width)
        self.cfg_write(CFG_WINDOW + 16, width, val)

    def bytes(self):
        return bytes(self.img) + bytes(self.ops)


# ---- fuzz_virtio_pci: the fake device (2 queues, fills writable buffers) ----

FAKE_FEATURES = VERSION_1 | EVENT_IDX | INDIRECT | (1 << 3) | (1 << 35)


def pci_seeds():
    d = Driver(2)
    d.bring_up(FAKE_FEATURES)
    for q in (0, 1):
        d.post(q, [(d.space(64), 64, True)])
        d.post(q, [(d.data(b'hdr'), 3, False), (d.space(32), 32, True)])
    d.step(2)
    d.bar_read(ISR, 1)
    d.bar_read(DEVCFG, 8)
    d.bar_write(DEVCFG + 2, 2, 0x1234)
    d.bar_read(PBA, 8)
    d.status(0)
    d.step()
    yield 'bringup', d

    d = Driver(2)  # INTx, through the config window, odd widths
    d.bring_up(FAKE_FEATURES, msix=False)
    d.post(0, [(d.space(16), 16, True)])
    d.step()
    d.window_write(ISR, 1, 0)
    d.cfg_write(CFG_WINDOW + 16, 1, 0)
    d.bar_read(ISR, 1)
    d.bar_read(COMMON + 3, 1)
    d.bar_read(COMMON + DEVICE_FEATURE, 8)
    d.cfg_write(0x10, 4, 0xffffffff)  # BAR sizing
    d.op(CFG_READ, 'HB', 0x10, 2)
    d.cfg_write(0x04, 2, 0x0000)  # memory decoding off
    d.bar_read(COMMON + DEVICE_STATUS, 1)
    yield 'intx-window', d


def lifecycle_regressions(driver):
    """Issue 7's class 2 on either transport (driver: Driver or MmioDriver)."""
    d = driver(2)  # DRIVER_OK cleared without a reset, then set again
    d.bring_up(FAKE_FEATURES)
    d.status(ACK | DRIVER | FEATURES_OK)
    d.step()
    d.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    d.step()
    yield 'reactivate', d

    d = driver(2)  # FEATURES_OK cleared, features changed on a live device
    d.bring_up(FAKE_FEATURES)
    d.status(ACK | DRIVER | DRIVER_OK)
    d.features(VERSION_1)
    d.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    d.step()
    yield 'renegotiate', d


def pci_regressions():
    yield from lifecycle_regressions(Driver)

    d = Driver(2)  # class 4: reset through the window, then a new queue before the loop runs
    d.bring_up(FAKE_FEATURES)
    d.post(0, [(d.space(64), 64, True)])
    d.window_write(COMMON + DEVICE_STATUS, 1, 0)
    d.q[0]['desc'] = RING_BASE + 0x8000
    d.setup_queue(0, 16)
    d.step()
    d.kick(0)
    d.step()
    yield 'reset-window-requeue', d

    d = Driver(2)  # class 5: MSI-X vector writes on a live device, no event-loop pass
    d.bring_up(FAKE_FEATURES)
    d.bar_write(COMMON + QUEUE_SELECT, 2, 0)
    d.bar_write(COMMON + QUEUE_MSIX_VECTOR, 2, 2)
    d.repeat(16000)
    d.step()
    yield 'msix-vector-spam', d

    d = Driver(2)  # class 1 at the transport: a queue larger than the device's maximum
    d.bring_up(FAKE_FEATURES, size=1024)
    yield 'queue-too-big', d


# ---- fuzz_virtio_blk ----

BLK_FEATURES = VERSION_1 | EVENT_IDX | INDIRECT | (1 << 2) | (1 << 6) | (1 << 9) | (1 << 11)
BLK_T_IN, BLK_T_OUT, BLK_T_FLUSH, BLK_T_GET_ID = 0, 1, 4, 8
BLK_T_DISCARD, BLK_T_WRITE_ZEROES = 11, 13


def blk_req(d, typ, sector, data=None, inlen=0):
    hdr = d.data(struct.pack('<IIQ', typ, 0, sector))
    bufs = [(hdr, 16, False)]
    if data is not None:
        bufs.append((d.data(data), len(data), False))
    if inlen:
        bufs.append((d.space(inlen), inlen, True))
    bufs.append((d.space(1), 1, True))
    return bufs


def blk_seeds():
    d = Driver(1)
    d.bring_up(BLK_FEATURES)
    d.bar_read(DEVCFG, 8)  # capacity
    d.post(0, blk_req(d, BLK_T_OUT, 1, bytes(range(256)) * 2))
    d.post(0, blk_req(d, BLK_T_IN, 1, inlen=512))
    d.post(0, blk_req(d, BLK_T_FLUSH, 0))
    d.post(0, blk_req(d, BLK_T_GET_ID, 0, inlen=20))
    d.step(2)
    d.target(0)
    d.step()
    yield 'bringup-rw', d

    d = Driver(1)
    d.bring_up(BLK_FEATURES | (1 << 13) | (1 << 14))
    d.post(0, blk_req(d, BLK_T_DISCARD, 0, struct.pack('<QII', 0, 8, 0)))
    d.post(0, blk_req(d, BLK_T_WRITE_ZEROES, 0, struct.pack('<QII', 8, 8, 1)))
    d.post(0, blk_req(d, BLK_T_IN, 127, inlen=1024))  # past the end
    d.post(0, blk_req(d, 99, 0, inlen=8))  # unsupported
    d.step(2)
    d.bar_write(DEVCFG + 0x20, 1, 0)  # writeback (CONFIG_WCE)
    d.status(0)
    d.step()
    yield 'discard-errors', d


def blk_regressions():
    d = Driver(1)  # class 2: DRIVER_OK cleared and set again with requests in flight
    d.bring_up(BLK_FEATURES)
    d.post(0, blk_req(d, BLK_T_OUT, 0, bytes(512)))
    d.post(0, blk_req(d, BLK_T_IN, 0, inlen=512))
    d.step()  # submitted: with io_uring they are in flight now
    d.status(ACK | DRIVER | FEATURES_OK)
    d.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    d.step(4)
    d.post(0, blk_req(d, BLK_T_IN, 0, inlen=512))
    d.step(4)
    d.target(0)
    yield 'reactivate-inflight', d

    d = Driver(1)  # Linux's queue size: activate sizes 256 requests' iovecs at once (~1 MiB)
    d.bring_up(BLK_FEATURES, size=256)
    d.post(0, blk_req(d, BLK_T_IN, 0, inlen=512))
    d.step()
    d.status(0)
    d.bring_up(BLK_FEATURES, size=256)
    d.step()
    yield 'activate-queue-256', d


# ---- fuzz_virtio_net: rx0 tx0 rx1 tx1 ctrl ----

NET_MRG_RXBUF, NET_STATUS, NET_CTRL_VQ, NET_CTRL_RX, NET_MQ = 15, 16, 17, 18, 22
NET_FEATURES = (VERSION_1 | EVENT_IDX | (1 << 5) | (1 << NET_MRG_RXBUF) | (1 << NET_STATUS) |
                (1 << NET_CTRL_VQ) | (1 << NET_CTRL_RX) | (1 << NET_MQ))
NET_HDR = bytes(12)
FRAME = (b'\xff' * 6 + b'\x52\x54\x00\x12\x34\x56' + b'\x08\x06' + bytes(range(46)))
TAP_FRAME, TAP_DRAIN = 0, 2  # target sub-ops for pair 0


def net_seeds():
    d = Driver(5)
    d.bring_up(NET_FEATURES)
    d.bar_read(DEVCFG, 8)  # mac
    for _ in range(4):
        d.post(0, [(d.space(1526), 1526, True)], kick=False)
    d.kick(0)
    d.post(1, [(d.data(NET_HDR + FRAME), 12 + len(FRAME), False)])
    d.step(2)
    d.target(TAP_DRAIN)
    d.target(TAP_FRAME, NET_HDR + FRAME)
    d.target(TAP_FRAME, NET_HDR + FRAME * 20)
    d.step(3)
    # Control queue: VQ_PAIRS_SET 2, RX_PROMISC on.
    d.post(4, [(d.data(struct.pack('<BBH', 4, 0, 2)), 4, False), (d.space(1), 1, True)])
    d.post(4, [(d.data(struct.pack('<BBB', 0, 0, 1)), 3, False), (d.space(1), 1, True)])
    d.step(2)
    d.post(2, [(d.space(1526), 1526, True)])
    d.target(TAP_FRAME | 1, NET_HDR + FRAME)
    d.step(2)
    yield 'bringup-mq-ctrl', d

    d = Driver(5)  # no MRG_RXBUF, no control queue, one pair
    d.bring_up(VERSION_1 | (1 << 5), nqueues=2)
    d.post(0, [(d.space(12), 12, True), (d.space(100), 100, True)])
    d.target(TAP_FRAME, NET_HDR + FRAME)
    d.target(TAP_FRAME, NET_HDR + FRAME * 30)  # too big: dropped
    d.step(3)
    d.post(1, [(d.data(NET_HDR), 12, False), (d.data(FRAME), len(FRAME), False)])
    d.step(2)
    yield 'plain', d


def net_regressions():
    d = Driver(5)  # class 1: MRG_RXBUF, RX queue 0 sized 1024 (max 256), 1-byte buffers
    d.status(0)
    d.status(ACK)
    d.status(ACK | DRIVER)
    d.features(VERSION_1 | (1 << NET_MRG_RXBUF))
    d.status(ACK | DRIVER | FEATURES_OK)
    d.setup_queue(0, 1024)
    d.setup_queue(1, QSIZE)
    d.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    d.step()
    # One 12-byte buffer (the header), then 1023 one-byte buffers, each its own chain.
    desc, avail, _ = d.ring(0)
    one = d.space(1024)
    d.mem(desc, b''.join(struct.pack('<QIHH', one + i, 12 if i == 0 else 1, F_WRITE, 0)
                         for i in range(1024)))
    d.mem(avail + 4, b''.join(struct.pack('<H', i) for i in range(1024)))
    d.mem(avail + 2, struct.pack('<H', 1024))
    d.kick(0)
    d.step()
    d.target(TAP_FRAME, NET_HDR + FRAME * 20)
    d.step(3)
    yield 'mrg-rxbuf-queue-1024', d


# ---- fuzz_virtio_console: p0 rx=0 tx=1, ctrl rx=2 tx=3, p1 rx=4 tx=5 ----

CON_FEATURES = VERSION_1 | EVENT_IDX | (1 << 1)
CON_CONNECT, CON_SEND, CON_HANGUP, CON_TYPE, CON_READ = range(5)
DEVICE_READY, PORT_READY, CONSOLE_PORT, PORT_OPEN = 0, 3, 4, 6


def ctrl(d, port, event, value):
    d.post(3, [(d.data(struct.pack('<IHH', port, event, value)), 8, False)])


def console_seeds():
    d = Driver(6)
    d.bring_up(CON_FEATURES)
    d.bar_read(DEVCFG, 8)
    for _ in range(6):
        d.post(2, [(d.space(64), 64, True)], kick=False)
    d.kick(2)
    ctrl(d, 0, DEVICE_READY, 1)
    d.step(2)
    for port in (0, 1):
        ctrl(d, port, PORT_READY, 1)
        d.post(2 * port + 2 * (port > 0), [(d.space(256), 256, True)])
    ctrl(d, 0, PORT_OPEN, 1)
    ctrl(d, 1, PORT_OPEN, 1)
    d.step(2)
    d.target(CON_CONNECT)
    d.step(2)
    d.target(CON_SEND, b'hello port\n')
    d.target(CON_TYPE, b'typed\n')
    d.step(3)
    d.post(1, [(d.data(b'console out\n'), 12, False)])
    d.post(5, [(d.data(b'port out\n'), 9, False)])
    d.step(2)
    d.target(CON_READ)
    d.target(CON_HANGUP)
    d.step(2)
    d.status(0)
    d.step()
    yield 'bringup-ports', d


# ---- fuzz_virtio_mmio: the same fake device behind a virtio-mmio window ----

# linux/virtio_mmio.h
M_MAGIC, M_VERSION, M_DEVICE_ID, M_DEV_FEATURES, M_DEV_FEATURES_SEL = 0x000, 0x004, 0x008, 0x010, 0x014
M_QUEUE_SEL, M_QUEUE_NUM_MAX, M_QUEUE_NUM, M_QUEUE_READY = 0x030, 0x034, 0x038, 0x044
M_QUEUE_NOTIFY, M_INT_STATUS, M_INT_ACK, M_STATUS = 0x050, 0x060, 0x064, 0x070
M_SHM_SEL, M_SHM_LEN_LOW, M_CONFIG_GEN, M_CONFIG = 0x0ac, 0x0b0, 0x0fc, 0x100


class MmioDriver(Driver):
    """Linux's virtio_mmio probe order; BAR_* ops address the window."""

    def bring_up(self, features, nqueues=None, size=QSIZE, msix=False):
        nq = len(self.q) if nqueues is None else nqueues
        for reg in (M_MAGIC, M_VERSION, M_DEVICE_ID):
            self.bar_read(reg)
        self.status(0)
        self.status(ACK)
        self.status(ACK | DRIVER)
        for sel in (0, 1):
            self.bar_write(M_DEV_FEATURES_SEL, 4, sel)
            self.bar_read(M_DEV_FEATURES)
        self.features(features)
        self.status(ACK | DRIVER | FEATURES_OK)
        self.bar_read(M_STATUS)
        for q in range(nq):
            self.bar_write(M_QUEUE_SEL, 4, q)
            self.bar_read(M_QUEUE_READY)
            self.bar_read(M_QUEUE_NUM_MAX)
            self.setup_queue(q, size)
        self.status(ACK | DRIVER | FEATURES_OK | DRIVER_OK)
        self.step()

    def ack_interrupts(self):
        self.bar_read(M_INT_STATUS)
        self.bar_write(M_INT_ACK, 4, 3)


def mmio_seeds():
    d = MmioDriver(2)
    d.bring_up(FAKE_FEATURES)
    for q in (0, 1):
        d.post(q, [(d.space(64), 64, True)])
        d.post(q, [(d.data(b'hdr'), 3, False), (d.space(32), 32, True)])
    d.step(2)
    d.ack_interrupts()
    d.bar_read(M_CONFIG_GEN)
    d.bar_read(M_CONFIG, 8)
    d.bar_write(M_CONFIG + 2, 2, 0x1234)
    d.bar_read(M_CONFIG + 7, 1)
    d.status(0)
    d.step()
    d.bar_read(M_STATUS)
    yield 'bringup', d

    d = MmioDriver(2)  # what a driver may not do: odd widths, early queues, absent queues
    d.bar_read(M_MAGIC, 1)
    d.bar_read(M_DEVICE_ID + 2, 2)
    d.bar_read(M_DEV_FEATURES, 8)
    d.bar_read(M_QUEUE_NOTIFY)  # write-only
    d.bar_read(M_INT_ACK)  # write-only
    d.bar_write(M_SHM_SEL, 4, 0)
    d.bar_read(M_SHM_LEN_LOW)
    d.status(ACK | DRIVER)
    d.setup_queue(0)  # before FEATURES_OK
    d.bar_write(M_QUEUE_SEL, 4, 7)
    d.bar_write(M_QUEUE_READY, 4, 1)  # a queue the device does not have
    d.bar_write(M_STATUS, 1, 0xff)
    d.bar_write(M_QUEUE_NOTIFY + 1, 2, 0)
    d.kick(9)
    d.step()
    yield 'misuse', d


def mmio_regressions():
    yield from lifecycle_regressions(MmioDriver)

    d = MmioDriver(2)  # class 4: reset, then a new queue before the loop runs
    d.bring_up(FAKE_FEATURES)
    d.post(0, [(d.space(64), 64, True)])
    d.status(0)
    d.q[0]['desc'] = RING_BASE + 0x8000
    d.setup_queue(0, 16)
    d.kick(0)
    d.step()
    yield 'reset-requeue', d

    d = MmioDriver(2)  # class 1: a queue larger than the device's maximum
    d.bring_up(FAKE_FEATURES, size=1024)
    d.post(0, [(d.space(64), 64, True)])
    d.step()
    yield 'queue-too-big', d


TARGETS = {
    'fuzz_virtio_pci': (pci_seeds, pci_regressions),
    'fuzz_virtio_mmio': (mmio_seeds, mmio_regressions),
    'fuzz_virtio_blk': (blk_seeds, blk_regressions),
    'fuzz_virtio_net': (net_seeds, net_regressions),
    'fuzz_virtio_console': (console_seeds, lambda: iter(())),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for target, (seeds, regressions) in TARGETS.items():
        for kind, gen in (('corpus', seeds), ('regressions', regressions)):
            folder = os.path.join(out, kind, target)
            os.makedirs(folder, exist_ok=True)
            for name, d in gen():
                with open(os.path.join(folder, name), 'wb') as f:
                    f.write(d.bytes())


if __name__ == '__main__':
    main()
