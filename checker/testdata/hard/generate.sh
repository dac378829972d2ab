#!/bin/sh
# Regenerates the hard set: every history here is `aver gen history` output, a function of
# its arguments and seed; expected.tsv lists each file with its verdict (known by
# construction), whether CI checks it (ci=yes: about a second or less for this checker), and the command.
# Run from the repository root: sh checker/testdata/hard/generate.sh
set -eu
AVER=${AVER:-target/release/aver}
DIR=checker/testdata/hard
printf 'path\texpected\tci\tcommand\n' > "$DIR/expected.tsv"
# gen NAME CI ARGS... --seed S: an anomaly that no operation makes provable with seed S is
# retried with S+100, S+200, ... (the file is named after the seed used).
gen() {
    name=$1; ci=$2; shift 2
    eval "seed=\${$#}"
    args=$(echo "$*" | sed 's/ --seed [0-9]*$//')
    for try in 0 1 2 3 4 5; do
        s=$((seed + 100 * try))
        # shellcheck disable=SC2086
        if "$AVER" gen history $args --seed $s --out "$DIR/$name-s$s.jsonl" 2> "$DIR/.gen.err"; then
            verdict=$(sed -n 's/^expected: \([a-z]*\).*/\1/p' "$DIR/.gen.err")
            printf '%s\t%s\t%s\t%s\n' "$name-s$s.jsonl" "$verdict" "$ci" \
                "aver gen history $args --seed $s" >> "$DIR/expected.tsv"
            return
        fi
    done
    cat "$DIR/.gen.err" >&2
    exit 1
}
# Single registers with many timed-out and crashed clients.
for s in 1 2 3 4 5 6; do
    gen reg-c10-o300 yes --model register --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --seed $s
    gen cas-c10-o300 yes --model cas --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --seed $s
done
for s in 1 2 3; do
    gen reg-c20-o400 no --model register --clients 20 --ops 400 --unknown 0.15 --crash 0.05 --seed $s
    gen cas-c20-o400 no --model cas --clients 20 --ops 400 --unknown 0.15 --crash 0.05 --seed $s
done
for s in 11 12 13; do
    # CI checks one seed of the long cas searches and two of the kv ones.
    quick=no; [ "$s" = 12 ] && quick=yes
    kvquick=yes; [ "$s" = 11 ] && kvquick=no
    gen reg-stale yes --model register --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --anomaly stale-read --seed $s
    gen reg-lost yes --model register --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --anomaly lost-write --seed $s
    gen cas-stale $quick --model cas --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --anomaly stale-read --seed $s
    gen cas-lost $quick --model cas --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --anomaly lost-write --seed $s
    gen cas-wrong $quick --model cas --clients 10 --ops 300 --unknown 0.2 --crash 0.05 --anomaly wrong-cas --seed $s
done
# Append-heavy KV with few keys.
for s in 1 2 3 4 5 6; do
    gen kv1-c5-o80 yes --model kv --clients 5 --ops 80 --keys 1 --unknown 0.1 --crash 0.05 --seed $s
    gen kv2-c10-o200 no --model kv --clients 10 --ops 200 --keys 2 --unknown 0.1 --crash 0.05 --seed $s
done
for s in 11 12 13; do
    t=$((s + 3)) # seed 11 has no provable stale read
    gen kv1-stale $kvquick --model kv --clients 5 --ops 80 --keys 1 --unknown 0.1 --crash 0.05 --anomaly stale-read --seed $s
    gen kv1-lost $kvquick --model kv --clients 5 --ops 80 --keys 1 --unknown 0.1 --crash 0.05 --anomaly lost-write --seed $s
    gen kv1-dup $kvquick --model kv --clients 5 --ops 80 --keys 1 --unknown 0.1 --crash 0.05 --anomaly duplicated-append --seed $s
    gen kv3-lost no --model kv --clients 10 --ops 300 --keys 3 --unknown 0.1 --crash 0.05 --anomaly lost-write --seed $s
done
# Versioned KV (kvsrv1) with ErrMaybe.
for s in 1 2 3; do
    gen vkv-c10-o400 yes --model versioned-kv --clients 10 --ops 400 --keys 1 --unknown 0.2 --crash 0.05 --seed $s
    gen vkv-stale yes --model versioned-kv --clients 10 --ops 200 --keys 1 --unknown 0.2 --crash 0.05 --anomaly stale-read --seed $s
done
rm -f "$DIR/.gen.err"
