# rig-lib.sh: helpers for scenarios running INSIDE the nested test host (busybox sh).
# host-init sources it before running /scenario.sh. Results travel to the rig on the
# build machine over the second serial port (/dev/ttyS1) as delimited records:
#   =KRIG= BEGIN <name>
#   =KRIG= STATUS <exit status>        =KRIG= TIME <wall seconds>
#   =KRIG= FILE stdout|stderr          followed by the file, base64-encoded
#   =KRIG= END <name>
# plus "=KRIG= NOTE <text>", "=KRIG= SCENARIO-EXIT <n>" and "=KRIG= DONE".

export PATH=/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
RIG_OUT=${RIG_OUT:-/dev/ttyS1}

# Files inside the host (x86 defaults; an arm64 host's /etc/testhost.env overrides some).
IMAGES=/images
VMLINUZ=$IMAGES/vmlinuz
VMLINUX=$IMAGES/vmlinux
GUEST_INITRD=$IMAGES/guest-initramfs.cpio.gz
GUEST_DISK=$IMAGES/guest-disk.ext4
GUEST_CMDLINE="console=ttyS0 reboot=k panic=1"
KESTREL=/usr/local/bin/kestrel
# The VMM under test: kestrel, or qemu-kestrel (QEMU behind kestrel's CLI) for rig checks.
VMM=${VMM:-kestrel}
RIG_WORK=${RIG_WORK:-/tmp/rig}  # bench_startup.sh sources this on the build machine
mkdir -p "$RIG_WORK"

# Variables the rig passed with --env (KEY=VALUE lines).
[ -f /etc/rig.env ] && . /etc/rig.env

rig_emit() { printf '=KRIG= %s\n' "$*" > "$RIG_OUT"; }
rig_note() { rig_emit "NOTE $*"; echo "rig: $*"; }

# QEMU as a KVM VMM, the way the comparison runs use it. A word list (use it unquoted)
# so it also works under run_vmm/timeout/strace/stamp, which need a program, not a function.
QEMU_KVM="qemu-system-x86_64 -accel kvm -cpu host -nodefaults -display none -no-reboot -L /usr/share/qemu -serial stdio"
# What differs in an arm64 test host (guest-images/build-testhost.sh writes it there):
# RIG_OUT (a virtio serial port), VMLINUX (none), QEMU_KVM (qemu-system-aarch64 -M virt).
[ -f /etc/testhost.env ] && . /etc/testhost.env
# QEMU's serial console: the PC's 16550 (ttyS0), or -M virt's PL011 (kestrel's arm64 UART is a
# 16550, ttyS0: a QEMU run of the same guest renames console=).
QEMU_CONSOLE=ttyS0
[ "$(uname -m)" = aarch64 ] && QEMU_CONSOLE=ttyAMA0
[ -c "$RIG_OUT" ] || RIG_OUT=/dev/console

# _rig_record NAME STATUS SECONDS OUTFILE ERRFILE: send one record to the rig.
_rig_record() {
    {
        printf '=KRIG= BEGIN %s\n=KRIG= STATUS %s\n=KRIG= TIME %s\n' "$1" "$2" "$3"
        printf '=KRIG= FILE stdout\n'; base64 < "$4"
        printf '=KRIG= FILE stderr\n'; base64 < "$5"
        printf '=KRIG= END %s\n' "$1"
    } > "$RIG_WORK/record"
    cat "$RIG_WORK/record" > "$RIG_OUT"
}

# run_vmm [-t SECONDS] NAME CMD...: run CMD (stdin from /dev/null) with stdout and stderr
# captured, at most SECONDS (default 90; a timeout shows as status 143, or 137 when
# the VMM had to be killed), then send a
# record with its exit status and wall time. Returns CMD's status. Also echoes a one-line
# summary to the host console.
run_vmm() {
    local limit=90 name t0 t1 st
    if [ "$1" = -t ]; then limit=$2; shift 2; fi
    name=$1; shift
    t0=$(stamp now)
    # TERM first (a VMM may clean up), KILL 5 s later if it ignores TERM.
    timeout -k 5 "$limit" "$@" > "$RIG_WORK/$name.out" 2> "$RIG_WORK/$name.err" < /dev/null
    st=$?
    t1=$(stamp now)
    _rig_record "$name" "$st" "$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")" \
        "$RIG_WORK/$name.out" "$RIG_WORK/$name.err"
    echo "rig: $name: status $st ($(wc -c < "$RIG_WORK/$name.out") bytes of stdout)"
    return $st
}

