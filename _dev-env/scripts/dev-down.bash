#!/usr/bin/env bash
# Stop this checkout's stack on the current TILT_PORT_PREFIX and leave nothing listening there.
#
# Only processes that belong to this checkout (command line or working directory inside
# the repository) and run on this port prefix are signalled: other checkouts and other
# prefixes on the same machine are left alone.
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file (a pull) while it
# runs cannot change what this run does.
{

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${CONCEPTOR_VENV:-$REPO_ROOT/.venv}"
CONCEPTOR="$VENV/bin/conceptor"
TOOLS_DIR="${CONCEPTOR_TOOLS_DIR:-$HOME/.cache/conceptor/tools}"
TILT_VERSION="$(sed -n 's/^TILT_VERSION=//p' "$REPO_ROOT/_dev-env/versions.env")"
TILT_BIN="$TOOLS_DIR/tilt-$TILT_VERSION/bin/tilt"
# How long services get to stop cleanly (Keycloak's launcher allows itself 15 s).
GRACE_SECONDS="${DEV_DOWN_GRACE_SECONDS:-30}"

say() { printf 'dev-down: %s\n' "$*"; }

[[ -x $CONCEPTOR ]] || {
	say "$CONCEPTOR not found: nothing of this checkout can be running (run _dev-env/scripts/dev-setup.bash)"
	exit 0
}

# The prefix's port block, as the settings derive it (env, .env.development, default).
front_door_port() { "$@" dev ports | sed -n 's/^front_door=//p'; }
BLOCK_START="$(front_door_port "$CONCEPTOR")"
PREFIX=$((BLOCK_START / 100))
# A process started with no prefix in its environment runs on the settings' default: the
# prefix in .env.development if any (TILT_PORT_PREFIX wins, as in the settings), else 440.
dotenv_value() {
	[[ -f "$REPO_ROOT/.env.development" ]] || return 0
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*[\"']\{0,1\}\([0-9]*\).*/\1/p" \
		"$REPO_ROOT/.env.development" 2>/dev/null | tail -n1
}
DEFAULT_PREFIX="$(dotenv_value TILT_PORT_PREFIX)"
[[ -n $DEFAULT_PREFIX ]] || DEFAULT_PREFIX="$(dotenv_value CENTRAL_PORT_PREFIX)"
DEFAULT_PREFIX="${DEFAULT_PREFIX:-440}"

# ----- which processes are ours ------------------------------------------------------------

cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }
env_of() { # pid name
	tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | sed -n "s/^$2=//p" | head -n1
}
belongs_here() { # pid: command line or working directory inside this repository
	local cwd
	cwd="$(readlink "/proc/$1/cwd" 2>/dev/null || true)"
	[[ "$(cmdline_of "$1")" == *"$REPO_ROOT/"* || $cwd == "$REPO_ROOT" || $cwd == "$REPO_ROOT/"* ]]
}
on_our_prefix() { # pid
	local prefix
	prefix="$(env_of "$1" TILT_PORT_PREFIX)"
	[[ -n $prefix ]] || prefix="$(env_of "$1" CENTRAL_PORT_PREFIX)"
	[[ ${prefix:-$DEFAULT_PREFIX} == "$PREFIX" ]]
}
# Our own ancestors (make, the shell) are never targets.
declare -A spared
pid=$$
while [[ $pid -gt 1 ]]; do
	spared[$pid]=1
	pid="$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 1)"
done

stack_processes() { # tilt up/ci and conceptor serve/worker/api processes of this checkout+prefix
	local dir p cmd
	for dir in /proc/[0-9]*; do
		p=${dir#/proc/}
		[[ -z ${spared[$p]:-} ]] || continue
		cmd="$(cmdline_of "$p")"
		if [[ $cmd =~ (^|/)tilt\ (up|ci)( |$) || $cmd =~ conceptor\ (dev\ serve|worker|api|panel)( |$) ||
			$cmd =~ uvicorn\ .*conceptor\.api ]]; then
			belongs_here "$p" && on_our_prefix "$p" && echo "$p"
		fi
	done
	return 0
}
listeners() { # "port pid" of every listener in this prefix's block
	ss -ltnpH "sport >= :$BLOCK_START and sport <= :$((BLOCK_START + 99))" 2>/dev/null |
		awk '{n = split($4, a, ":"); port = a[n]; s = $0
		      while (match(s, /pid=[0-9]+/)) { print port, substr(s, RSTART + 4, RLENGTH - 4); s = substr(s, RSTART + RLENGTH) } }' |
		sort -u
}

alive() { kill -0 "$1" 2>/dev/null; }
stop_all() { # pids...: SIGTERM, wait up to GRACE_SECONDS, then SIGKILL what is left
	local p deadline=$((SECONDS + GRACE_SECONDS)) left
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	while ((SECONDS < deadline)); do
		left=0
		for p in "$@"; do alive "$p" && left=1; done
		((left)) || return 0
		sleep 0.2
	done
	for p in "$@"; do
		if alive "$p"; then
			say "pid $p did not stop within ${GRACE_SECONDS}s: killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	# A killed process holds its ports (and an empty command line) until it has exited:
	# wait for that, or the listener scan below takes it for somebody else's.
	deadline=$((SECONDS + 5))
	for p in "$@"; do
		while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
	done
}

# ----- stop ----------------------------------------------------------------------------------

# `tilt down` removes what the Tiltfile applied to a cluster: only worth its Tiltfile load
# (seconds) when there is a kube context; in local infra mode nothing was applied.
# CONCEPTOR_DEV_DOWN is set when `tilt down` itself runs this script (and on the nested
# `tilt down`, so that its Tiltfile does not run the script again).
if [[ -z ${CONCEPTOR_DEV_DOWN:-} && -x $TILT_BIN && -f "$REPO_ROOT/Tiltfile" ]] &&
	"$VENV/bin/kubectl" config current-context >/dev/null 2>&1; then
	(cd "$REPO_ROOT" && CONCEPTOR_DEV_DOWN=1 timeout 120 "$TILT_BIN" down >/dev/null 2>&1) ||
		say "tilt down reported an error (nothing applied to a cluster?); continuing"
fi

mapfile -t procs < <(stack_processes)
if ((${#procs[@]})); then
	say "stopping ${#procs[@]} process(es) of $REPO_ROOT on prefix $PREFIX: ${procs[*]}"
	stop_all "${procs[@]}"
fi

# Whatever still listens in the block: ours (e.g. an orphaned server) is stopped, others reported.
ours=()
foreign=()
while read -r port p; do
	[[ -n $p && -z ${spared[$p]:-} ]] || continue
	if belongs_here "$p"; then
		ours+=("$p")
	else
		foreign+=("port $port: pid $p ($(cmdline_of "$p" | cut -c1-80))")
	fi
done < <(listeners)
if ((${#ours[@]})); then
	mapfile -t ours < <(printf '%s\n' "${ours[@]}" | sort -u)
	say "stopping leftover listener(s) of this checkout: ${ours[*]}"
	stop_all "${ours[@]}"
fi

if ((${#foreign[@]})); then
	say "ports of prefix $PREFIX still in use by processes outside $REPO_ROOT (left alone):"
	printf '  %s\n' "${foreign[@]}"
	exit 1
fi
say "nothing listens on ports $BLOCK_START-$((BLOCK_START + 99)) (prefix $PREFIX)"
exit
}
