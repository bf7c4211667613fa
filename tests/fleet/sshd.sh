#!/usr/bin/env bash
# A real sshd on loopback for the fleet tests (the SSH hosts of tests/fleet/make_fleet.py).
#
#   tests/fleet/sshd.sh start STATE_DIR PORT   # prints the client private key to use
#   tests/fleet/sshd.sh stop STATE_DIR
#
# start: makes an ed25519 host key and client key in STATE_DIR, authorized_keys, sshd_config
# (127.0.0.1:PORT, root by key only, no PAM), starts /usr/sbin/sshd (log: STATE_DIR/sshd.log),
# waits until `ssh root@127.0.0.1 true` works, and prints the client key path. Starting an
# already running instance only checks it. stop: kills the sshd of STATE_DIR by its pidfile.
# Needs openssh-server and openssh-client (scripts/bootstrap.sh --test) and root (sshd
# switches to the logged-in user; the fleet logs in as root).
set -euo pipefail

SSHD=${SSHD:-/usr/sbin/sshd}
WAIT_SECONDS=${SSHD_WAIT_SECONDS:-20}

usage() {
    echo "usage: $0 start STATE_DIR PORT | stop STATE_DIR" >&2
    exit 2
}

die() {
    echo "sshd.sh: $*" >&2
    exit 1
}

running() {  # running PIDFILE -> true when the pid in it is alive
    local pid
    [[ -s "$1" ]] || return 1
    pid=$(cat "$1")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

ssh_ok() {  # ssh_ok STATE PORT
    ssh -n -i "$1/id_ed25519" -p "$2" \
        -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=2 -o LogLevel=ERROR root@127.0.0.1 true >/dev/null 2>&1
}

start() {
    local state=$1 port=$2 deadline
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number: $port"
    [[ -x "$SSHD" ]] || die "$SSHD not found: install openssh-server (scripts/bootstrap.sh --test)"
    command -v ssh >/dev/null || die "ssh not found: install openssh-client"
    command -v ssh-keygen >/dev/null || die "ssh-keygen not found: install openssh-client"
    mkdir -p "$state"
    state=$(cd "$state" && pwd -P)
    chmod 700 "$state"

    [[ -f "$state/ssh_host_ed25519_key" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "sne-guichet-test-host" -f "$state/ssh_host_ed25519_key"
    [[ -f "$state/id_ed25519" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "sne-guichet-test-client" -f "$state/id_ed25519"
    cp "$state/id_ed25519.pub" "$state/authorized_keys"
    chmod 600 "$state/authorized_keys"

    local sftp=internal-sftp
    for candidate in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; do
        if [[ -x "$candidate" ]]; then sftp=$candidate; break; fi
    done
    cat >"$state/sshd_config" <<EOF
# Test sshd of the sne.guichet fleet (tests/fleet/sshd.sh): loopback only, keys only.
ListenAddress 127.0.0.1
Port $port
HostKey $state/ssh_host_ed25519_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp $sftp
EOF

    if running "$state/sshd.pid"; then
        ssh_ok "$state" "$port" || die "an sshd of $state is running (pid $(cat "$state/sshd.pid")) but does not accept the key on port $port"
        echo "$state/id_ed25519"
        return 0
    fi
    # Privilege separation folder, missing in containers where sshd never ran.
    [[ -d /run/sshd ]] || { mkdir -p /run/sshd && chmod 755 /run/sshd; }
    "$SSHD" -t -f "$state/sshd_config" || die "invalid configuration $state/sshd_config"
    "$SSHD" -f "$state/sshd_config" -E "$state/sshd.log" || die "sshd did not start; see $state/sshd.log"

    deadline=$((SECONDS + WAIT_SECONDS))
    until ssh_ok "$state" "$port"; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$state/sshd.log" >&2 || true
            die "no SSH login on 127.0.0.1:$port after ${WAIT_SECONDS}s (log: $state/sshd.log)"
        fi
        sleep 0.2
    done
    echo "$state/id_ed25519"
}

stop() {
    local state=$1 pid i
    if ! running "$state/sshd.pid"; then
        rm -f "$state/sshd.pid"
        echo "sshd.sh: no sshd running for $state" >&2
        return 0
    fi
    pid=$(cat "$state/sshd.pid")
    kill "$pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/sshd.pid"
}

case "${1:-}" in
    start) [[ $# -eq 3 ]] || usage; start "$2" "$3" ;;
    stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
    *) usage ;;
esac
