#!/usr/bin/env bash
# How long mqttd with persistence takes to come back after `kill -9` with a backlog on
# disk, and whether the backlog comes back. See bench/README.md.
#
#   bench/restart.sh                  1000 sessions x 100 messages, 3 restarts
#   SESSIONS=2000 MESSAGES=50 RESTARTS=5 bench/restart.sh
#   MOSQUITTO=0 bench/restart.sh      skip the Mosquitto comparison at the end
#   MQTTD=path LOADGEN=path bench/restart.sh   use these binaries instead of building them
#
# 1. Starts mqttd with `persistence true` in a fresh directory, on a free port in
#    18900-18999 (loopback only).
# 2. `loadgen store`: SESSIONS persistent sessions (Clean Session 0), each subscribed at
#    QoS 1 to its own topic, all disconnected; then MESSAGES QoS 1 messages to each topic,
#    every PUBACK awaited. Every message is now promised, so it must be on disk.
# 3. RESTARTS times: `kill -9` the broker, start it again on the same directory, and
#    `loadgen resume`: the time from the start of the new process to the CONNACK of one
#    of the sessions (retrying a refused connection every millisecond), which must come
#    back with Session Present 1 and all its MESSAGES messages, once each, in order. Each
#    restart checks a different session (its messages are then delivered and gone).
# 4. Stops mqttd with SIGTERM (its log then counts the journal's records and fsyncs).
# 5. Unless MOSQUITTO=0, the same with Mosquitto (`persistence true`), stopped with
#    SIGTERM instead of SIGKILL: Mosquitto writes its state only every autosave_interval
#    (1800 s) and at a clean stop, so after `kill -9` it would have nothing to restore.
#
# Every process this script starts is stopped by the PID it recorded (and by the EXIT trap
# if anything goes wrong); every wait is bounded.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
MQTTD=${MQTTD:+$(abs_path "$MQTTD")}
LOADGEN=${LOADGEN:+$(abs_path "$LOADGEN")}

cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-1000}
MESSAGES=${MESSAGES:-100}
RESTARTS=${RESTARTS:-3}
# The target of the issue: back in under 2 s.
TARGET_MS=2000
PORT_FIRST=18900
PORT_LAST=18999
BUILD_MQTTD=${MQTTD:+0}
BUILD_LOADGEN=${LOADGEN:+0}
MQTTD=${MQTTD:-target/release/mqttd}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
MOSQUITTO_BIN=/usr/sbin/mosquitto

WORK=$(mktemp -d /tmp/mqttd-restart.XXXXXX)
BROKER_PID=""
PORT=""

