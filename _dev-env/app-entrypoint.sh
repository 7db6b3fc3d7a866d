#!/bin/sh
# PID 1 of the app image: runs "$@" (a `conceptor` command line) and forwards SIGTERM to it, so
# a worker's graceful drain still happens. Tilt's live_update syncs code, then restarts the
# command in place (`touch /tmp/app.restart` + SIGTERM): the container and its synced files stay.
# Any other exit ends the container, so Kubernetes sees crashes as crashes.
set -u
state="${APP_STATE_DIR:-/tmp}"
stopping=0
child=0
trap 'stopping=1; [ "$child" -gt 0 ] && kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
    rm -f "$state/app.restart"
    "$@" &
    child=$!
    echo "$child" >"$state/app.pid"
    wait "$child"
    code=$?
    # A trapped signal ends `wait` early: wait again until the drain is over.
    while kill -0 "$child" 2>/dev/null; do
        wait "$child"
        code=$?
    done
    if [ "$stopping" = 1 ] || [ ! -e "$state/app.restart" ]; then
        exit "$code"
    fi
    echo "app-entrypoint: restarting $* after a live update" >&2
done
