# SPDX-License-Identifier: BSL-1.0
# A throwaway Patroni cluster on loopback, beside the one-server PostgreSQL of
# common.sh: one etcd member and three PostgreSQL nodes under Patroni with
# synchronous_mode, short timings so that a failover takes seconds. Used by
# scripts/cluster (a person) and tests/support/patroni_cluster.hpp (the ha
# tests). Everything listens on 127.0.0.1 and free ports; everything lives in
# one temporary directory ($SERTX_CLUSTER_DIR), whose cluster.env names the
# ports, so that any later command (status, failover, down) finds it.
#
# Needs common.sh (sertx_as_pg_owner, sertx_log) sourced first.

# Timings: a leader key lives ttl seconds; Patroni loops every loop_wait; a
# DCS or PostgreSQL call is retried for retry_timeout. Patroni wants
# loop_wait + 2 * retry_timeout <= ttl. With these, a dead leader's key
# expires within 6 s and a replica takes over in the next loop.
SERTX_CLUSTER_TTL=${SERTX_CLUSTER_TTL:-6}
SERTX_CLUSTER_LOOP_WAIT=${SERTX_CLUSTER_LOOP_WAIT:-1}
SERTX_CLUSTER_RETRY_TIMEOUT=${SERTX_CLUSTER_RETRY_TIMEOUT:-2}
SERTX_CLUSTER_NODES=3

