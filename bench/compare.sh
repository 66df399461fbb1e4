#!/usr/bin/env bash
# Runs every load generator scenario against mqttd, Mosquitto and rumqttd, on this machine,
# and prints each RESULT line, then per scenario the median figure for each broker and the
# medians of the per-round ratios mqttd / mosquitto and mqttd / rumqttd. See
# bench/README.md.
#
#   bench/compare.sh             3 rounds of 5 s runs (about 20 minutes on 2 cores)
#   QUICK=1 bench/compare.sh     1 round of 2 s runs
#   ROUNDS=5 SECS=10 bench/compare.sh
#   ONLY="pair8 latency" bench/compare.sh      just these scenarios (labels below)
#   MOSQ_NODELAY=0 bench/compare.sh            leave Mosquitto's default, Nagle's algorithm on
#   RUMQTTD=0 bench/compare.sh                 leave rumqttd out (it is left out, with a note,
#                                              when ~/.cargo/bin/rumqttd or $RUMQTTD is missing)
#   RAISE_MAP_COUNT=1 bench/compare.sh         raise vm.max_map_count for the run (needs root)
#   BASELINE=../base/target/release/mqttd bench/compare.sh
#                                   also run that mqttd (say, the commit before a change) as
#                                   mqttd-base, and print the ratio mqttd / mqttd-base too
#   MQTTD=path LOADGEN=path bench/compare.sh   use these binaries instead of building them
#   MQTTD_ARGS="-c bench/acl-100.conf" BASELINE=target/release/mqttd ONLY="pair8 fanout256" \
#       bench/compare.sh               extra arguments for mqttd only (BASELINE_ARGS for
#                                      mqttd-base): here, the cost of a 100-line acl_file
#   PERSIST=1 bench/compare.sh         only the durable scenarios (qos1_durable,
#                                      fanin_q1_durable): persistent subscribers, persistence
#                                      on for mqttd and Mosquitto, and mqttd without it as
#                                      mqttd-mem; they also run when ONLY names them, never
#                                      otherwise
#   TRANSPORTS=1 bench/compare.sh      only the transport scenarios: test certificates made
#                                      with openssl, one Mosquitto-style configuration file
#                                      with four listeners (tcp, tls, ws, wss) given to both
#                                      brokers with -c, pair8 and fanout16 over each, and
#                                      200 000-byte messages cut into 6 WebSocket messages
#                                      (large_*); they also run when ONLY names them
#
# Every run gets a fresh broker process on a free port in 18900-18999, started by this
# script and stopped by the PID it recorded (and by the EXIT trap if anything goes wrong).
# Rounds alternate the brokers: mqttd, mosquitto, rumqttd, mqttd, mosquitto, rumqttd, ...
# or, with BASELINE, mqttd, mqttd-base, mosquitto, rumqttd, ... The durable and transport
# scenarios run without rumqttd.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
MQTTD=${MQTTD:+$(abs_path "$MQTTD")}
LOADGEN=${LOADGEN:+$(abs_path "$LOADGEN")}
BASELINE=${BASELINE:+$(abs_path "$BASELINE")}
# rumqttd, the second peer (`cargo install rumqttd --version 0.20.0`; bench/README.md):
# RUMQTTD=0 leaves it out, and so does a missing binary (with a note).
if [[ ${RUMQTTD:-} != 0 ]]; then
    RUMQTTD=$(abs_path "${RUMQTTD:-$HOME/.cargo/bin/rumqttd}")
fi

cd "$(dirname "$0")/.."

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    SECS=${SECS:-2}
else
    ROUNDS=${ROUNDS:-3}
    SECS=${SECS:-5}
fi
# The whole script stops starting new runs after this many seconds.
SCRIPT_LIMIT=${SCRIPT_LIMIT:-1500}
PORT_FIRST=18900
PORT_LAST=18999
# Built by prepare() from this checkout unless given: MQTTD lets a copy built elsewhere
# stand in (while this checkout does not build, or to keep its target/ untouched).
BUILD_MQTTD=${MQTTD:+0}
BUILD_LOADGEN=${LOADGEN:+0}
MQTTD=${MQTTD:-target/release/mqttd}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
MOSQUITTO=/usr/sbin/mosquitto
# The brokers each round of the durable and transport scenarios runs, in this order.
if [[ -n "$BASELINE" ]]; then
    BROKERS=(mqttd mqttd-base mosquitto)
else
    BROKERS=(mqttd mosquitto)
fi
# The brokers of the other scenarios: the same, then rumqttd if prepare() finds it.
PLAIN_BROKERS=("${BROKERS[@]}")

