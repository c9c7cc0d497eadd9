#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Client instructions per transaction, counted by valgrind's callgrind rather
# than timed, so that the machine's other load does not blur them: for each
# contender, one run that only connects and one that transfers for SECONDS,
# both at 1 client on the uncontended workload; the difference in
# instructions over the difference in committed transactions. One
# tab-separated line per contender on stdout (backend=, contender=,
# instructions=, transactions=), which scripts/bench appends to
# instructions.tsv.
#
#   benchmarks/callgrind.sh BINARY BACKEND SECONDS WORK_DIR CONTENDER...
#   benchmarks/callgrind.sh build/bench/benchmarks/sertx-bench-compare pg 4 /tmp/cg sertx sertx-key soci
#
# BINARY is sertx-bench-compare; BACKEND pg (SERTX_PG names the server) or
# sqlite (its files go to WORK_DIR/sqlite). The server's instructions are not
# counted: they are the same statements for every contender, apart from what
# sertx adds (the key's lookup and insert), which the throughput runs show.
set -euo pipefail
[ $# -ge 5 ] || { sed -n '2,/^set/p' "$0" | sed '$d' >&2; exit 2; }
bin=$1 backend=$2 seconds=$3 work=$4
shift 4
mkdir -p "$work"
total() { sed -n 's/^totals: //p; s/^summary: //p' "$1" | head -n 1; }
run() { # contender seconds: "instructions commits"
  local out="$work/callgrind.$backend.$1.$2"
  local args=(--backend "$backend" --pg "${SERTX_PG:-}" --dir "$work/sqlite" --workload uncontended
    --contender "$1" --clients 1 --warmup 0)
  # Uncounted, first: the setup (filling the accounts, emptying the history
  # of the run before, SQLite's checkpoint) then finds nothing to do in the
  # counted run, so that both counted runs start alike.
  "$bin" "${args[@]}" --seconds 0 >/dev/null 2>&1 || true
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "${args[@]}" --seconds "$2" >"$out.line" 2>/dev/null ||
    true  # a run with errors still counts what committed; none is caught below
  printf '%s %s\n' "$(total "$out")" "$(tr '\t' '\n' <"$out.line" | sed -n 's/^commits=//p')"
}
for c in "$@"; do
  read -r ir0 n0 <<<"$(run "$c" 0)"
  read -r ir1 n1 <<<"$(run "$c" "$seconds")"
  [ "${n1:-0}" -gt "${n0:-0}" ] || { echo "callgrind.sh: $c committed nothing in $seconds s" >&2; exit 1; }
  printf 'backend=%s\tcontender=%s\tinstructions=%s\ttransactions=%s\n' "$backend" "$c" \
    $(((ir1 - ir0) / (n1 - n0))) $((n1 - n0))
done
