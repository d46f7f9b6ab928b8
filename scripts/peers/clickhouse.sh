#!/usr/bin/env bash
# Starts four ClickHouse servers (Debian 12's clickhouse-server, 18.16) and
# a standalone ZooKeeper (Debian's zookeeper) on 127.0.0.1 for the
# ClickHouse backend's tests (crates/clickhouse and
# crates/loupe/tests/it/clickhouse.rs): server A alone is the single-node
# peer; A and B together form the cluster `loupe_pair` (one shard each) for
# the Distributed-table test; C and D are two replicas of one shard (cluster
# `loupe_replicas`, macros shard=01 and replica=c/d) for the replicated
# tables. Each server has its config, users, data and logs under
# $LOUPE_TEST_CLICKHOUSE_DIR (default /tmp/loupe-test-clickhouse) and free
# ports. Idempotent: installs the packages only when missing (apt-get update
# first only then), reuses servers already answering /ping on their
# recorded ports.
#
# Usage: scripts/peers/clickhouse.sh     (logs go to stderr)
# Prints: export LOUPE_TEST_CLICKHOUSE_URL=http://127.0.0.1:PORT_A
#         export LOUPE_TEST_CLICKHOUSE_CLUSTER=loupe_pair
#         export LOUPE_TEST_CLICKHOUSE_SHARD_URLS=http://127.0.0.1:PORT_A,http://127.0.0.1:PORT_B
#         export LOUPE_TEST_CLICKHOUSE_REPLICA_CLUSTER=loupe_replicas
#         export LOUPE_TEST_CLICKHOUSE_REPLICA_URLS=http://127.0.0.1:PORT_C,http://127.0.0.1:PORT_D
# (scripts/test.sh evals them). Stop: kill the pids in DIR/{a,b,c,d,zk}/pid
set -euo pipefail

log() { echo "clickhouse: $*" >&2; }

DIR="${LOUPE_TEST_CLICKHOUSE_DIR:-/tmp/loupe-test-clickhouse}"
CLUSTER=loupe_pair
REPLICAS=loupe_replicas
ZK_JAR=/usr/share/java/zookeeper.jar

if ! command -v clickhouse-server >/dev/null 2>&1 || [ ! -f "$ZK_JAR" ]; then
    log "installing clickhouse-server clickhouse-client zookeeper (apt)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show clickhouse-server zookeeper >/dev/null 2>&1; then
        apt-get update -qq >&2
    fi
    apt-get install -y -qq clickhouse-server clickhouse-client zookeeper >&2
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pings() { curl -sf --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null | grep -q Ok; }

mkdir -p "$DIR/a" "$DIR/b" "$DIR/c" "$DIR/d" "$DIR/zk/data"

# Ports: reuse the recorded ones (the servers name each other's TCP ports
# in their clusters, and ZooKeeper's), else pick new ones for all.
if [ -f "$DIR/ports" ] && [ "$(wc -w < "$DIR/ports")" -eq 13 ]; then
    read -r HTTP_A TCP_A IS_A HTTP_B TCP_B IS_B HTTP_C TCP_C IS_C HTTP_D TCP_D IS_D ZK < "$DIR/ports"
else
    HTTP_A=$(free_port); TCP_A=$(free_port); IS_A=$(free_port)
    HTTP_B=$(free_port); TCP_B=$(free_port); IS_B=$(free_port)
    HTTP_C=$(free_port); TCP_C=$(free_port); IS_C=$(free_port)
    HTTP_D=$(free_port); TCP_D=$(free_port); IS_D=$(free_port)
    ZK=$(free_port)
    echo "$HTTP_A $TCP_A $IS_A $HTTP_B $TCP_B $IS_B $HTTP_C $TCP_C $IS_C $HTTP_D $TCP_D $IS_D $ZK" > "$DIR/ports"
fi

