#!/usr/bin/env bash
# Writes impl/cli/lin-symbols.txt: the functions of the `aver` executable that `aver lin`
# runs on small histories of every input format and model, by their mangled names.
# build.rs hands the list to the linker (lld's --symbol-ordering-file), which places these
# functions side by side at the start of the code, so a short check touches a few pages of
# code instead of one page in every 64 KB window of 11 MB (see build.rs for the figures).
#
# Run from the repository root after `cargo build --release -p aver`, when `aver lin` or
# what it calls has changed much. It needs valgrind (callgrind lists every function a run
# executes). A stale list is harmless: names no longer in the binary are skipped, and the
# functions missing from it are placed as they would be without a list.
set -euo pipefail
bin=target/release/aver
out=impl/cli/lin-symbols.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/cas.edn" <<'EDN'
[{:process 0, :type :invoke, :f :write, :value 3}
 {:process 0, :type :ok, :f :write, :value 3}
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 1, :type :invoke, :f :cas, :value [0 5]}
 {:process 1, :type :fail, :f :cas, :value [0 5]}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value 3}]
EDN
cat > "$tmp/txn.edn" <<'EDN'
[{:process 0, :type :invoke, :f :txn, :value [[:w :x 1] [:w :y 2]]}
 {:process 0, :type :ok, :f :txn, :value [[:w :x 1] [:w :y 2]]}
 {:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:r :x 1] [:r :y 3]]}]
EDN

# Linearizable and not, in each format and model the benchmarks use.
inputs=(
  checker/testdata/porcupine/jepsen/etcd_087.log
  checker/testdata/porcupine/jepsen/etcd_000.log
  checker/testdata/porcupine/kv/c01-ok.txt
  checker/testdata/porcupine/kv/c01-bad.txt
  checker/testdata/hard/reg-c10-o300-s5.jsonl
  checker/testdata/hard/reg-lost-s11.jsonl
  checker/testdata/hard/cas-c10-o300-s5.jsonl
  checker/testdata/hard/kv1-c5-o80-s2.jsonl
  checker/testdata/hard/kv1-lost-s13.jsonl
  checker/testdata/hard/kv2-c10-o200-s5.jsonl
  checker/testdata/hard/vkv-c10-o400-s3.jsonl
  "--init 0 $tmp/cas.edn"
  "$tmp/txn.edn"
)
i=0
for args in "${inputs[@]}"; do
  i=$((i + 1))
  # `aver lin` exits 1 on a history that is not linearizable; that run counts too.
  # shellcheck disable=SC2086 # the arguments are split on purpose
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/cg.$i" \
    "$bin" lin $args > /dev/null 2>&1 || [ $? -eq 1 ] || { echo "aver lin $args failed" >&2; exit 1; }
done

# Every function named in the profiles that is a code symbol of the executable.
nm "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u > "$tmp/symbols"
cat "$tmp"/cg.* | sed -nE 's/^c?fn=\([0-9]+\) (.*)$/\1/p' | sort -u > "$tmp/called"
comm -12 "$tmp/called" "$tmp/symbols" > "$out"
echo "$out: $(wc -l < "$out") functions"
