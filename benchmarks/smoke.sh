#!/bin/sh
# SPDX-License-Identifier: BSL-1.0
# The bench-smoke test: every contender of sertx-bench-compare for a fraction
# of a second, then sertx-bench-report on what they printed, so that the
# benchmarks cannot rot. It measures nothing. PostgreSQL contenders run when
# SERTX_PG names a server, and must when SERTX_REQUIRE_POSTGRES=1.
#
#   smoke.sh COMPARE REPORT WORK_DIR
set -eu
compare=$1 report=$2 work=$3
rm -rf "$work"
mkdir -p "$work/sqlite" "$work/plots-out"

run() { # experiment, then the driver's arguments
  experiment=$1
  shift
  line=$("$compare" --seconds 0.2 --warmup 0.05 --prefix sertx_smoke_ "$@")
  printf 'experiment=%s\trep=1\t%s\n' "$experiment" "$line" >>"$work/results.tsv"
}

for contender in $("$compare" --backend sqlite --list); do
  for threads in 1 2; do
    run sqlite --backend sqlite --dir "$work/sqlite" --workload uncontended --contender "$contender" --clients "$threads"
  done
done

if [ -n "${SERTX_PG:-}" ]; then
  pgbench=$(command -v pgbench || ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
  for workload in uncontended hot-random hot-ordered report; do
    for contender in sertx sertx-once soci soci-once pqxx pgbench; do
      run pg --backend pg --pgbench "$pgbench" --workload "$workload" --contender "$contender" --clients 2
    done
  done
  for contender in $("$compare" --backend pg --list | grep -E '^sertx-(verify|key|pooler|lt-|backoff-)'); do
    run variants --backend pg --workload hot-ordered --contender "$contender" --clients 2
  done
elif [ "${SERTX_REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "bench-smoke: SERTX_PG is not set but SERTX_REQUIRE_POSTGRES=1" >&2
  exit 1
else
  echo "bench-smoke: SERTX_PG not set: PostgreSQL contenders skipped"
fi

printf 'command=bench-smoke\n' >"$work/env.tsv"
"$report" "$work" "$work/benchmarks.md" "$work/plots-out"
grep -q '^## Targets' "$work/benchmarks.md"
echo "bench-smoke: $(wc -l <"$work/results.tsv") runs"