cleanup() {
    stop_broker TERM
    remove_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prepare() {
    ulimit -n 20000 || log "warning: could not raise ulimit -n to 20000 (now $(ulimit -n))"
    build_binaries
    local bin
    for bin in "$MQTTD" "$LOADGEN"; do
        if [[ ! -x $bin ]]; then
            log "not an executable: $bin"
            return 1
        fi
    done
    log "mqttd: $MQTTD"
    log "loadgen: $LOADGEN"
}

free_port() {
    local port
    for port in $(seq "$PORT_FIRST" "$PORT_LAST"); do
        if [[ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
            PORT=$port
            return 0
        fi
    done
    log "no free port in $PORT_FIRST-$PORT_LAST"
    return 1
}

# start_broker mqttd|mosquitto: in the background, on $PORT, with persistence in
# $WORK/<name>-data; records the PID in BROKER_PID and the start time (Unix ns) in
# STARTED_NS.
start_broker() {
    local name=$1
    case $name in
    mqttd)
        {
            echo "persistence true"
            echo "persistence_location $WORK/mqttd-data"
        } >"$WORK/mqttd.conf"
        STARTED_NS=$(date +%s%N)
        RUST_LOG=warn,mqttd::persistence=info,mqttd::server=info "$MQTTD" -c "$WORK/mqttd.conf" \
            --port "$PORT" --max-connections 20000 --max-queued 1000 >>"$WORK/broker.log" 2>&1 &
        ;;
    mosquitto)
        mkdir -p "$WORK/mosq-data"
        # Started as root, Mosquitto runs as the user mosquitto: let it reach its directory.
        chmod 711 "$WORK"
        if id -u mosquitto >/dev/null 2>&1; then chown mosquitto: "$WORK/mosq-data"; fi
        {
            echo "listener $PORT 127.0.0.1"
            echo "allow_anonymous true"
            echo "max_connections -1"
            echo "max_queued_messages 1000"
            echo "max_inflight_messages 20"
            echo "persistence true"
            echo "persistence_location $WORK/mosq-data/"
            echo "log_type error"
            echo "set_tcp_nodelay true"
        } >"$WORK/mosquitto.conf"
        STARTED_NS=$(date +%s%N)
        "$MOSQUITTO_BIN" -c "$WORK/mosquitto.conf" >>"$WORK/broker.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
}

# The session that restart number $1 checks: spread over all of them, all different.
session_for() {
    echo $(((2 * $1 - 1) * SESSIONS / (2 * RESTARTS)))
}

# bench NAME STOP_SIGNAL: the whole sequence for one broker.
bench() {
    local name=$1 signal=$2 r line session
    : >"$WORK/broker.log"
    free_port
    start_broker "$name"
    wait_listening "$PORT"
    log "$name on port $PORT: storing $SESSIONS sessions x $MESSAGES messages"
    line=$(timeout -k 5 120 "$LOADGEN" store --sessions "$SESSIONS" --messages "$MESSAGES" \
        --port "$PORT" --secs 60)
    echo "[$name store] $line"
    for r in $(seq "$RESTARTS"); do
        log "$name: $(du -sk "$WORK/$([[ $name == mqttd ]] && echo mqttd || echo mosq)-data" | cut -f1) KiB on disk; stopping it with SIG$signal"
        stop_broker "$signal"
        start_broker "$name"
        session=$(session_for "$r")
        # resume retries until --secs + 30 s: a broker that does not come back is bounded.
        if line=$(timeout -k 5 60 "$LOADGEN" resume --session "$session" \
            --messages "$MESSAGES" --port "$PORT" --started-ns "$STARTED_NS" --secs 10); then
            echo "[$name restart $r] $line"
            echo "$name $r $line" >>"$WORK/results.txt"
        else
            echo "[$name restart $r] FAILED"
            echo "$name $r FAILED" >>"$WORK/results.txt"
            tail -5 "$WORK/broker.log" | sed 's/^/    broker: /'
        fi
    done
    stop_broker TERM
    # mqttd's own account: records read at each start, records and fsyncs at a clean stop.
    grep -E "persistence: (read|journal closed|compacted)" "$WORK/broker.log" | sed 's/^/    /' || true
}

# Median and range of accept_ms per broker.
summarize() {
    echo
    echo "SUMMARY sessions=$SESSIONS messages_per_session=$MESSAGES restarts=$RESTARTS" \
        "(accept_ms: from starting the process to the CONNACK of a stored session)"
    awk -v target="$TARGET_MS" '
        $3 == "RESULT" {
            for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "accept_ms") v[$1, ++n[$1]] = kv[2] + 0 }
        }
        $3 == "FAILED" { failed[$1]++ }
        END {
            for (b in n) {
                for (i = 2; i <= n[b]; i++) {          # insertion sort
                    t = v[b, i]
                    for (j = i - 1; j >= 1 && v[b, j] > t; j--) v[b, j + 1] = v[b, j]
                    v[b, j + 1] = t
                }
                m = (n[b] % 2) ? v[b, (n[b] + 1) / 2] : (v[b, n[b] / 2] + v[b, n[b] / 2 + 1]) / 2
                printf "%-10s accept_ms median %.1f (%.1f-%.1f)%s\n", b, m, v[b, 1], v[b, n[b]],
                    (b == "mqttd") ? ((v[b, n[b]] < target) ? ", all under " target " ms" : ", NOT all under " target " ms") : ""
            }
            for (b in failed) printf "%-10s %d restarts FAILED\n", b, failed[b]
        }' "$WORK/results.txt"
}

prepare
: >"$WORK/results.txt"
bench mqttd KILL
if [[ "${MOSQUITTO:-1}" == 1 ]]; then
    if [[ -x $MOSQUITTO_BIN ]]; then
        bench mosquitto TERM
    else
        log "no $MOSQUITTO_BIN: skipping the Mosquitto comparison"
    fi
fi
summarize
