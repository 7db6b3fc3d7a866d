#!/usr/bin/env bash
# Build the pinned kube-apiserver (the tests' real Kubernetes API server); safe to re-run.
#
# The version is KUBE_APISERVER_VERSION in _dev-env/versions.env. The binary lands in
# ${CONCEPTOR_TOOLS_DIR:-~/.cache/conceptor/tools}/kube-apiserver-<version>/bin/kube-apiserver
# and is built only when missing: a re-run then prints one "found" line.
#
# k8s.io/kubernetes cannot be built inside its own module: its go.mod points every staging
# module (k8s.io/api, k8s.io/apiserver, ...) at ./staging/..., which the module zip lacks. So
# the build runs in a small wrapper module that requires k8s.io/kubernetes and replaces each
# staging module named in that go.mod by its published release (v1.X.Y -> v0.X.Y). The list
# is read from the downloaded go.mod, so a new pin brings its own list.
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file (a pull) while it
# runs (a build takes minutes) cannot change what this run does.
{

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSIONS_FILE="$REPO_ROOT/_dev-env/versions.env"
TOOLS_DIR="${CONCEPTOR_TOOLS_DIR:-$HOME/.cache/conceptor/tools}"
GO="${GO:-go}"
PYTHON="${PYTHON:-python3}"
MODULE=k8s.io/kubernetes

say() { printf '%-10s %s\n' "$1" "$2"; }
die() {
	printf 'build-kube-apiserver: %s\n' "$*" >&2
	exit 1
}

VERSION="$(sed -n 's/^KUBE_APISERVER_VERSION=//p' "$VERSIONS_FILE")"
[[ -n $VERSION ]] || die "KUBE_APISERVER_VERSION is not set in $VERSIONS_FILE"
[[ $VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] ||
	die "KUBE_APISERVER_VERSION must look like v1.37.2 (got $VERSION in $VERSIONS_FILE)"
MINOR="${BASH_REMATCH[1]}"
# The staging modules are published as v0.<minor>.<patch> alongside each v1.<minor>.<patch>.
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
HOME_DIR="$TOOLS_DIR/kube-apiserver-$VERSION"
BIN="$HOME_DIR/bin/kube-apiserver"
LOG_DIR="$TOOLS_DIR/.logs"
LOG="$LOG_DIR/build-kube-apiserver.log"

if [[ -x $BIN ]]; then
	say found "kube-apiserver $VERSION $BIN"
	exit 0
fi

command -v "$GO" >/dev/null ||
	die "missing prerequisite: Go ($GO not found, builds kube-apiserver): install Go 1.24 or newer"
command -v "$PYTHON" >/dev/null || die "missing prerequisite: Python 3 ($PYTHON not found)"

# ----- one build at a time per cache ---------------------------------------------------------

mkdir -p "$TOOLS_DIR" "$LOG_DIR"
exec 9>"$TOOLS_DIR/.build-kube-apiserver.lock"
if ! flock -n 9; then
	echo "build-kube-apiserver: another build is using $TOOLS_DIR; waiting for it" >&2
	flock 9
	if [[ -x $BIN ]]; then
		say found "kube-apiserver $VERSION $BIN"
		exit 0
	fi
fi

START=$(date +%s)
: >"$LOG"
log() { printf '\n== %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$LOG"; }
fail() {
	printf 'build-kube-apiserver: %s; last lines of %s:\n' "$1" "$LOG" >&2
	tail -n 25 "$LOG" >&2
	exit 1
}
json_field() { # field -> value of that top-level field of the JSON on stdin
	"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

work="$(mktemp -d "$TOOLS_DIR/.partial-kube-apiserver.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# ----- the wrapper module ----------------------------------------------------------------------

log "download $MODULE@$VERSION"
module_json="$(GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$VERSION" 2>>"$LOG")" ||
	fail "go mod download $MODULE@$VERSION failed"
gomod="$(json_field GoMod <<<"$module_json")"
[[ -f $gomod ]] || fail "go mod download gave no go.mod: $module_json"

# Every `replace k8s.io/<name> => ./staging/...` of kubernetes' go.mod is a staging module.
staging="$("$GO" mod edit -json "$gomod" | "$PYTHON" -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])
')" || fail "cannot read the replace lines of $gomod"
[[ -n $staging ]] || fail "$gomod names no staging modules (no replace => ./staging/...)"
go_directive="$("$GO" mod edit -json "$gomod" | json_field Go)"

{
	printf 'module conceptor.local/kube-apiserver-build\n\ngo %s\n\n' "$go_directive"
	printf 'require %s %s\n\n' "$MODULE" "$VERSION"
	while read -r name; do
		printf 'replace %s => %s %s\n' "$name" "$name" "$STAGING_VERSION"
	done <<<"$staging"
} >"$work/go.mod"
log "wrapper go.mod ($(wc -l <<<"$staging") staging modules at $STAGING_VERSION)"
cat "$work/go.mod" >>"$LOG"

# ----- the binary ------------------------------------------------------------------------------

# The version the release build stamps: clients (kubectl) read it from /version.
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "go build $MODULE/cmd/kube-apiserver ($ldflags)"
# Niced: the machine's cores are shared. -mod=mod lets the build fill go.sum itself.
(cd "$work" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
	nice -n 10 "$GO" build -ldflags "$ldflags" -o "$work/kube-apiserver" \
	"$MODULE/cmd/kube-apiserver" >>"$LOG" 2>&1) || fail "go build of kube-apiserver failed"
"$work/kube-apiserver" --version >>"$LOG" 2>&1 || fail "the built kube-apiserver does not run"
mkdir -p "$HOME_DIR/bin"
# The binary moves in last, so an interrupted build leaves nothing that looks installed.
mv -f "$work/kube-apiserver" "$BIN"
say built "kube-apiserver $VERSION ($(($(date +%s) - START))s, go build) $BIN"
exit
}