# label | loadgen arguments | metrics summarised (the first is the headline)
SCENARIOS=(
    "pair1|pair --pairs 1|rate"
    "pair8|pair --pairs 8|rate"
    "fanin_q0|fanin --pubs 16 --qos 0|rate"
    "fanin_q1|fanin --pubs 16 --qos 1|rate"
    "fanout16|fanout --subs 16|rate"
    "fanout256|fanout --subs 256|rate"
    "qos1|qos1 --pairs 8|rate p99_us"
    "qos2|qos2 --pairs 8|rate p99_us"
    "qos1_wide|qos1 --pairs 8|rate p99_us"
    "qos2_wide|qos2 --pairs 8|rate p99_us"
    "latency|latency --rate 10000|p99_us p50_us p999_us"
    "conns5k|conns --conns 5000|rss_per_conn_kib connect_rate listen_drops"
    "conns10k|conns --conns 10000|rss_per_conn_kib connect_rate listen_drops"
    "serial3k|conns --conns 3000 --parallel 1|connect_rate listen_drops"
    "burst3k|conns --conns 3000 --parallel 3000|connect_rate listen_drops"
)
# Settings of one scenario for one broker, on top of what start_broker gives every run:
# for mqttd (and mqttd-base), more command-line arguments; for mosquitto, `option=value`
# replacing the value of an option start_broker writes into its configuration file; for
# rumqttd, `table.key=value` replacing a value of its TOML file (`router.*`, and
# `connections.*` for its [v4.1.connections]). The *_wide pair: each broker's limit on
# unacknowledged QoS 1/2 messages per client as wide as it goes (rumqttd 0.20 has no such
# setting: its window towards a subscriber is fixed at 100, and max_inflight_count is how
# many packets it reads from a client in one batch; see bench/README.md).
declare -A SCENARIO_SETTINGS=(
    [qos1_wide/mqttd]="--max-inflight 65535"
    [qos1_wide/mosquitto]="max_inflight_messages=0"
    [qos1_wide/rumqttd]="connections.max_inflight_count=65535"
    [qos2_wide/mqttd]="--max-inflight 65535"
    [qos2_wide/mosquitto]="max_inflight_messages=0"
    [qos2_wide/rumqttd]="connections.max_inflight_count=65535"
)
# Arguments the load generator gets in every run against one broker. rumqttd 0.20 refuses
# a CONNECT with Keep Alive 0 (the load generator's default: no keepalive timer), so its
# clients ask for the largest, 65 535 s, which no run comes near.
declare -A BROKER_LOADGEN_ARGS=(
    [rumqttd]="--keep-alive 65535"
)
# The load generator's own ceiling: the same as pair8, against its trivial relay.
RELAY_SCENARIO="relay_pair8|pair --pairs 8|rate"
# Durable: the subscribers keep their sessions (Clean Session 0), so a broker with
# persistence must write what it queues for them. Each round runs mqttd and Mosquitto with
# persistence on (a fresh directory per run) and mqttd without it, as mqttd-mem. They run
# only when ONLY names them, or with PERSIST=1 (and no ONLY), which runs them alone.
DURABLE_SCENARIOS=(
    "qos1_durable|qos1 --pairs 8 --persistent|rate"
    "fanin_q1_durable|fanin --pubs 16 --qos 1 --persistent|rate"
)
if [[ -n "$BASELINE" ]]; then
    DURABLE_BROKERS=(mqttd mqttd-base mqttd-mem mosquitto)
else
    DURABLE_BROKERS=(mqttd mqttd-mem mosquitto)
fi
# Transports: both brokers read one configuration file with four listeners, and each
# scenario runs over each transport; the label is SCENARIO_TRANSPORT (pair8_tls). Only with
# TRANSPORTS=1 (and no ONLY), or when ONLY names them. `@TCP@`, `@TLS@`, `@WS@`, `@WSS@`
# become the listeners' ports and `@CA@` the test CA's certificate.
TRANSPORT_KINDS=(tcp tls ws wss)
TRANSPORT_SCENARIOS=(
    "pair8|pair --pairs 8|rate"
    "fanout16|fanout --subs 16|rate"
)
# Large messages (200 000 bytes, QoS 0, one at a time, each PUBLISH cut into 6 writes:
# over ws, 6 WebSocket messages, as MQTT.js sends them): "kind" is publisher>subscriber.
LARGE_MESSAGES=${LARGE_MESSAGES:-$([[ "${QUICK:-0}" == 1 ]] && echo 5 || echo 10)}
LARGE_KINDS=(tcp ws ws_ws)
LARGE_SCENARIO="large|large --messages $LARGE_MESSAGES --parts 6|p50_ms max_ms"
# What each large kind means: publisher on the first listener, subscriber on the second.
declare -A LARGE_ARGS=(
    [tcp]="--transport tcp --port @TCP@"
    [ws]="--transport ws --port @WS@ --sub-transport tcp --sub-port @TCP@"
    [ws_ws]="--transport ws --port @WS@"
)
declare -A TRANSPORT_ARGS=(
    [tcp]="--transport tcp --port @TCP@"
    [tls]="--transport tls --port @TLS@ --cafile @CA@"
    [ws]="--transport ws --port @WS@"
    [wss]="--transport wss --port @WSS@ --cafile @CA@"
)
# The load generator's ceiling over each transport: pair8 against `loadgen relay
# --transport T` (relay_pair8_T), with the test certificate for tls and wss.
TRANSPORT_RELAY="relay_pair8|pair --pairs 8|rate"
# The brokers of the transport runs: mqttd drops out if it refuses the file (see
# probe_transports).
TRANSPORT_BROKERS=("${BROKERS[@]}")
# Extra arguments of the relay: its transport, in relay_pair8_T runs only.
RELAY_TRANSPORT=()

START_TIME=$SECONDS
WORK=$(mktemp -d /tmp/mqttd-bench.XXXXXX)
RESULTS=$WORK/results.txt
: >"$RESULTS"
BROKER_PID=""
PORT=""
NEXT_PORT=$PORT_FIRST
# The vm.max_map_count to put back on exit, if RAISE_MAP_COUNT=1 changed it.
OLD_MAP_COUNT=""
# 1 while a durable scenario runs: mqttd, mqttd-base and mosquitto get persistence on.
DURABLE=0
# Numbers the runs, for each run's fresh persistence directory.
RUN_NO=0
# This run's persistence directory, if it has one (removed after the run).
DATA_DIR=""
# 1 while a transport scenario runs: the brokers get the four-listener file.
TRANSPORT_RUN=0
# The four listeners' ports of the current transport run.
declare -A TPORT=()

