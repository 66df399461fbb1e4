#!/usr/bin/env bash
# Runs every load generator scenario against mqttd and against Mosquitto, on this machine,
# and prints each RESULT line, then per scenario the median figure for each broker and the
# median of the per-round ratios mqttd / mosquitto. See bench/README.md.
#
#   bench/compare.sh             3 rounds of 5 s runs (about 10 minutes on 2 cores)
#   QUICK=1 bench/compare.sh     1 round of 2 s runs
#   ROUNDS=5 SECS=10 bench/compare.sh
#   ONLY="pair8 latency" bench/compare.sh      just these scenarios (labels below)
#   MOSQ_NODELAY=0 bench/compare.sh            leave Mosquitto's default, Nagle's algorithm on
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
#
# Every run gets a fresh broker process on a free port in 18900-18999, started by this
# script and stopped by the PID it recorded (and by the EXIT trap if anything goes wrong).
# Rounds alternate the brokers: mqttd, mosquitto, mqttd, mosquitto, ... or, with BASELINE,
# mqttd, mqttd-base, mosquitto, mqttd, mqttd-base, mosquitto, ...
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
MQTTD=${MQTTD:+$(abs_path "$MQTTD")}
LOADGEN=${LOADGEN:+$(abs_path "$LOADGEN")}
BASELINE=${BASELINE:+$(abs_path "$BASELINE")}

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
# The brokers each round runs, in this order.
if [[ -n "$BASELINE" ]]; then
    BROKERS=(mqttd mqttd-base mosquitto)
else
    BROKERS=(mqttd mosquitto)
fi

# label | loadgen arguments | metrics summarised (the first is the headline)
SCENARIOS=(
    "pair1|pair --pairs 1|rate"
    "pair8|pair --pairs 8|rate"
    "fanin_q0|fanin --pubs 16 --qos 0|rate"
    "fanin_q1|fanin --pubs 16 --qos 1|rate"
    "fanout16|fanout --subs 16|rate"
    "fanout256|fanout --subs 256|rate"
    "qos1|qos1 --pairs 8|rate"
    "qos2|qos2 --pairs 8|rate"
    "latency|latency --rate 10000|p99_us p50_us p999_us"
    "conns5k|conns --conns 5000|rss_per_conn_kib connect_rate"
    "conns10k|conns --conns 10000|rss_per_conn_kib connect_rate"
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
            "(2 threads per connection) stops at about $((maps / 8)) connections;" \
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
    if any_durable_wanted; then
        if [[ " ${MQTTD_ARGS:-} ${BASELINE_ARGS:-} " =~ [[:space:]](-c|--config)[[:space:]] ]]; then
            log "MQTTD_ARGS and BASELINE_ARGS may not hold -c/--config with durable scenarios:" \
                "they give mqttd a configuration file of their own"
            return 1
        fi
        # Mosquitto, started as root, runs as the user mosquitto: its persistence
        # directory under $WORK must be reachable and writable for that user.
        chmod 711 "$WORK"
        fsync_cost
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

# start_broker NAME PORT: starts it in the background and records its PID in BROKER_PID.
# With DURABLE=1, mqttd, mqttd-base and mosquitto get persistence on, in a fresh directory
# DATA_DIR; mqttd-mem is mqttd as always, memory only.
start_broker() {
    local name=$1 port=$2
    RUN_NO=$((RUN_NO + 1))
    DATA_DIR=""
    case $name in
    mqttd | mqttd-base | mqttd-mem)
        local bin=$MQTTD extra=${MQTTD_ARGS:-} rust_log=warn persist=()
        if [[ $name == mqttd-base ]]; then bin=$BASELINE extra=${BASELINE_ARGS:-}; fi
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
        # $extra is split into words on purpose: it holds whole arguments.
        # shellcheck disable=SC2086
        RUST_LOG=$rust_log "$bin" "${persist[@]}" $extra --port "$port" \
            --max-connections 20000 --max-queued 1000 >"$WORK/broker.log" 2>&1 &
        ;;
    mosquitto)
        {
            echo "listener $port 127.0.0.1"
            echo "allow_anonymous true"
            echo "max_connections -1"
            echo "max_queued_messages 1000"
            echo "max_inflight_messages 20"
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
    relay)
        # It stops by itself after --secs even if this script is killed with SIGKILL.
        $LOADGEN relay --port "$port" --secs $((SECS + 120)) >"$WORK/broker.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
    wait_listening "$port"
}

