#!/usr/bin/env bash
# User mistakes on the command line: each must end kestrel with exit status 2 and exactly one
# line on stderr starting with "kestrel: " -- never a crash, a hang or a multi-line dump.
# Usage: cli_errors.sh path/to/kestrel
set -u

KESTREL=${1:?usage: cli_errors.sh path/to/kestrel}
if [ ! -x "$KESTREL" ]; then
	echo "FAIL setup: '$KESTREL' is not an executable"
	echo "0 passed, 1 failed"
	exit 1
fi

TMP=$(mktemp -d /tmp/kestrel-cli.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
skipped=0

# A bzImage header that stops short: boot flag 0xAA55 at 0x1fe, a jump at 0x200 whose offset
# byte says the header runs to 0x26c, "HdrS" at 0x202, protocol 2.15 at 0x206; only 600 bytes.
make_truncated_bzimage()
{
	local f=$1
	head -c 600 /dev/zero >"$f"
	printf '\x55\xaa\xeb\x6aHdrS\x0f\x02' |
		dd of="$f" bs=1 seek=$((0x1fe)) conv=notrunc status=none
}

# check NAME EXPECTED_SUBSTRING -- ARGS...
# EXPECTED_SUBSTRING may be empty. Where the VM has to exist before the mistake can be seen
# (the kernel file is read after /dev/kvm is opened) and this host cannot open /dev/kvm, the
# message is about KVM: the status and the one-line rule are still checked, the substring not.
check()
{
	local name=$1 want=$2
	shift 3
	local out="$TMP/$name.out" errf="$TMP/$name.err" status content body why=""

	timeout 30 "$KESTREL" "$@" >"$out" 2>"$errf" </dev/null
	status=$?
	content=$(
		cat "$errf"
		echo x
	)
	content=${content%x}
	body=${content%$'\n'}

	if [ "$status" -eq 124 ]; then
		why="timed out"
	elif [ "$status" -gt 128 ]; then
		why="crashed (status $status, signal $((status - 128)))"
	elif [ "$status" -ne 2 ]; then
		why="exit status $status, want 2"
	elif [ -z "$content" ]; then
		why="nothing on stderr"
	elif [ "$body" = "$content" ]; then
		why="stderr does not end with a newline"
	elif [[ $body == *$'\n'* ]]; then
		why="stderr has more than one line"
	elif [[ $body != "kestrel: "* ]]; then
		why="stderr does not start with 'kestrel: '"
	elif [ -n "$want" ] && [[ $body != *"$want"* ]]; then
		if [[ $body == *"/dev/kvm"* || $body == *KVM* ]]; then
			echo "SKIP $name: message check (no usable KVM here: $body)"
			skipped=$((skipped + 1))
		else
			why="message does not mention '$want'"
		fi
	fi
	if [ -n "$why" ]; then
		echo "FAIL $name: $why"
		echo "  command: kestrel $*"
		sed 's/^/  stderr: /' "$errf"
		failed=$((failed + 1))
	else
		echo "PASS $name"
		passed=$((passed + 1))
	fi
}

: >"$TMP/empty"
mkdir "$TMP/dir"
{
	echo "This is not a kernel."
	for i in $(seq 1 40); do echo "line $i of a text file that is long enough to have a header"; done
} >"$TMP/text"
printf 'short\n' >"$TMP/short"
make_truncated_bzimage "$TMP/trunc"
if [ "$(stat -c %s "$TMP/trunc")" != 600 ]; then
	echo "FAIL setup: truncated bzImage is $(stat -c %s "$TMP/trunc") bytes"
	failed=$((failed + 1))
fi

check no_args "no kernel given" --
check unknown_option "unknown option '--bogus'" -- --kernel "$TMP/text" --bogus
check unknown_short_option "unknown option '-q'" -- -qv --kernel "$TMP/text"
check stray_argument "unexpected argument" -- --kernel "$TMP/text" extra
check missing_value "needs a value" -- --kernel
check memory_12Q "12Q" -- --kernel "$TMP/text" --memory 12Q
check memory_too_small "too small" -- --kernel "$TMP/text" --memory 16M
check memory_overflow "too large" -- --kernel "$TMP/text" --memory 99999999999999999999G
check cpus_0 "--cpus '0'" -- --kernel "$TMP/text" --cpus 0
check cpus_255 "--cpus '255'" -- --kernel "$TMP/text" --cpus 255
check seccomp_bad_value "bad --seccomp 'maybe'" -- --kernel "$TMP/text" --seccomp=maybe
check transport_bad "expected pci or mmio" -- --kernel "$TMP/text" --transport isa
check seccomp_no_value "'--seccomp' needs a value" -- --kernel "$TMP/text" --seccomp
check missing_kernel_file "No such file" -- --kernel "$TMP/does-not-exist"
check empty_kernel "is empty" -- --kernel "$TMP/empty"
check directory_kernel "not a regular file" -- --kernel "$TMP/dir"
check text_kernel "not a Linux kernel" -- --kernel "$TMP/text"
check short_text_kernel "truncated" -- --kernel "$TMP/short"
check truncated_bzimage "truncated" -- --kernel "$TMP/trunc"
# Both files missing: the kernel is named first, not the initrd.
check kernel_error_before_initrd "kernel '$TMP/does-not-exist'" -- \
	--kernel "$TMP/does-not-exist" --initrd "$TMP/no-initrd"
check missing_initrd_with_bad_kernel "' is empty" -- --kernel "$TMP/empty" --initrd "$TMP/no-initrd"

echo "$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || echo "($skipped message checks skipped)"
[ "$failed" -eq 0 ]