# rig_put NAME FILE: send a file as a record (status 0), e.g. an strace log.
rig_put() {
    : > "$RIG_WORK/empty"
    _rig_record "$1" 0 0 "$2" "$RIG_WORK/empty"
}

# first_kvm_run NAME CMD...: start CMD under `strace -f --seccomp-bpf -ttt -e
# trace=execve,ioctl`, and kill it as soon as its first KVM_RUN ioctl shows up (tracing every
# later exit would take minutes here). Sends record NAME holding the execve line and the
# first KVM_RUN line of the strace log ("PID SECONDS call..."). --seccomp-bpf: only the two
# traced calls stop the VMM; without it every system call makes two ptrace stops, which
# here inflated kestrel's figure 3-7x over its own clock (docs/performance.md).
first_kvm_run() {
    local name=$1 f sp vp n=0
    shift
    f=$RIG_WORK/strace-$name.txt
    rm -f "$f"
    strace -f --seccomp-bpf -ttt -e trace=execve,ioctl -o "$f" "$@" > /dev/null 2>&1 < /dev/null &
    sp=$!
    while [ $n -lt 1200 ] && kill -0 $sp 2>/dev/null && ! grep -q KVM_RUN "$f" 2>/dev/null; do
        usleep 50000; n=$((n + 1))
    done
    vp=$(awk '/ execve\(/{print $1; exit}' "$f" 2>/dev/null)
    [ -n "$vp" ] && kill -9 "$vp" 2>/dev/null
    kill $sp 2>/dev/null
    wait $sp 2>/dev/null
    { grep -m1 ' execve(' "$f"; grep -m1 'KVM_RUN' "$f"; } > "$RIG_WORK/$name.short" 2>/dev/null
    rig_put "$name" "$RIG_WORK/$name.short"
}

# smaps_summary PID RAM_KIB: PID's resident memory (KiB) split into guest RAM (its anonymous
# mappings of RAM_KIB or more) and the rest, on stdout: guest_ram_rss_kib, guest_ram_mappings,
# other_rss_kib, and other_anon_huge_kib (of the rest, what transparent huge pages back). Each
# other mapping with resident pages goes to stderr: "map RSS SIZE PERM RANGE NAME".
smaps_summary() {
    awk -v ram="$2" '
        /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; range = $1; perm = $2; next }
        /^Size:/ { size = $2; guest = (name == "[anon]" && size >= ram); next }
        /^Rss:/ {
            if (guest) { grss += $2; nguest++ }
            else { other += $2; if ($2 > 0) print "map", $2, size, perm, range, name > "/dev/stderr" }
            next
        }
        /^AnonHugePages:/ { if (!guest) huge += $2 }
        END {
            printf "guest_ram_rss_kib %d\nguest_ram_mappings %d\n", grss, nguest
            printf "other_rss_kib %d\nother_anon_huge_kib %d\n", other, huge
        }
    ' "/proc/$1/smaps"
}
# wait_for SECS CMD...: retry CMD every 0.5 s until it succeeds.
wait_for() {
    local n=$(($1 * 2)); shift
    while [ $n -gt 0 ]; do "$@" > /dev/null 2>&1 && return 0; usleep 500000; n=$((n - 1)); done
    return 1
}
# wait_console NAME TEXT SECS: VMM record NAME's stdout has TEXT while the VMM ($KP) runs.
wait_console() {
    local n=$(($3 * 2))
    while [ $n -gt 0 ]; do
        grep -qF "$2" "$RIG_WORK/$1.out" 2> /dev/null && return 0
        kill -0 "$KP" 2> /dev/null || { echo "H: VMM ended before '$2'"; return 1; }
        usleep 500000; n=$((n - 1))
    done
    echo "H: timeout waiting for '$2'"; return 1
}