# A free port below the kernel's ephemeral range (32768 and up on Linux),
# so that no client connection of another test holds it when etcd, Patroni
# or PostgreSQL binds it; not one already handed out to this cluster.
sertx_cluster_free_port() {
  local port low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for port in $(shuf -i 20000-$((low - 1)) -n 200); do
    grep -q "=$port\$" "$SERTX_CLUSTER_DIR/cluster.env" 2>/dev/null && continue
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

sertx_cluster_load() {
  [ -n "${SERTX_CLUSTER_DIR:-}" ] || SERTX_CLUSTER_DIR=$(cat /tmp/sertx-cluster.last 2>/dev/null || true)
  [ -n "${SERTX_CLUSTER_DIR:-}" ] && [ -f "$SERTX_CLUSTER_DIR/cluster.env" ] ||
    { echo "no cluster: run scripts/cluster up (or set SERTX_CLUSTER_DIR)" >&2; return 1; }
  . "$SERTX_CLUSTER_DIR/cluster.env"
}

# GET on a node's REST API (node 0..2), or on the first that answers.
sertx_cluster_get() {
  local path=$1 node=${2:-}
  local n
  for n in ${node:-0 1 2}; do
    local port_var="SERTX_CLUSTER_REST_$n"
    curl -s -m 2 "http://127.0.0.1:${!port_var}$path" 2>/dev/null && return 0
  done
  return 1
}

# The members as "name role state port pid-of-patroni" lines, from /cluster.
sertx_cluster_members() {
  sertx_cluster_get /cluster | python3 -c '
import json, sys
for m in json.load(sys.stdin)["members"]:
    print(m["name"], m["role"], m.get("state", ""), m.get("port", ""), m.get("timeline", ""), m.get("lag", ""))'
}

# Name of the leader (empty when none).
sertx_cluster_leader() { sertx_cluster_members 2>/dev/null | awk '$2 == "leader" && $3 == "running" {print $1}'; }

# Waits until there is a running leader and `standbys` running replicas, one
# of them the synchronous standby, and the leader's PostgreSQL names it.
sertx_cluster_wait_healthy() {
  local standbys=${1:-2} timeout=${2:-120} i
  for ((i = 0; i < timeout * 5; i++)); do
    local members
    members=$(sertx_cluster_members 2>/dev/null || true)
    if [ "$(awk '$2 == "leader" && $3 == "running"' <<<"$members" | wc -l)" -eq 1 ] &&
      [ "$(awk '$2 != "leader" && ($3 == "running" || $3 == "streaming")' <<<"$members" | wc -l)" -ge "$standbys" ] &&
      { [ "$standbys" -eq 0 ] || [ "$(awk '$2 == "sync_standby" && ($3 == "running" || $3 == "streaming")' <<<"$members" | wc -l)" -ge 1 ]; }; then
      local leader port
      leader=$(awk '$2 == "leader" {print $1}' <<<"$members")
      port_var="SERTX_CLUSTER_PG_${leader#n}"
      port=${!port_var}
      if [ "$standbys" -eq 0 ] ||
        [ "$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc \
          "select count(*) from pg_stat_replication where sync_state = 'sync'" 2>/dev/null)" = 1 ]; then
        return 0
      fi
    fi
    sleep 0.2
  done
  echo "the cluster did not become healthy in ${timeout}s:" >&2
  sertx_cluster_members >&2 || true
  return 1
}

sertx_cluster_node_config() {
  local n=$1 dir=$SERTX_CLUSTER_DIR/n$1
  local pg_var="SERTX_CLUSTER_PG_$n" rest_var="SERTX_CLUSTER_REST_$n"
  cat <<YAML
scope: sertx
namespace: /sertx/
name: n$n
log:
  level: ${SERTX_CLUSTER_LOG_LEVEL:-WARNING}
restapi:
  listen: 127.0.0.1:${!rest_var}
  connect_address: 127.0.0.1:${!rest_var}
etcd3:
  host: 127.0.0.1:$SERTX_CLUSTER_ETCD
bootstrap:
  dcs:
    ttl: $SERTX_CLUSTER_TTL
    loop_wait: $SERTX_CLUSTER_LOOP_WAIT
    retry_timeout: $SERTX_CLUSTER_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    # A leader whose PostgreSQL crashed fails over at once instead of
    # restarting it in place for up to 300 s (Patroni's default).
    primary_start_timeout: 0
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        max_pred_locks_per_transaction: 256
        shared_buffers: 32MB
  initdb:
  - encoding: UTF8
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${!pg_var}
  connect_address: 127.0.0.1:${!pg_var}
  data_dir: $dir/data
  bin_dir: $SERTX_CLUSTER_BIN
  pgpass: $dir/pgpass
  authentication:
    replication:
      username: replicator
      password: replicator
    superuser:
      username: postgres
      password: postgres
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '$dir'
    log_min_messages: warning
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
YAML
}

# Starts node n's Patroni (again, after a kill): it runs as the PostgreSQL
# owner, in the background, its pid in n<n>/patroni.pid.
sertx_cluster_start_node() {
  local n=$1 dir=$SERTX_CLUSTER_DIR/n$1
  sertx_as_pg_owner sh -c "nohup patroni '$dir/patroni.yml' >>'$dir/patroni.log' 2>&1 & echo \$! > '$dir/patroni.pid'"
}

sertx_cluster_up() {
  command -v patroni >/dev/null && command -v etcd >/dev/null ||
    { echo "patroni and etcd are needed (Debian: patroni etcd-server)" >&2; return 1; }
  SERTX_CLUSTER_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$SERTX_CLUSTER_BIN/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; return 1; }
  if [ -n "${SERTX_CLUSTER_DIR:-}" ]; then mkdir -p "$SERTX_CLUSTER_DIR"; else SERTX_CLUSTER_DIR=$(mktemp -d /tmp/sertx-cluster.XXXXXX); fi
  chmod 755 "$SERTX_CLUSTER_DIR"
  local n env=$SERTX_CLUSTER_DIR/cluster.env
  : >"$env"
  echo "SERTX_CLUSTER_DIR=$SERTX_CLUSTER_DIR" >>"$env"
  echo "SERTX_CLUSTER_BIN=$SERTX_CLUSTER_BIN" >>"$env"
  local name
  for name in ETCD ETCD_PEER PG_0 REST_0 PG_1 REST_1 PG_2 REST_2; do
    echo "SERTX_CLUSTER_$name=$(sertx_cluster_free_port)" >>"$env"
  done
  . "$env"
  echo "$SERTX_CLUSTER_DIR" >/tmp/sertx-cluster.last
  for n in 0 1 2; do
    mkdir -p "$SERTX_CLUSTER_DIR/n$n"
    chmod 700 "$SERTX_CLUSTER_DIR/n$n"
    sertx_cluster_node_config "$n" >"$SERTX_CLUSTER_DIR/n$n/patroni.yml"
  done
  mkdir -p "$SERTX_CLUSTER_DIR/etcd"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$SERTX_CLUSTER_DIR"
  chmod 700 "$SERTX_CLUSTER_DIR/etcd"

  sertx_as_pg_owner sh -c "nohup etcd --name e0 --data-dir '$SERTX_CLUSTER_DIR/etcd' \
    --listen-client-urls http://127.0.0.1:$SERTX_CLUSTER_ETCD --advertise-client-urls http://127.0.0.1:$SERTX_CLUSTER_ETCD \
    --listen-peer-urls http://127.0.0.1:$SERTX_CLUSTER_ETCD_PEER --initial-advertise-peer-urls http://127.0.0.1:$SERTX_CLUSTER_ETCD_PEER \
    --initial-cluster e0=http://127.0.0.1:$SERTX_CLUSTER_ETCD_PEER --listen-metrics-urls '' \
    --logger=zap --log-level warn >'$SERTX_CLUSTER_DIR/etcd.log' 2>&1 & echo \$! > '$SERTX_CLUSTER_DIR/etcd.pid'"
  local i
  for ((i = 0; i < 100; i++)); do
    curl -s -m 1 "http://127.0.0.1:$SERTX_CLUSTER_ETCD/health" 2>/dev/null | grep -q '"health":"true"' && break
    sleep 0.1
  done
  [ "$i" -lt 100 ] || { echo "etcd did not start:" >&2; cat "$SERTX_CLUSTER_DIR/etcd.log" >&2; return 1; }

  # The first node bootstraps alone (initdb), so that the other two are
  # made replicas by pg_basebackup rather than racing for the initialize key.
  sertx_cluster_start_node 0
  sertx_cluster_wait_healthy 0 120 || { tail -n 30 "$SERTX_CLUSTER_DIR/n0/patroni.log" >&2; return 1; }
  sertx_cluster_start_node 1
  sertx_cluster_start_node 2
  sertx_cluster_wait_healthy 2 120 || return 1
  sertx_log "Patroni cluster: etcd 127.0.0.1:$SERTX_CLUSTER_ETCD; PostgreSQL on 127.0.0.1:$SERTX_CLUSTER_PG_0,$SERTX_CLUSTER_PG_1,$SERTX_CLUSTER_PG_2 ($SERTX_CLUSTER_DIR)"
}