# Whatever happens, the broker we started goes away, and so do our temporary files.
cleanup() {
    stop_broker TERM
    if [[ -n "$OLD_MAP_COUNT" ]]; then
        sysctl -q -w vm.max_map_count="$OLD_MAP_COUNT" && log "vm.max_map_count back to $OLD_MAP_COUNT"
    fi
    remove_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prepare() {
    # 10 000 connections need 10 000 descriptors in the broker and in the load generator.
    ulimit -n 20000 || log "warning: could not raise ulimit -n to 20000 (now $(ulimit -n))"
    local maps
    maps=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
    if ((maps < 200000)) && [[ "${RAISE_MAP_COUNT:-0}" == 1 ]]; then
        # Opt-in, and undone on exit: a system-wide setting, like the open-files limit
        # above but for the whole machine.
        sysctl -q -w vm.max_map_count=262144 && OLD_MAP_COUNT=$maps &&
            log "vm.max_map_count raised from $maps to 262144 for this run (RAISE_MAP_COUNT=1)"
    elif ((maps < 200000)); then
        log "note: vm.max_map_count is $maps; each thread costs about 4 memory maps, so mqttd" \
            "(up to 2 threads per connection) stops at about $((maps / 8)) connections;" \
            "RAISE_MAP_COUNT=1 raises it for the run (see bench/README.md)"
    fi
    build_binaries
    local bin
    for bin in "$MQTTD" "$LOADGEN" ${BASELINE:+"$BASELINE"}; do
        if [[ ! -x $bin ]]; then
            log "not an executable: $bin"
            return 1
        fi
    done
    for bin in "$MQTTD" ${BASELINE:+"$BASELINE"}; do
        # The same check as above, for binaries built elsewhere: a broker with the test-only
        # fault topics compares a topic per PUBLISH that the other may not.
        if grep -qa 'fault/panic' "$bin"; then
            log "warning: $bin was built with the fault-injection feature" \
                "(build it with \`cargo build --release\` alone)"
        fi
    done
    log "mqttd: $MQTTD"
    if [[ -n "$BASELINE" ]]; then log "mqttd-base: $BASELINE"; fi
    log "loadgen: $LOADGEN"
    if [[ ! -x $MOSQUITTO ]]; then
        log "installing mosquitto"
        apt-get update && apt-get install -y mosquitto
    fi
    log "$($MOSQUITTO -h 2>&1 | head -1)"
    if any_plain_wanted; then
        find_rumqttd
    fi
    if any_durable_wanted || any_transport_wanted; then
        if [[ " ${MQTTD_ARGS:-} ${BASELINE_ARGS:-} " =~ [[:space:]](-c|--config)[[:space:]] ]]; then
            log "MQTTD_ARGS and BASELINE_ARGS may not hold -c/--config with durable or" \
                "transport scenarios: they give mqttd a configuration file of their own"
            return 1
        fi
    fi
    if any_transport_wanted; then
        # Mosquitto, started as root, reads its key as the user mosquitto.
        chmod 711 "$WORK"
        make_certs
        probe_transports
    fi
    if any_durable_wanted; then
        # Mosquitto, started as root, runs as the user mosquitto: its persistence
        # directory under $WORK must be reachable and writable for that user.
        chmod 711 "$WORK"
        fsync_cost
    fi
}

# Adds rumqttd to the brokers of the plain scenarios, unless RUMQTTD=0 or it is missing.
find_rumqttd() {
    if [[ $RUMQTTD == 0 ]]; then
        log "rumqttd left out (RUMQTTD=0)"
    elif [[ ! -x $RUMQTTD ]]; then
        log "note: no rumqttd at $RUMQTTD, so the runs go on without it" \
            "(cargo install rumqttd --version 0.20.0, or RUMQTTD=path; see bench/README.md)"
    else
        PLAIN_BROKERS+=(rumqttd)
        log "rumqttd: $RUMQTTD ($("$RUMQTTD" --version 2>&1 | head -1))"
    fi
}

# Logs what one small write with O_DSYNC costs in $WORK (where the persistence
# directories are): the floor under every acknowledgement that waits for the disk.
fsync_cost() {
    local out secs
    out=$(LC_ALL=C dd if=/dev/zero of="$WORK/dsync-test" bs=100 count=1000 oflag=dsync 2>&1) || {
        log "dd oflag=dsync failed: $out"
        return 0
    }
    rm -f "$WORK/dsync-test"
    secs=$(sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' <<<"$out")
    log "fsync cost: $(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1e6 / 1000 }') us per" \
        "100-byte write with O_DSYNC in $WORK (dd, 1000 writes in $secs s)"
}

# Test certificates in $WORK/certs: a CA, and a server certificate it signs for localhost
# and 127.0.0.1 (the load generator checks the name localhost against the CA).
make_certs() {
    local dir=$WORK/certs
    if ! command -v openssl >/dev/null; then
        log "installing openssl"
        apt-get update && apt-get install -y openssl
    fi
    mkdir -p "$dir"
    chmod 711 "$dir"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mqttd bench CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout "$dir/server.key" -out "$dir/server.csr" &&
            printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth" >"$dir/server.ext" &&
            openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.pem" \
                -CAkey "$dir/ca.key" -CAcreateserial -extfile "$dir/server.ext" \
                -out "$dir/server.pem"
    } >"$dir/openssl.log" 2>&1 || {
        log "openssl failed:"
        tail -5 "$dir/openssl.log" >&2
        return 1
    }
    chmod 644 "$dir/ca.pem" "$dir/server.pem"
    if id -u mosquitto >/dev/null 2>&1; then chown mosquitto: "$dir/server.key"; fi
    log "test certificates in $dir (CA ca.pem; server.pem for localhost and 127.0.0.1)"
}

# Sets TPORT[tcp|tls|ws|wss] to four free ports and writes the configuration file both
# brokers read in transport runs: the four listeners, then the settings the other
# scenarios give Mosquitto (mqttd reads them too, or ignores them with a warning).
write_transport_config() {
    local kind
    for kind in "${TRANSPORT_KINDS[@]}"; do
        free_port || return 1
        TPORT[$kind]=$PORT
    done
    local certs=$WORK/certs
    {
        echo "listener ${TPORT[tcp]} 127.0.0.1"
        echo "allow_anonymous true"
        echo "listener ${TPORT[tls]} 127.0.0.1"
        echo "certfile $certs/server.pem"
        echo "keyfile $certs/server.key"
        echo "listener ${TPORT[ws]} 127.0.0.1"
        echo "protocol websockets"
        echo "listener ${TPORT[wss]} 127.0.0.1"
        echo "protocol websockets"
        echo "certfile $certs/server.pem"
        echo "keyfile $certs/server.key"
        echo "max_queued_messages 1000"
        echo "max_inflight_messages 20"
        echo "persistence false"
        echo "log_type error"
        # Connects and disconnects with their reason (a few lines per run): a failed run's
        # broker log then says why Mosquitto closed a connection.
        echo "log_type notice"
        if [[ "${MOSQ_NODELAY:-1}" == 1 ]]; then echo "set_tcp_nodelay true"; fi
    } >"$WORK/transports.conf"
}

# Starts mqttd (and mqttd-base) once with the transports file: a broker that refuses it
# (mqttd before its TLS and WebSocket listeners exist) is left out of the transport runs,
# with its own words, instead of failing every run.
probe_transports() {
    local broker kept=()
    for broker in "${BROKERS[@]}"; do
        if [[ $broker == mosquitto ]]; then
            kept+=("$broker")
            continue
        fi
        TRANSPORT_RUN=1
        if write_transport_config && start_broker "$broker" "${TPORT[tcp]}" 2>/dev/null; then
            kept+=("$broker")
        else
            log "$broker cannot run the transports configuration, so the transport scenarios" \
                "run without it. It said: $(grep -v '^\s*$' "$WORK/broker.log" | tail -1)"
        fi
        stop_broker TERM
        TRANSPORT_RUN=0
    done
    TRANSPORT_BROKERS=("${kept[@]}")
}

# Sets PORT to a port in our range that nothing listens on. (A function, not `$(...)`:
# a subshell could not move NEXT_PORT on.)
free_port() {
    local tries=0
    while ((tries <= PORT_LAST - PORT_FIRST)); do
        PORT=$NEXT_PORT
        NEXT_PORT=$((PORT >= PORT_LAST ? PORT_FIRST : PORT + 1))
        tries=$((tries + 1))
        if [[ -z "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]]; then
            return 0
        fi
    done
    log "no free port in $PORT_FIRST-$PORT_LAST"
    return 1
}

# start_broker NAME PORT [LABEL]: starts it in the background and records its PID in
# BROKER_PID, with the scenario LABEL's settings for it (SCENARIO_SETTINGS), if any.
# With DURABLE=1, mqttd, mqttd-base and mosquitto get persistence on, in a fresh directory
# DATA_DIR; mqttd-mem is mqttd as always, memory only.
start_broker() {
    local name=$1 port=$2 label=${3:-}
    local settings=${SCENARIO_SETTINGS[$label/${name%-base}]:-}
    RUN_NO=$((RUN_NO + 1))
    DATA_DIR=""
    case $name in
    mqttd | mqttd-base | mqttd-mem)
        local bin=$MQTTD extra=${MQTTD_ARGS:-} rust_log=warn persist=()
        if [[ $name == mqttd-base ]]; then bin=$BASELINE extra=${BASELINE_ARGS:-}; fi
        if [[ $TRANSPORT_RUN == 1 ]]; then
            # shellcheck disable=SC2086 # $extra holds whole arguments
            RUST_LOG=warn "$bin" -c "$WORK/transports.conf" $extra --max-connections 20000 \
                --max-queued 1000 >"$WORK/broker.log" 2>&1 &
            BROKER_PID=$!
            wait_transport_listeners
            return
        fi
        if [[ $DURABLE == 1 && $name != mqttd-mem ]]; then
            DATA_DIR=$WORK/mqttd-data-$RUN_NO
            {
                echo "persistence true"
                echo "persistence_location $DATA_DIR"
            } >"$WORK/mqttd-persist.conf"
            persist=(-c "$WORK/mqttd-persist.conf")
            # At a clean stop the journal logs how many records it wrote in how many fsyncs.
            rust_log=warn,mqttd::persistence=info
        fi
        # $extra and $settings are split into words on purpose: they hold whole arguments.
        # shellcheck disable=SC2086
        RUST_LOG=$rust_log "$bin" "${persist[@]}" $extra --port "$port" \
            --max-connections 20000 --max-queued 1000 $settings >"$WORK/broker.log" 2>&1 &
        ;;
    mosquitto)
        if [[ $TRANSPORT_RUN == 1 ]]; then
            $MOSQUITTO -c "$WORK/transports.conf" >"$WORK/broker.log" 2>&1 &
            BROKER_PID=$!
            wait_transport_listeners
            return
        fi
        local -A option=(
            [max_connections]=-1
            [max_queued_messages]=1000
            [max_inflight_messages]=20
        )
        apply_settings option "$settings" || return 1
        {
            echo "listener $port 127.0.0.1"
            echo "allow_anonymous true"
            echo "max_connections ${option[max_connections]}"
            echo "max_queued_messages ${option[max_queued_messages]}"
            echo "max_inflight_messages ${option[max_inflight_messages]}"
            if [[ $DURABLE == 1 ]]; then
                DATA_DIR=$WORK/mosq-data-$RUN_NO
                mkdir -p "$DATA_DIR"
                if id -u mosquitto >/dev/null 2>&1; then chown mosquitto: "$DATA_DIR"; fi
                echo "persistence true"
                echo "persistence_location $DATA_DIR/"
            else
                echo "persistence false"
            fi
            echo "log_type error"
            # Like mqttd, which sets TCP_NODELAY on every connection: otherwise Mosquitto's
            # latency is mostly delayed ACKs (see bench/README.md).
            if [[ "${MOSQ_NODELAY:-1}" == 1 ]]; then echo "set_tcp_nodelay true"; fi
        } >"$WORK/mosquitto.conf"
        $MOSQUITTO -c "$WORK/mosquitto.conf" >"$WORK/broker.log" 2>&1 &
        ;;
    rumqttd)
        write_rumqttd_config "$port" "$settings" || return 1
        # -q: no banner. It logs warnings and errors only, unless given -v.
        "$RUMQTTD" -q -c "$WORK/rumqttd.toml" >"$WORK/broker.log" 2>&1 &
        ;;
    relay)
        # It stops by itself after --secs even if this script is killed with SIGKILL.
        $LOADGEN relay --port "$port" --secs $((SECS + 120)) "${RELAY_TRANSPORT[@]}" \
            >"$WORK/broker.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
    wait_listening "$port"
}

