#!/usr/bin/env bash
# guest-images/lib.sh's stale(): an image is rebuilt when an input's contents change, and is
# reused by a fresh clone (whose files are all newer than the cached image) when they do not.
set -u
LIB=${1:?usage: test_stale.sh guest-images/lib.sh}
eval "$(sed -n '/^inputs_digest() {/,/^}/p;/^stale() {/,/^}/p' "$LIB")"
dir=$(mktemp -d /tmp/kestrel-stale.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
pass=0 failed=0
is() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else failed=$((failed + 1)); echo "FAIL: $3"; fi; }
st() { if stale "$@"; then echo stale; else echo fresh; fi; }
# Times one second apart: -nt compares whole seconds on some file systems.
echo a > in1; mkdir d; touch d/x; touch -d '-3 seconds' in1 d/x d
is stale "$(st out in1 d)" "a missing target is stale"
echo built > out; touch -d '-2 seconds' out
is fresh "$(st out in1 d)" "a target newer than its inputs is fresh"
is 1 "$([ -s out.inputs ] && echo 1)" "the inputs' digest is recorded"
touch in1 d/x
is fresh "$(st out in1 d)" "inputs newer but with the same contents (a fresh clone): fresh"
echo b > in1
is stale "$(st out in1 d)" "an input's contents changed: stale"
echo built2 > out; touch -d '+1 seconds' out
is fresh "$(st out in1 d)" "rebuilt: fresh again"
touch d/y; touch -d '+2 seconds' d
is stale "$(st out in1 d)" "a folder input gained a file: stale"
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