# The multi-host connection string that finds the primary.
sertx_cluster_conninfo() {
  echo "host=127.0.0.1,127.0.0.1,127.0.0.1 port=$SERTX_CLUSTER_PG_0,$SERTX_CLUSTER_PG_1,$SERTX_CLUSTER_PG_2 user=postgres dbname=postgres target_session_attrs=read-write sslmode=disable gssencmode=disable connect_timeout=2"
}

# The postmaster's pid of node n (first line of postmaster.pid).
sertx_cluster_postmaster_pid() { head -n 1 "$SERTX_CLUSTER_DIR/n$1/data/postmaster.pid" 2>/dev/null; }

# Kills the leader: `postmaster` (default) SIGKILLs its postmaster, Patroni
# sees PostgreSQL gone and the leader key is kept or lost as Patroni decides;
# `patroni` SIGKILLs its Patroni, which stops renewing the leader key (its
# PostgreSQL keeps running, a primary nobody manages, until it is demoted).
# Prints "killed <what> <pid> of <node> at <unix ms>".
sertx_cluster_failover() {
  local what=${1:-postmaster} leader pid
  leader=$(sertx_cluster_leader)
  [ -n "$leader" ] || { echo "no leader to kill" >&2; return 1; }
  case $what in
    postmaster) pid=$(sertx_cluster_postmaster_pid "${leader#n}") ;;
    patroni) pid=$(cat "$SERTX_CLUSTER_DIR/$leader/patroni.pid") ;;
    *) echo "failover postmaster|patroni" >&2; return 1 ;;
  esac
  [ -n "$pid" ] || { echo "no $what pid for $leader" >&2; return 1; }
  local at
  at=$(date +%s%3N)
  kill -KILL "$pid"
  echo "killed $what $pid of $leader at $at"
}