# apply_settings TABLE "KEY=VALUE ...": sets each KEY of the associative array TABLE (a
# broker's configuration, by name) to VALUE; a KEY the table does not have is a mistake in
# SCENARIO_SETTINGS, and fails the run.
apply_settings() {
    local -n table=$1
    local pair key
    for pair in $2; do
        key=${pair%%=*}
        if [[ ! -v "table[$key]" ]]; then
            log "SCENARIO_SETTINGS: no setting $key here (known: ${!table[*]})"
            return 1
        fi
        table["$key"]=${pair#*=}
    done
}

# write_rumqttd_config PORT SETTINGS: rumqttd's TOML file for one run, $WORK/rumqttd.toml:
# one MQTT 3.1.1 (v4) server on 127.0.0.1:PORT with the limits the other brokers get, and
# nothing else (no v5 or WebSocket server, no console, no Prometheus exporter). SETTINGS
# are `table.key=value` pairs from SCENARIO_SETTINGS. The values and why: bench/README.md.
write_rumqttd_config() {
    local port=$1
    local -A value=(
        [router.max_connections]=20000
        [router.max_outgoing_packet_count]=200
        [router.max_segment_size]=104857600
        [router.max_segment_count]=10
        [connections.connection_timeout_ms]=60000
        [connections.max_payload_size]=268435455
        [connections.max_inflight_count]=100
    )
    apply_settings value "$2" || return 1
    cat >"$WORK/rumqttd.toml" <<EOF
id = 0

[router]
max_connections = ${value[router.max_connections]}
max_outgoing_packet_count = ${value[router.max_outgoing_packet_count]}
max_segment_size = ${value[router.max_segment_size]}
max_segment_count = ${value[router.max_segment_count]}

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0

[v4.1.connections]
connection_timeout_ms = ${value[connections.connection_timeout_ms]}
max_payload_size = ${value[connections.max_payload_size]}
max_inflight_count = ${value[connections.max_inflight_count]}
dynamic_filters = true
EOF
}

# Waits until all four listeners of a transport run listen (each up to 10 s).
wait_transport_listeners() {
    local kind
    for kind in "${TRANSPORT_KINDS[@]}"; do
        wait_listening "${TPORT[$kind]}" || return 1
    done
}

# The arguments of a transport run, with the listeners' ports and the CA put in.
transport_args() {
    local arg
    for arg in "$@"; do
        arg=${arg//@TCP@/${TPORT[tcp]}}
        arg=${arg//@TLS@/${TPORT[tls]}}
        arg=${arg//@WS@/${TPORT[ws]}}
        arg=${arg//@WSS@/${TPORT[wss]}}
        echo "${arg//@CA@/$WORK/certs/ca.pem}"
    done
}

# start_fresh BROKER LABEL: sets PORT and starts the broker: on one port, or in a
# transport run on four, with the configuration file written afresh on free ports.
start_fresh() {
    if [[ $TRANSPORT_RUN == 1 ]]; then
        write_transport_config && PORT=${TPORT[tcp]} && start_broker "$1" "$PORT" "$2"
    else
        free_port && start_broker "$1" "$PORT" "$2"
    fi
}

# run_one LABEL BROKER ROUND ARGS...: one run on a fresh broker; appends to RESULTS.
run_one() {
    local label=$1 broker=$2 round=$3
    shift 3
    local extra=() client=() line="" rc=0 args=() limit=$((SECS + 60))
    : >"$WORK/loadgen.err"
    if start_fresh "$broker" "$label"; then
        if [[ $1 == conns ]]; then extra=(--broker-pid "$BROKER_PID"); fi
        read -r -a client <<<"${BROKER_LOADGEN_ARGS[$broker]:-}"
        extra+=("${client[@]}")
        if [[ $TRANSPORT_RUN == 1 ]]; then
            mapfile -t args < <(transport_args "$@")
        else
            args=("$@" --port "$PORT")
        fi
        # A large message may take seconds (the load generator allows each 30 s).
        if [[ $1 == large ]]; then limit=$((LARGE_MESSAGES * 31 + 60)); fi
        # The load generator has its own hard deadline (--secs + 30 s); this is a second net.
        line=$(timeout -k 5 "$limit" "$LOADGEN" "${args[@]}" --secs "$SECS" \
            "${extra[@]}" 2>"$WORK/loadgen.err") || rc=$?
    else
        rc=-1
    fi
    stop_broker TERM
    # Durable runs only: journal counts and disk use; removes the persistence directory.
    local journal
    journal=$(journal_fields)
    if [[ $rc == 0 && $line == RESULT* ]]; then
        line+=$journal
        echo "$label $broker $round $line" >>"$RESULTS"
        echo "[$label $broker round $round] $line"
    else
        echo "$label $broker $round FAILED rc=$rc" >>"$RESULTS"
        echo "[$label $broker round $round] FAILED (exit code $rc)"
        sed 's/^/    loadgen: /' "$WORK/loadgen.err" | tail -5
        sed 's/^/    broker:  /' "$WORK/broker.log" | tail -5
    fi
}

# After a durable run: mqttd's count of journal records and fsyncs (from its log line at a
# clean stop) and the size of the persistence directory, as extra RESULT fields; then the
# directory goes.
journal_fields() {
    [[ -n "$DATA_DIR" ]] || return 0
    local counts
    counts=$(sed -n 's/.*journal closed; \([0-9]*\) records written in \([0-9]*\) fsyncs.*/\1 \2/p' \
        "$WORK/broker.log" | tail -1)
    if [[ -n "$counts" ]]; then
        # shellcheck disable=SC2086 # two numbers, two arguments
        printf ' records=%s fsyncs=%s' $counts
    fi
    printf ' disk_kib=%s' "$(du -sk "$DATA_DIR" | cut -f1)"
    rm -rf "$DATA_DIR"
    DATA_DIR=""
}

# Labels of the transport scenarios: relay_pair8_tcp ... relay_pair8_wss, pair8_tcp ...
# fanout16_wss, large_tcp ... large_ws_ws.
transport_labels() {
    local entry kind
    for entry in "$TRANSPORT_RELAY" "${TRANSPORT_SCENARIOS[@]}"; do
        for kind in "${TRANSPORT_KINDS[@]}"; do echo "${entry%%|*}_$kind"; done
    done
    for kind in "${LARGE_KINDS[@]}"; do echo "${LARGE_SCENARIO%%|*}_$kind"; done
}

is_transport() {
    [[ " $(transport_labels | tr '\n' ' ') " == *" $1 "* ]]
}

is_durable() {
    local entry
    for entry in "${DURABLE_SCENARIOS[@]}"; do
        [[ ${entry%%|*} == "$1" ]] && return 0
    done
    return 1
}

# Without ONLY: every scenario but the durable and transport ones; with PERSIST=1 the
# durable ones, with TRANSPORTS=1 the transport ones (both: both).
wanted() {
    if [[ -n "${ONLY:-}" ]]; then
        [[ " $ONLY " == *" $1 "* ]]
    elif [[ "${PERSIST:-0}" == 1 || "${TRANSPORTS:-0}" == 1 ]]; then
        { [[ "${PERSIST:-0}" == 1 ]] && is_durable "$1"; } ||
            { [[ "${TRANSPORTS:-0}" == 1 ]] && is_transport "$1"; }
    elif is_durable "$1" || is_transport "$1"; then
        return 1
    fi
}

any_transport_wanted() {
    local label
    for label in $(transport_labels); do
        wanted "$label" && return 0
    done
    return 1
}

any_durable_wanted() {
    local entry
    for entry in "${DURABLE_SCENARIOS[@]}"; do
        wanted "${entry%%|*}" && return 0
    done
    return 1
}

any_plain_wanted() {
    local entry
    for entry in "$RELAY_SCENARIO" "${SCENARIOS[@]}"; do
        wanted "${entry%%|*}" && return 0
    done
    return 1
}

time_left() {
    if ((SECONDS - START_TIME > SCRIPT_LIMIT)); then
        log "SCRIPT_LIMIT (${SCRIPT_LIMIT} s) reached: skipping the remaining runs"
        return 1
    fi
}

run_all() {
    local entry label args round broker
    for entry in "$RELAY_SCENARIO" "${SCENARIOS[@]}"; do
        IFS='|' read -r label args _ <<<"$entry"
        wanted "$label" || continue
        for round in $(seq "$ROUNDS"); do
            time_left || return 0
            if [[ $label == relay_* ]]; then
                # shellcheck disable=SC2086 # $args is a list of arguments
                run_one "$label" relay "$round" $args
            else
                for broker in "${PLAIN_BROKERS[@]}"; do
                    # shellcheck disable=SC2086
                    run_one "$label" "$broker" "$round" $args
                done
            fi
        done
    done
    DURABLE=1
    for entry in "${DURABLE_SCENARIOS[@]}"; do
        IFS='|' read -r label args _ <<<"$entry"
        wanted "$label" || continue
        for round in $(seq "$ROUNDS"); do
            time_left || break 2
            for broker in "${DURABLE_BROKERS[@]}"; do
                # shellcheck disable=SC2086
                run_one "$label" "$broker" "$round" $args
            done
        done
    done
    DURABLE=0
    run_transports
}

# The relay over each transport, round by round: one relay per run, on one port.
run_transport_relays() {
    local label args kind round client certs=$WORK/certs
    IFS='|' read -r label args _ <<<"$TRANSPORT_RELAY"
    for round in $(seq "$ROUNDS"); do
        for kind in "${TRANSPORT_KINDS[@]}"; do
            wanted "${label}_$kind" || continue
            time_left || return 1
            RELAY_TRANSPORT=(--transport "$kind")
            client=(--transport "$kind")
            if [[ $kind == tls || $kind == wss ]]; then
                RELAY_TRANSPORT+=(--certfile "$certs/server.pem" --keyfile "$certs/server.key")
                client+=(--cafile "$certs/ca.pem")
            fi
            # shellcheck disable=SC2086 # $args is a list of arguments
            run_one "${label}_$kind" relay "$round" $args "${client[@]}"
        done
    done
    RELAY_TRANSPORT=()
}

# Each transport scenario, round by round: every transport, every broker, a fresh broker
# for each run, as the other scenarios.
run_transports() {
    local entry label args kinds kind kind_args round broker
    run_transport_relays || return 0
    TRANSPORT_RUN=1
    for entry in "${TRANSPORT_SCENARIOS[@]}" "$LARGE_SCENARIO"; do
        IFS='|' read -r label args _ <<<"$entry"
        if [[ $label == large ]]; then kinds=("${LARGE_KINDS[@]}"); else kinds=("${TRANSPORT_KINDS[@]}"); fi
        for round in $(seq "$ROUNDS"); do
            for kind in "${kinds[@]}"; do
                wanted "${label}_$kind" || continue
                if [[ $label == large ]]; then
                    kind_args=${LARGE_ARGS[$kind]}
                else
                    kind_args=${TRANSPORT_ARGS[$kind]}
                fi
                time_left || break 3
                for broker in "${TRANSPORT_BROKERS[@]}"; do
                    # shellcheck disable=SC2086 # lists of arguments
                    run_one "${label}_$kind" "$broker" "$round" $args $kind_args
                done
            done
        done
    done
    TRANSPORT_RUN=0
}

# The two summaries' shared awk functions: the median of a list, and a figure shown
# with a sensible number of digits.
# shellcheck disable=SC2016 # awk's own $ fields
AWK_FUNCTIONS='
function median(list, n,    i, j, t) {
    if (n == 0) return "-"
    for (i = 2; i <= n; i++) {            # insertion sort: a handful of values
        t = list[i]
        for (j = i - 1; j >= 1 && list[j] > t; j--) list[j + 1] = list[j]
        list[j + 1] = t
    }
    return (n % 2) ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
}
function show(v) {
    if (v == "-") return "-"
    return (v >= 1000) ? sprintf("%.0f", v) : sprintf("%.2f", v)
}
'

# The summary, in awk: collect `metric` for `label` by broker and round; print the median
# for each of `brokers`, then for each peer (mosquitto, rumqttd) the median of the
# per-round ratios mqttd / peer, and with `base` the same for mqttd-base with its lowest
# and highest. The relay's runs get a line of their own.
# shellcheck disable=SC2016 # awk's own $ fields
SUMMARY_AWK="$AWK_FUNCTIONS"'
$1 == label && $4 == "RESULT" {
    for (i = 5; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == metric && kv[2] != "na") value[$2, $3] = kv[2] + 0
    }
}
# The median of the per-round ratios mqttd / `other`, with the lowest and highest in lo, hi.
function ratio(other,    key, part, list, n, t) {
    n = 0; lo = ""; hi = ""
    for (key in value) {
        split(key, part, SUBSEP)
        if (part[1] != "mqttd" || !((other, part[2]) in value) || value[other, part[2]] == 0) continue
        t = value[key] / value[other, part[2]]
        list[++n] = t
        if (lo == "" || t < lo) lo = t
        if (hi == "" || t > hi) hi = t
    }
    return median(list, n)
}
END {
    nl = 0
    for (key in value) { split(key, part, SUBSEP); if (part[1] == "relay") l[++nl] = value[key] }
    if (nl > 0) {
        printf "%-12s %-18s %14s\n", label, metric, "relay " show(median(l, nl))
    } else {
        nb = split(brokers, names, " ")
        line = sprintf("%-12s %-18s", label, metric)
        for (b = 1; b <= nb; b++) {
            n = 0
            for (key in value) { split(key, part, SUBSEP); if (part[1] == names[b]) list[++n] = value[key] }
            line = line sprintf(" %14s", show(median(list, n)))
            delete list
        }
        for (b = 1; b <= nb; b++)
            if (names[b] != "mqttd" && names[b] != "mqttd-base") line = line sprintf(" %15s", show(ratio(names[b])))
        if (base) {
            t = ratio("mqttd-base")
            line = line sprintf(" %10s %11s", show(t), (t == "-" ? "-" : sprintf("%.2f-%.2f", lo, hi)))
        }
        print line
    }
}'

# The durable scenarios' summary: medians for each broker, and for each other broker the
# median, lowest and highest of the per-round ratios mqttd / that broker; then mqttd's
# journal: records per fsync and fsyncs per second (whole run, set-up included).
# shellcheck disable=SC2016 # awk's own $ fields
DURABLE_AWK="$AWK_FUNCTIONS"'
$1 == label && $4 == "RESULT" {
    for (i = 5; i <= NF; i++) {
        split($i, kv, "=")
        field[kv[1]] = kv[2]
    }
    if ((metric in field) && field[metric] != "na") value[$2, $3] = field[metric] + 0
    if ($2 == "mqttd" && field["fsyncs"] > 0) {
        per_fsync[++nf] = field["records"] / field["fsyncs"]
        if (field["secs"] > 0) fsync_rate[nf] = field["fsyncs"] / field["secs"]
        if (field["sent"] > 0) per_message[nf] = field["records"] / field["sent"]
    }
    delete field
}
END {
    nb = split(brokers, names, " ")
    line = sprintf("%-17s %-8s", label, metric)
    for (b = 1; b <= nb; b++) {
        n = 0
        for (key in value) { split(key, part, SUBSEP); if (part[1] == names[b]) list[++n] = value[key] }
        line = line sprintf(" %12s", show(median(list, n)))
        delete list
    }
    for (b = 1; b <= nb; b++) {
        if (names[b] == "mqttd") continue
        n = 0; lo = ""; hi = ""
        for (key in value) {
            split(key, part, SUBSEP)
            if (part[1] != "mqttd" || !((names[b], part[2]) in value) || value[names[b], part[2]] == 0) continue
            t = value[key] / value[names[b], part[2]]
            list[++n] = t
            if (lo == "" || t < lo) lo = t
            if (hi == "" || t > hi) hi = t
        }
        line = line sprintf(" %12s %11s", show(median(list, n)), (n ? sprintf("%.2f-%.2f", lo, hi) : "-"))
        delete list
    }
    print line
    if (nf > 0)
        printf "  %s mqttd journal: %.1f records per fsync, %.0f fsyncs/s, %.1f records per message (medians)\n", label, median(per_fsync, nf), median(fsync_rate, nf), median(per_message, nf)
}'

# The transport scenarios' summary, one line per scenario, transport and metric: the
# median for each broker; mqttd / that broker (median of the per-round ratios); and for
# each broker, this transport / tcp (median of the per-round ratios of the broker's own
# figures over this transport and over tcp, in the same round).
# shellcheck disable=SC2016 # awk's own $ fields
TRANSPORT_AWK="$AWK_FUNCTIONS"'
$4 == "RESULT" && ($1 == base "_" kind || $1 == base "_tcp") {
    for (i = 5; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] != metric || kv[2] == "na") continue
        if ($1 == base "_" kind) this[$2, $3] = kv[2] + 0
        if ($1 == base "_tcp") tcp[$2, $3] = kv[2] + 0
    }
}
END {
    nb = split(brokers, names, " ")
    line = sprintf("%-10s %-6s %-7s", base, kind, metric)
    for (b = 1; b <= nb; b++) {
        n = 0
        for (key in this) { split(key, part, SUBSEP); if (part[1] == names[b]) list[++n] = this[key] }
        line = line sprintf(" %15s", show(median(list, n)))
        delete list
    }
    for (b = 1; b <= nb; b++) {
        if (names[b] == "mqttd") continue
        n = 0
        for (key in this) {
            split(key, part, SUBSEP)
            if (part[1] == "mqttd" && ((names[b], part[2]) in this) && this[names[b], part[2]] != 0)
                list[++n] = this[key] / this[names[b], part[2]]
        }
        line = line sprintf(" %15s", show(median(list, n)))
        delete list
    }
    for (b = 1; b <= nb; b++) {
        n = 0
        for (key in this) {
            split(key, part, SUBSEP)
            if (kind != "tcp" && part[1] == names[b] && (key in tcp) && tcp[key] != 0)
                list[++n] = this[key] / tcp[key]
        }
        line = line sprintf(" %15s", show(median(list, n)))
        delete list
    }
    print line
}'

summarize_transports() {
    local entry label metrics metric kind kinds broker header
    echo
    echo "TRANSPORTS: one configuration file with four listeners for both brokers" \
        "(large_<publisher>_<subscriber>: 200000-byte messages in 6 parts, times in ms)"
    echo "mqttd/X = median over rounds of mqttd/X; B/tcp = median over rounds of broker B's" \
        "figure over this transport / over tcp"
    header=$(printf '%-10s %-6s %-7s' scenario trans metric)
    for broker in "${BROKERS[@]}"; do header+=$(printf ' %15s' "$broker"); done
    for broker in "${BROKERS[@]}"; do
        [[ $broker == mqttd ]] || header+=$(printf ' %15s' "mqttd/${broker#mqttd-}")
    done
    for broker in "${BROKERS[@]}"; do header+=$(printf ' %15s' "${broker#mqttd-}/tcp"); done
    echo "$header"
    for kind in "${TRANSPORT_KINDS[@]}"; do
        wanted "relay_pair8_$kind" || continue
        # The relay's median, as in the main summary: the load generator's ceiling.
        awk -v label="relay_pair8_$kind" -v metric=rate "$SUMMARY_AWK" "$RESULTS" |
            awk -v kind="$kind" '{ printf "%-10s %-6s %-7s %15s (the load generator'"'"'s ceiling)\n", "relay", kind, $2, $4 }'
    done
    for entry in "${TRANSPORT_SCENARIOS[@]}" "$LARGE_SCENARIO"; do
        IFS='|' read -r label _ metrics <<<"$entry"
        if [[ $label == large ]]; then kinds=("${LARGE_KINDS[@]}"); else kinds=("${TRANSPORT_KINDS[@]}"); fi
        for kind in "${kinds[@]}"; do
            wanted "${label}_$kind" || continue
            for metric in $metrics; do
                awk -v base="$label" -v kind="$kind" -v metric="$metric" \
                    -v brokers="${BROKERS[*]}" "$TRANSPORT_AWK" "$RESULTS"
            done
        done
    done
    if [[ " ${TRANSPORT_BROKERS[*]} " != *" mqttd "* ]]; then
        echo "  (mqttd refused the transports configuration: see the log line at the start)"
    fi
}

summarize_durable() {
    local entry label metrics broker header
    echo
    echo "DURABLE: persistent subscribers; persistence on for mqttd${BASELINE:+, mqttd-base}" \
        "and mosquitto; mqttd-mem is the same mqttd, memory only"
    echo "vs_X = median over rounds of mqttd/X, range = its lowest-highest"
    header=$(printf '%-17s %-8s' scenario metric)
    for broker in "${DURABLE_BROKERS[@]}"; do header+=$(printf ' %12s' "$broker"); done
    for broker in "${DURABLE_BROKERS[@]}"; do
        [[ $broker == mqttd ]] && continue
        header+=$(printf ' %12s %11s' "vs_${broker#mqttd-}" range)
    done
    echo "$header"
    for entry in "${DURABLE_SCENARIOS[@]}"; do
        IFS='|' read -r label _ metrics <<<"$entry"
        wanted "$label" || continue
        for metric in $metrics; do
            awk -v label="$label" -v metric="$metric" -v brokers="${DURABLE_BROKERS[*]}" \
                "$DURABLE_AWK" "$RESULTS"
        done
    done
}

# Medians per scenario, broker and metric, and the median of the per-round ratios.
summarize() {
    local entry label metrics
    echo
    echo "SUMMARY rounds=$ROUNDS secs=$SECS (medians; mqttd/X = median over rounds of mqttd/X)"
    if any_plain_wanted; then
        summarize_plain
    fi
    if any_durable_wanted; then
        summarize_durable
    fi
    if any_transport_wanted; then
        summarize_transports
    fi
    local failed
    failed=$(grep -c FAILED "$RESULTS" || true)
    echo "failed runs: $failed"
    grep FAILED "$RESULTS" | sed 's/^/  /' || true
}

summarize_plain() {
    local entry label metrics metric broker header
    if [[ -n "$BASELINE" ]]; then
        # The spread of the per-round ratios is the noise to read vs_base against: mqttd
        # and mqttd-base ran back to back in each round.
        echo "vs_base = median over rounds of mqttd/mqttd-base, base_range = its lowest-highest"
    fi
    header=$(printf '%-12s %-18s' scenario metric)
    for broker in "${PLAIN_BROKERS[@]}"; do header+=$(printf ' %14s' "$broker"); done
    for broker in "${PLAIN_BROKERS[@]}"; do
        [[ $broker == mqttd || $broker == mqttd-base ]] || header+=$(printf ' %15s' "mqttd/$broker")
    done
    if [[ -n "$BASELINE" ]]; then header+=$(printf ' %10s %11s' vs_base base_range); fi
    echo "$header"
    for entry in "$RELAY_SCENARIO" "${SCENARIOS[@]}"; do
        IFS='|' read -r label _ metrics <<<"$entry"
        wanted "$label" || continue
        for metric in $metrics; do
            awk -v label="$label" -v metric="$metric" -v base="${BASELINE:+1}" \
                -v brokers="${PLAIN_BROKERS[*]}" "$SUMMARY_AWK" "$RESULTS"
        done
    done
}

prepare
log "rounds=$ROUNDS secs=$SECS, results in $RESULTS"
run_all
summarize