# ZooKeeper, standalone: what replicated tables coordinate through.
zk_ok() { [ "$(echo ruok | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK; cat >&3; cat <&3" 2>/dev/null)" = imok ]; }
if [ -f "$DIR/zk/pid" ] && kill -0 "$(cat "$DIR/zk/pid")" 2>/dev/null && zk_ok; then
    log "reusing ZooKeeper on port $ZK"
else
    printf '%s\n' "tickTime=2000" "dataDir=$DIR/zk/data" "clientPort=$ZK" \
        "clientPortAddress=127.0.0.1" "admin.enableServer=false" \
        "4lw.commands.whitelist=ruok" > "$DIR/zk/zoo.cfg"
    log "starting ZooKeeper on 127.0.0.1:$ZK"
    setsid java -Xmx256m -cp "$ZK_JAR" org.apache.zookeeper.server.ZooKeeperServerMain \
        "$DIR/zk/zoo.cfg" >"$DIR/zk/out.log" 2>&1 < /dev/null &
    echo $! > "$DIR/zk/pid"
    for _ in $(seq 1 300); do
        zk_ok && break
        sleep 0.1
    done
    zk_ok || { log "ZooKeeper did not answer; see $DIR/zk/out.log"; exit 1; }
fi

write_config() {
    local d=$1 http=$2 tcp=$3 interserver=$4 replica=$5
    mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas" "$d/log"
    cat > "$d/users.xml" <<EOF
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
    cat > "$d/config.xml" <<EOF
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/error.log</errorlog><console>0</console></logger>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$interserver</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>134217728</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <remote_servers>
    <$CLUSTER>
      <shard><replica><host>127.0.0.1</host><port>$TCP_A</port></replica></shard>
      <shard><replica><host>127.0.0.1</host><port>$TCP_B</port></replica></shard>
    </$CLUSTER>
    <$REPLICAS>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$TCP_C</port></replica>
        <replica><host>127.0.0.1</host><port>$TCP_D</port></replica>
      </shard>
    </$REPLICAS>
  </remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>$ZK</port></node></zookeeper>
  <macros><shard>01</shard><replica>$replica</replica></macros>
</yandex>
EOF
}

start() {
    local name=$1 http=$2 tcp=$3 interserver=$4
    local d="$DIR/$name"
    if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null && pings "$http"; then
        log "reusing server $name on port $http"
        return
    fi
    write_config "$d" "$http" "$tcp" "$interserver" "$name"
    log "starting server $name on 127.0.0.1:$http (tcp $tcp)"
    # setsid: the server outlives this script (and the eval that ran it).
    # Started directly (no wrapper shell), so the pid file names the server.
    setsid clickhouse-server --config-file="$d/config.xml" \
        >"$d/log/stdout.txt" 2>&1 < /dev/null &
    echo $! > "$d/pid"
    # Up in well under a second when new; a server reloading many tables
    # (the tests' databases accumulate) takes longer.
    for _ in $(seq 1 600); do
        pings "$http" && return
        sleep 0.1
    done
    log "server $name did not answer /ping; see $d/log/"
    exit 1
}

start a "$HTTP_A" "$TCP_A" "$IS_A"
start b "$HTTP_B" "$TCP_B" "$IS_B"
start c "$HTTP_C" "$TCP_C" "$IS_C"
start d "$HTTP_D" "$TCP_D" "$IS_D"
log "ready ($(curl -s "http://127.0.0.1:$HTTP_A/?query=SELECT%20version()"))"
echo "export LOUPE_TEST_CLICKHOUSE_URL=http://127.0.0.1:$HTTP_A"
echo "export LOUPE_TEST_CLICKHOUSE_CLUSTER=$CLUSTER"
echo "export LOUPE_TEST_CLICKHOUSE_SHARD_URLS=http://127.0.0.1:$HTTP_A,http://127.0.0.1:$HTTP_B"
echo "export LOUPE_TEST_CLICKHOUSE_REPLICA_CLUSTER=$REPLICAS"
echo "export LOUPE_TEST_CLICKHOUSE_REPLICA_URLS=http://127.0.0.1:$HTTP_C,http://127.0.0.1:$HTTP_D"
