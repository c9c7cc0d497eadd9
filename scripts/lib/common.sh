# SPDX-License-Identifier: BSL-1.0
# Shared by scripts/demo, scripts/test and scripts/bench: install what is
# missing, and start a throwaway PostgreSQL on loopback.

sertx_log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# Installs the Debian packages that are missing (nothing when all are there).
sertx_install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  sertx_log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What the dev preset configures against. The benchmarks build when Google
# Benchmark and libpqxx are installed (SERTX_BUILD_BENCHMARKS=AUTO), and
# scripts/test installs them so that the benchmarks' smoke runs (ctest label
# bench-smoke) are part of every test run.
SERTX_BUILD_PACKAGES=(g++ cmake ninja-build pkg-config libboost-dev libsoci-dev libpq-dev libsqlite3-dev sqlite3 catch2
                      libbenchmark-dev libpqxx-dev)
# What the tests need beyond a build: the server (and its pgbench, a contender
# of the benchmarks' smoke run), PgBouncer (tests/postgresql/pooler_test.cpp),
# Patroni, etcd and curl (scripts/cluster, the ha tests), the API reference's
# generator, clang's libFuzzer for the bounded fuzz runs, promtool (package
# prometheus) and prometheus-cpp for the metrics tests (tests/*/metrics_test.cpp).
SERTX_TEST_PACKAGES=(postgresql pgbouncer patroni etcd-server curl doxygen python3 clang libclang-rt-dev prometheus
                     prometheus-cpp-dev)

# A free TCP port on 127.0.0.1.
sertx_free_port() {
  local port
  for port in $(shuf -i 20000-60000 -n 100); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Runs a command as the PostgreSQL owner: initdb refuses to run as root.
sertx_as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

# Starts a throwaway PostgreSQL on 127.0.0.1 and a free port, in a temporary
# directory; exports SERTX_PG (admin conninfo), SERTX_PG_BIN, SERTX_PG_DATA,
# SERTX_PG_DIR, SERTX_PG_PORT. Durability settings stay at their safe
# defaults: sertx refuses a server without fsync.
sertx_pg_start() {
  SERTX_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$SERTX_PG_BIN/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; return 1; }
  SERTX_PG_DIR=$(mktemp -d /tmp/sertx-pg.XXXXXX)
  SERTX_PG_DATA="$SERTX_PG_DIR/data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$SERTX_PG_DIR"
  chmod 755 "$SERTX_PG_DIR"
  SERTX_PG_PORT=$(sertx_free_port)
  sertx_as_pg_owner "$SERTX_PG_BIN/initdb" --no-sync -D "$SERTX_PG_DATA" -A trust -U postgres >"$SERTX_PG_DIR/initdb.log" 2>&1 ||
    { cat "$SERTX_PG_DIR/initdb.log" >&2; return 1; }
  cat >>"$SERTX_PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $SERTX_PG_PORT
unix_socket_directories = '$SERTX_PG_DIR'
max_connections = 300
shared_buffers = 128MB
max_pred_locks_per_transaction = 256
log_min_messages = warning
CONF
  sertx_as_pg_owner "$SERTX_PG_BIN/pg_ctl" -D "$SERTX_PG_DATA" -l "$SERTX_PG_DIR/server.log" -w -t 60 start >/dev/null ||
    { cat "$SERTX_PG_DIR/server.log" >&2; return 1; }
  export SERTX_PG="host=127.0.0.1 port=$SERTX_PG_PORT user=postgres dbname=postgres sslmode=disable"
  export SERTX_PG_BIN SERTX_PG_DATA SERTX_PG_DIR SERTX_PG_PORT
  sertx_log "PostgreSQL $("$SERTX_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$SERTX_PG_PORT ($SERTX_PG_DIR)"
}

sertx_pg_stop() {
  [ -n "${SERTX_PG_DATA:-}" ] && [ -d "$SERTX_PG_DATA" ] || return 0
  sertx_as_pg_owner "$SERTX_PG_BIN/pg_ctl" -D "$SERTX_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$SERTX_PG_DIR"
  unset SERTX_PG_DATA
}
