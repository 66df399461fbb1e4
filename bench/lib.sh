# shellcheck shell=bash
# Shell functions shared by bench/compare.sh and bench/restart.sh (sourced, not run).
# Both keep their broker's PID in BROKER_PID and its log in $WORK/broker.log.

# Paths given on the command line are relative to where it was typed, not to the checkout
# the scripts move to.
abs_path() { readlink -f -- "$1" || echo "$1"; }

log() { echo "== $*" >&2; }

# Builds mqttd and the load generator in release mode, unless BUILD_MQTTD / BUILD_LOADGEN
# is 0 (a binary given by the caller). Two commands, not one `cargo build --bins
# --examples`: the examples' dev-dependency on this crate turns on `fault-injection`, and
# in one command the broker binary would get it too.
build_binaries() {
    if [[ "${BUILD_MQTTD:-1}" == 1 ]]; then
        log "building mqttd (release)"
        cargo build --release --quiet
    fi
    if [[ "${BUILD_LOADGEN:-1}" == 1 ]]; then
        log "building the load generator (release)"
        cargo build --release --quiet --example loadgen
    fi
}

# wait_listening PORT: until the broker we started listens there (10 s at most); fails
# with the end of its log if it exits first.
wait_listening() {
    local port=$1
    for _ in $(seq 100); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker exited at start:"
            tail -5 "$WORK/broker.log" >&2
            return 1
        fi
        if [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
            return 0
        fi
        sleep 0.1
    done
    log "broker not listening on $port after 10 s"
    return 1
}

# stop_broker [TERM|KILL]: stops the broker we started, by its PID. TERM (the default) is
# followed by KILL if it is still there after 10 s; KILL is reaped at once, with stderr
# closed (bash would otherwise report the kill).
stop_broker() {
    [[ -n "$BROKER_PID" ]] || return 0
    if [[ ${1:-TERM} == KILL ]]; then
        { kill -KILL "$BROKER_PID" && wait "$BROKER_PID"; } 2>/dev/null || true
        BROKER_PID=""
        return 0
    fi
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}

# Removes the run's temporary directory $WORK, or with KEEP_LOGS=1 says where it is kept.
remove_work() {
    if [[ "${KEEP_LOGS:-0}" == 1 ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