# A switchover to another healthy node, planned: patronictl demotes the
# leader cleanly and promotes the synchronous standby. Prints "switchover of
# <node> at <unix ms>".
sertx_cluster_switchover() {
  local leader at
  leader=$(sertx_cluster_leader)
  [ -n "$leader" ] || { echo "no leader to switch over from" >&2; return 1; }
  at=$(date +%s%3N)
  patronictl -c "$SERTX_CLUSTER_DIR/$leader/patroni.yml" switchover --leader "$leader" --force sertx >"$SERTX_CLUSTER_DIR/switchover.log" 2>&1 ||
    { cat "$SERTX_CLUSTER_DIR/switchover.log" >&2; return 1; }
  echo "switchover of $leader at $at"
}

# Restarts what a failover killed: a node whose Patroni is gone gets a new
# one, and rejoins as a replica (rewound if need be). Its PostgreSQL, if it
# still runs, is SIGKILLed first, as Patroni's watchdog would have done when
# Patroni died: a new Patroni finding a primary it does not lead rewrites
# postgresql.conf without synchronous_standby_names and reloads it before it
# demotes the server, which releases the commits waiting for the standby, and
# they are acknowledged from this machine alone (seen: tests/postgresql/
# patroni_ha_test.cpp, docs/deployment.md). `--unfenced` skips the kill, to
# show that.
sertx_cluster_heal() {
  local fence=1 n
  [ "${1:-}" = --unfenced ] && fence=0
  for n in 0 1 2; do
    local pid
    pid=$(cat "$SERTX_CLUSTER_DIR/n$n/patroni.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      if [ "$fence" = 1 ]; then
        pid=$(sertx_cluster_postmaster_pid "$n")
        if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then
          local i
          for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
      fi
      sertx_cluster_start_node "$n"
    fi
  done
}

# SIGKILLs node n's Patroni and its PostgreSQL: a machine lost.
sertx_cluster_kill_node() {
  local n=${1#n} pid
  pid=$(cat "$SERTX_CLUSTER_DIR/n$n/patroni.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  pid=$(sertx_cluster_postmaster_pid "$n")
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  echo "killed node n$n at $(date +%s%3N)"
}

sertx_cluster_status() {
  sertx_cluster_members | awk 'BEGIN {print "member role state port timeline lag"} {print}' | column -t
}

# Stops everything, whatever state it is in, and deletes the directory.
sertx_cluster_down() {
  [ -n "${SERTX_CLUSTER_DIR:-}" ] && [ -d "$SERTX_CLUSTER_DIR" ] || return 0
  local n pid
  for n in 0 1 2; do
    pid=$(cat "$SERTX_CLUSTER_DIR/n$n/patroni.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    pid=$(sertx_cluster_postmaster_pid "$n")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  pid=$(cat "$SERTX_CLUSTER_DIR/etcd.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  # A postmaster's children leave once it is gone; wait for its port to close.
  for n in 0 1 2; do
    local port_var="SERTX_CLUSTER_PG_$n" i
    for ((i = 0; i < 50; i++)); do
      (exec 3<>/dev/tcp/127.0.0.1/"${!port_var}") 2>/dev/null || break
      sleep 0.1
    done
  done
  [ "$(cat /tmp/sertx-cluster.last 2>/dev/null)" = "$SERTX_CLUSTER_DIR" ] && rm -f /tmp/sertx-cluster.last
  rm -rf "$SERTX_CLUSTER_DIR"
  unset SERTX_CLUSTER_DIR
}