# vmm_pid PROG: the pid of the running PROG that is not a child of another PROG (kestrel
# forks a short-lived kernel decompressor, which pidof lists too); fails if there is none.
vmm_pid() {
    local p pp
    for p in $(pidof "$1"); do
        pp=$(awk '/^PPid:/ {print $2}' /proc/$p/status 2> /dev/null) || continue
        [ -n "$pp" ] || continue
        case " $(pidof "$1") " in *" $pp "*) continue ;; esac
        echo "$p"; return 0
    done
    return 1
}
# start_vmm NAME CMD...: run_vmm (limit $L, default 90 s) in the background; VP is its pid,
# KP the VMM's (CMD's first word) once it runs, for wait_console and CPU-time readings.
start_vmm() {
    local name=$1 prog=$2; shift
    run_vmm -t "${L:-90}" "$name" "$@" &
    VP=$!
    KP=
    wait_for 30 vmm_pid "$prog" && KP=$(vmm_pid "$prog")
}
# host_settle: give the next VM the same start as the last: write back and drop the page
# cache and compact free memory. A 1 GiB guest booted after another one in the same test
# host was seen taking up to 5x longer to unpack its kernel and initramfs (which first-touch
# most of its RAM). Fragmented memory (4 KiB pages instead of huge ones) was the suspect,
# but with this settling the slow runs remain (~1 in 4) with as much AnonHugePages as the
# fast ones: treat it as the nested host's noise, and compare medians.
host_settle() {
    sync
    echo 3 > /proc/sys/vm/drop_caches
    echo 1 > /proc/sys/vm/compact_memory 2> /dev/null
}
# host_tap DEV ADDR [MTU]: configure the host side of a tap the VMM created.
host_tap() {
    wait_for 60 ip link show "$1" || { echo "H: no $1"; return 1; }
    ip addr add "$2/24" dev "$1"
    [ -n "${3:-}" ] && ip link set "$1" mtu "$3"
    ip link set "$1" up
}

# The network benchmarks' link (bench_net.sh, diag_net.sh): the tap kt0 at 10.77.0.1 in the
# test host, the guest's eth0 at 10.77.0.2, and QEMU's side of it (add ,vhost=on|off).
QEMU_NET_TAP="-netdev tap,id=n0,ifname=kt0,script=no,downscript=no"
QEMU_NET_DEV="-device virtio-net-pci,netdev=n0,romfile="
# net_host_up: kt0 up and the guest answering ping; says why not ("H: ...") and fails.
net_host_up() {
    host_tap kt0 10.77.0.1 || return 1
    wait_for 240 ping -c 1 -W 1 10.77.0.2 || { echo "H: guest never answered"; return 1; }
}
# net_guest_prelude: the start of the guest's script: its wait_for, the driver, eth0 up at
# $A and the host ($P) answering; "G: ..." lines say what failed.
net_guest_prelude() {
    cat <<'GEOF'
A=10.77.0.2 P=10.77.0.1
wait_for() {
    local n=$(($1 * 2)); shift
    while [ $n -gt 0 ]; do "$@" > /dev/null 2>&1 && return 0; usleep 500000; n=$((n - 1)); done
    return 1
}
modload virtio_pci virtio_net > /dev/null 2>&1 || echo "G: MODLOAD-FAIL"
wait_for 20 test -e /sys/class/net/eth0 || echo "G: NO-ETH0"
ip addr add $A/24 dev eth0; ip link set eth0 up
wait_for 120 ping -c 1 -W 1 $P || echo "G: NO-PING"
GEOF
}

# guest_initrd NAME [SCRIPT]: the default guest initramfs with /scenario.sh appended
# (read from SCRIPT, or from stdin), plus the files GUEST_FILES="SRC:DEST ..." names. The guest's /init runs it after printing
# KESTREL-GUEST-INIT-OK, then reboots. Prints the new initrd's path.
guest_initrd() {
    local name=$1 d=$RIG_WORK/guest-$1
    rm -rf "$d"; mkdir -p "$d"
    if [ -n "${2:-}" ]; then cat "$2"; else cat; fi > "$d/scenario.sh"
    chmod 755 "$d/scenario.sh"
    # GUEST_FILES="SRC:DEST ...": more files for the guest (tools, an rdinit script).
    local f
    for f in ${GUEST_FILES:-}; do
        mkdir -p "$d/$(dirname "${f#*:}")"
        cp "${f%%:*}" "$d/${f#*:}"
    done
    # Concatenated cpio archives are unpacked one after the other by the kernel.
    (cd "$d" && find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc 2>/dev/null | gzip) > "$d.cpio.gz.tmp"
    cat "$GUEST_INITRD" "$d.cpio.gz.tmp" > "$d.cpio.gz"
    rm -f "$d.cpio.gz.tmp"
    echo "$d.cpio.gz"
}

# Called by host-init: run the scenario, report its exit status, mark the end.
rig_scenario() {
    local st
    rig_emit "NOTE host ready at uptime $(cut -d' ' -f1 /proc/uptime)"
    sh -c '. /rig-lib.sh; . "$1"' rig "$1"
    st=$?
    rig_emit "SCENARIO-EXIT $st"
    rig_emit "DONE"
    echo "rig: scenario exited with status $st"
    return $st
}
