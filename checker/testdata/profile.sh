#!/bin/sh
# Where `aver lin` spends its time and memory, per history file, for any aver binary (a
# baseline build too): one row per file with
#   cpu ms     the whole process (perf stat task-clock: start-up, parsing, search,
#              counterexample, freeing), with --threads 1 where the binary has it;
#   search ms  the search alone, as the binary prints it ("checked in X ms");
#   allocs     calls to allocation functions, and peak heap (heaptrack);
#   steps, configurations, memo hits   the search's counters (`aver lin --stats`; binaries
#              older than the counters print "-").
# Needs perf and heaptrack. Timings are as loaded as the machine is: run it on a quiet one.
# Usage (from the repository root):
#   sh checker/testdata/profile.sh BINARY FILE...
# e.g. sh checker/testdata/profile.sh target/release/aver checker/testdata/porcupine/kv/c50-ok.txt
set -eu
# shellcheck disable=SC2086
BIN=$1
shift
TMP=${TMPDIR:-/tmp}/aver-profile-$$
ONE=""
if "$BIN" lin --help | grep -q -- --threads; then ONE="--threads 1"; fi
printf '%-40s %8s %9s %9s %10s %10s %10s %8s\n' file "cpu ms" "search ms" allocs \
    "peak heap" steps configs hits
for f; do
    cpu=$(perf stat -x, -e task-clock "$BIN" lin "$f" $ONE 2>&1 >/dev/null |
        awk -F, '/task-clock/ { printf "%.1f", $1 }')
    search=$("$BIN" lin "$f" $ONE 2>/dev/null | sed -n 's/.*checked in \([0-9.]*\) ms.*/\1/p' |
        head -1)
    heaptrack -o "$TMP" "$BIN" lin "$f" $ONE >/dev/null 2>&1 || true
    report=$(heaptrack_print "$TMP.zst" 2>/dev/null | tail -8)
    rm -f "$TMP.zst"
    allocs=$(echo "$report" | sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p')
    peak=$(echo "$report" | sed -n 's/^peak heap memory consumption: \(.*\)/\1/p')
    if "$BIN" lin --help | grep -q -- --stats; then
        counts=$("$BIN" lin "$f" $ONE --stats 2>/dev/null | awk '
            /^partition / {
                for (i = 1; i <= NF; i++) {
                    if ($(i+1) == "model") s += $i
                    if ($(i+1) == "configurations,") c += $i
                    if ($(i+1) == "memo" && $(i+2) == "hits,") h += $i
                }
            }
            END { printf "%d %d %d", s, c, h }')
    else
        counts="- - -"
    fi
    printf '%-40s %8s %9s %9s %10s %10s %10s %8s\n' "$(echo "$f" | sed 's|.*testdata/||')" \
        "$cpu" "$search" "$allocs" "$peak" $counts
done