# run_one LABEL BROKER ROUND ARGS...: one run on a fresh broker; appends to RESULTS.
run_one() {
    local label=$1 broker=$2 round=$3
    shift 3
    local extra=() line="" rc=0
    : >"$WORK/loadgen.err"
    if free_port && start_broker "$broker" "$PORT"; then
        if [[ $1 == conns ]]; then extra=(--broker-pid "$BROKER_PID"); fi
        # The load generator has its own hard deadline (--secs + 30 s); this is a second net.
        line=$(timeout -k 5 $((SECS + 60)) "$LOADGEN" "$@" --port "$PORT" --secs "$SECS" \
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

is_durable() {
    local entry
    for entry in "${DURABLE_SCENARIOS[@]}"; do
        [[ ${entry%%|*} == "$1" ]] && return 0
    done
    return 1
}

# Without ONLY: every scenario but the durable ones, or with PERSIST=1 the durable ones.
wanted() {
    if [[ -n "${ONLY:-}" ]]; then
        [[ " $ONLY " == *" $1 "* ]]
    elif [[ "${PERSIST:-0}" == 1 ]]; then
        is_durable "$1"
    elif is_durable "$1"; then
        return 1
    fi
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
                for broker in "${BROKERS[@]}"; do
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

# The summary, in awk: collect `metric` for `label` by broker and round, print medians.
# shellcheck disable=SC2016 # awk's own $ fields
SUMMARY_AWK="$AWK_FUNCTIONS"'
$1 == label && $4 == "RESULT" {
    for (i = 5; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == metric && kv[2] != "na") value[$2, $3] = kv[2] + 0
    }
}
END {
    nm = 0; nq = 0; nr = 0; nl = 0; nb = 0; nrb = 0
    lo = ""; hi = ""
    for (key in value) {
        split(key, part, SUBSEP)
        if (part[1] == "mqttd") m[++nm] = value[key]
        if (part[1] == "mosquitto") q[++nq] = value[key]
        if (part[1] == "mqttd-base") b[++nb] = value[key]
        if (part[1] == "relay") l[++nl] = value[key]
        if (part[1] == "mqttd" && (("mosquitto", part[2]) in value) && value["mosquitto", part[2]] != 0)
            r[++nr] = value[key] / value["mosquitto", part[2]]
        if (part[1] == "mqttd" && (("mqttd-base", part[2]) in value) && value["mqttd-base", part[2]] != 0) {
            t = value[key] / value["mqttd-base", part[2]]
            rb[++nrb] = t
            if (lo == "" || t < lo) lo = t
            if (hi == "" || t > hi) hi = t
        }
    }
    if (nl > 0) printf "%-12s %-18s %14s\n", label, metric, "relay " show(median(l, nl))
    else if (!base) printf "%-12s %-18s %14s %14s %10s\n", label, metric, show(median(m, nm)), show(median(q, nq)), show(median(r, nr))
    else printf "%-12s %-18s %14s %14s %14s %10s %10s %11s\n", label, metric, show(median(m, nm)), show(median(b, nb)), show(median(q, nq)), show(median(r, nr)), show(median(rb, nrb)), (nrb ? sprintf("%.2f-%.2f", lo, hi) : "-")
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
    echo "SUMMARY rounds=$ROUNDS secs=$SECS (medians; ratio = median over rounds of mqttd/mosquitto)"
    if any_plain_wanted; then
        summarize_plain
    fi
    if any_durable_wanted; then
        summarize_durable
    fi
    local failed
    failed=$(grep -c FAILED "$RESULTS" || true)
    echo "failed runs: $failed"
    grep FAILED "$RESULTS" | sed 's/^/  /' || true
}

summarize_plain() {
    local entry label metrics
    if [[ -n "$BASELINE" ]]; then
        # The spread of the per-round ratios is the noise to read vs_base against: mqttd
        # and mqttd-base ran back to back in each round.
        echo "vs_base = median over rounds of mqttd/mqttd-base, base_range = its lowest-highest"
        printf '%-12s %-18s %14s %14s %14s %10s %10s %11s\n' scenario metric mqttd mqttd-base \
            mosquitto ratio vs_base base_range
    else
        printf '%-12s %-18s %14s %14s %10s\n' scenario metric mqttd mosquitto ratio
    fi
    for entry in "$RELAY_SCENARIO" "${SCENARIOS[@]}"; do
        IFS='|' read -r label _ metrics <<<"$entry"
        wanted "$label" || continue
        for metric in $metrics; do
            awk -v label="$label" -v metric="$metric" -v base="${BASELINE:+1}" \
                "$SUMMARY_AWK" "$RESULTS"
        done
    done
}

prepare
log "rounds=$ROUNDS secs=$SECS, results in $RESULTS"
run_all
summarize
