#!/usr/bin/env bash
# guest-images/lib.sh's stale(): an image is rebuilt when an input's contents change, and is
# reused by a fresh clone (whose files are all newer than the cached image) when they do not.
# And apt_cached(): an apt-cache answer is reused until apt's package lists change.
set -u
LIB=${1:?usage: test_stale.sh guest-images/lib.sh}
eval "$(sed -n '/^inputs_digest() {/,/^}/p;/^stale() {/,/^}/p;/^apt_cached() {/,/^}/p' "$LIB")"
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
# apt_cached: a fake query that counts its runs, fake package lists.
OUT=$dir/out-apt APT_LISTS=$dir/lists
mkdir -p "$APT_LISTS"; echo v1 > "$APT_LISTS/main_Packages"; touch -d '-5 seconds' "$APT_LISTS/main_Packages"
query() { echo run >> "$dir/runs"; echo "Candidate: $(cat "$APT_LISTS/main_Packages") $1"; }
is "Candidate: v1 pkg" "$(apt_cached query pkg)" "apt_cached prints the query's answer"
is "Candidate: v1 pkg" "$(apt_cached query pkg)" "asked again: the same answer"
is 1 "$(wc -l < runs)" "asked again: the query ran once"
is "Candidate: v1 other" "$(apt_cached query other)" "another query has its own answer"
echo v2 > "$APT_LISTS/main_Packages"
is "Candidate: v2 pkg" "$(apt_cached query pkg)" "after the lists changed (apt-get update): asked anew"
is 3 "$(wc -l < runs)" "after the lists changed: the query ran again"
failing() { echo run >> "$dir/runs"; return 100; }
apt_cached failing x > /dev/null; apt_cached failing x > /dev/null
is 5 "$(wc -l < runs)" "a failed query is not remembered"
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
