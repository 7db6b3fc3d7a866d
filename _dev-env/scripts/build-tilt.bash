#!/usr/bin/env bash
# Build the pinned Tilt as a release binary with its web dashboard embedded; safe to re-run.
#
# The version is TILT_VERSION in _dev-env/versions.env. The Go module source is copied to
# ${CONCEPTOR_TOOLS_DIR:-~/.cache/conceptor/tools}/src/tilt-<version>, the dashboard is built
# there with the yarn release the source pins (npm packages only), copied into pkg/assets/build
# (embedded with go:embed), and the binary is built with the release ldflags, so `tilt up`
# serves the embedded dashboard and needs neither yarn nor a network at run time. The result
# replaces <tools>/tilt-<version>/bin/tilt in one rename. A binary whose stamp says it embeds
# the dashboard is kept as it is: a re-run then prints one "found" line.
# If the dashboard cannot be built, the binary embeds a placeholder page saying so (the CLI,
# `tilt ci`, `tilt get` and `tilt trigger` still work) and the next run tries again.
#
#   build-tilt.bash --check   exit 0 when the binary is current, 1 when a run would build it,
#                             2 when only its Go build (the dashboard is built already)
#   build-tilt.bash --web     only the dashboard (kept in the source copy for the next run):
#                             dev-setup.bash builds it while Go builds other tools
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file (a pull) while it
# runs (a build takes minutes) cannot change what this run does.
{

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSIONS_FILE="$REPO_ROOT/_dev-env/versions.env"
TOOLS_DIR="${CONCEPTOR_TOOLS_DIR:-$HOME/.cache/conceptor/tools}"
GO="${GO:-go}"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"
MODULE=github.com/tilt-dev/tilt

say() { printf '%-10s %s\n' "$1" "$2"; }
die() {
	printf 'build-tilt: %s\n' "$*" >&2
	exit 1
}

TILT_VERSION="$(sed -n 's/^TILT_VERSION=//p' "$VERSIONS_FILE")"
[[ -n $TILT_VERSION ]] || die "TILT_VERSION is not set in $VERSIONS_FILE"
TILT_HOME="$TOOLS_DIR/tilt-$TILT_VERSION"
TILT_BIN="$TILT_HOME/bin/tilt"
STAMP_FILE="$TILT_HOME/.build-stamp"
SRC="$TOOLS_DIR/src/tilt-$TILT_VERSION"
LOG_DIR="$TOOLS_DIR/.logs"
LOG="$LOG_DIR/build-tilt.log"

# What the stamp says of a binary that embeds the real dashboard.
stamp_with_ui() { printf 'version=%s\nweb_ui=dashboard\n' "$TILT_VERSION"; }
current() { [[ -x $TILT_BIN && -f $STAMP_FILE && "$(<"$STAMP_FILE")" == "$(stamp_with_ui)" ]]; }
# Marks a complete dashboard build of this source copy (a new module means a new copy): a run
# after `--web`, or after a failed Go build, uses it as it is.
WEB_DONE="$SRC/web/.conceptor-web-built"
web_ready() { [[ -f $WEB_DONE && -f "$SRC/web/build/index.html" ]]; }

MODE="${1:-}"
[[ $MODE == "" || $MODE == --check || $MODE == --web ]] ||
	die "unknown option $MODE (usage: build-tilt.bash [--check | --web])"
# A dashboard build has its own log: the full run that follows it starts a new one.
if [[ $MODE == --web ]]; then LOG="$LOG_DIR/build-tilt-web.log"; fi
if [[ $MODE == --check ]]; then
	current && exit 0
	web_ready && exit 2
	exit 1
fi

if current; then
	[[ $MODE == --web ]] || say found "tilt $TILT_VERSION $TILT_BIN"
	exit 0
fi

# ----- prerequisites -------------------------------------------------------------------------

command -v "$GO" >/dev/null || die "missing prerequisite: Go ($GO not found): install Go 1.24 or newer"
command -v "$NODE" >/dev/null || die "missing prerequisite: Node.js 20+ ($NODE not found): install nodejs"
node_major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "missing prerequisite: Node.js 20+ (found $("$NODE" --version)): install Node.js 20"

# ----- one build at a time per cache ---------------------------------------------------------

mkdir -p "$TOOLS_DIR/src" "$LOG_DIR"
exec 9>"$TOOLS_DIR/.build-tilt.lock"
if ! flock -n 9; then
	echo "build-tilt: another build of tilt is using $TOOLS_DIR; waiting for it" >&2
	flock 9
	# It may have built exactly what we want.
	if current; then
		[[ $MODE == --web ]] || say found "tilt $TILT_VERSION $TILT_BIN"
		exit 0
	fi
fi

START=$(date +%s)
: >"$LOG"
log() { printf '\n== %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$LOG"; }
# Heavy steps run niced: the machine's cores are shared.
heavy() { nice -n 10 "$@" >>"$LOG" 2>&1; }
fail() {
	printf 'build-tilt: %s; last lines of %s:\n' "$1" "$LOG" >&2
	tail -n 25 "$LOG" >&2
	exit 1
}
json_field() { # field -> value of that top-level field of the JSON on stdin
	"$NODE" -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
		process.stdout.write(String(JSON.parse(s)[process.argv[1]] ?? "")))' "$1"
}

# ----- the source: a writable copy of the module -------------------------------------------

# The module is not in the checksum database: skip it there (the proxy's zip hash is still
# recorded in the module cache and checked on every later extraction).
log "download $MODULE@$TILT_VERSION"
module_json="$(GONOSUMDB=$MODULE GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$TILT_VERSION" 2>>"$LOG")" ||
	fail "go mod download $MODULE@$TILT_VERSION failed"
module_dir="$(json_field Dir <<<"$module_json")"
module_sum="$(json_field Sum <<<"$module_json")"
# The release date (the tag's commit time) is what `tilt version` prints as the build date.
release_time="$(json_field Time <"$(json_field Info <<<"$module_json")")"
[[ -d $module_dir && -n $module_sum && -n $release_time ]] || fail "unexpected go mod download output: $module_json"

# Kept between runs (with web/node_modules and yarn's cache) unless the module itself changed.
if [[ ! -f "$SRC/.module-sum" || "$(<"$SRC/.module-sum")" != "$module_sum" ]]; then
	log "copy $module_dir to $SRC"
	rm -rf "$SRC" "$SRC.partial"
	cp -R "$module_dir" "$SRC.partial"
	chmod -R u+w "$SRC.partial"
	printf '%s' "$module_sum" >"$SRC.partial/.module-sum"
	mv "$SRC.partial" "$SRC"
fi

# ----- the web dashboard -----------------------------------------------------------------------

# The yarn release named by package.json's packageManager: the copy that the source ships
# (its .yarnrc.yml yarnPath), else the same release from the npm package @yarnpkg/cli-dist.
yarn_js() {
	local version dist
	version="$(json_field packageManager <"$SRC/web/package.json")"
	version="${version#yarn@}"
	[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
		log "unexpected packageManager in web/package.json: $version"
		return 1
	}
	if [[ -f "$SRC/web/.yarn/releases/yarn-$version.cjs" ]]; then
		printf '%s' "$SRC/web/.yarn/releases/yarn-$version.cjs"
		return 0
	fi
	dist="$TOOLS_DIR/src/yarn-$version"
	if [[ ! -f "$dist/node_modules/@yarnpkg/cli-dist/bin/yarn.js" ]]; then
		log "npm install @yarnpkg/cli-dist@$version"
		"$NPM" install --no-save --prefix "$dist" "@yarnpkg/cli-dist@$version" >>"$LOG" 2>&1 || return 1
	fi
	printf '%s' "$dist/node_modules/@yarnpkg/cli-dist/bin/yarn.js"
}

build_web() {
	local yarn registry cafile
	rm -f "$WEB_DONE"
	yarn="$(yarn_js)" || return 1
	# A yarn from npm must not hand over to the (missing) yarnPath of .yarnrc.yml.
	if [[ $yarn != "$SRC/web/.yarn/releases/"* ]]; then export YARN_IGNORE_PATH=1; fi
	# Fetch packages from the registry npm is configured with (a mirror, when there is one).
	registry="$("$NPM" config get registry 2>>"$LOG")" || registry=
	if [[ -z $registry ]]; then
		log "npm config get registry failed"
		return 1
	fi
	export YARN_NPM_REGISTRY_SERVER="${registry%/}"
	cafile="$("$NPM" config get cafile 2>>"$LOG")" || cafile=
	if [[ -f $cafile ]]; then export YARN_HTTPS_CA_FILE_PATH="$cafile"; fi
	export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=0
	log "yarn install --immutable ($yarn)"
	(cd "$SRC/web" && heavy "$NODE" "$yarn" install --immutable) || return 1
	# CI=false as in the upstream release: lint warnings are not errors. No source maps and no
	# lint pass: a fifth less build time, and the embedded dashboard is 1.1 MB instead of 4.2.
	log "yarn build"
	rm -rf "$SRC/web/build"
	(cd "$SRC/web" && CI=false GENERATE_SOURCEMAP=false DISABLE_ESLINT_PLUGIN=true \
		heavy "$NODE" "$yarn" build) || return 1
	[[ -f "$SRC/web/build/index.html" ]] || {
		log "yarn build produced no web/build/index.html"
		return 1
	}
	touch "$WEB_DONE"
}

# pkg/assets/build starts as the module ships it, then receives the built dashboard.
reset_assets() {
	rm -rf "$SRC/pkg/assets/build"
	cp -R "$module_dir/pkg/assets/build" "$SRC/pkg/assets/build"
	chmod -R u+w "$SRC/pkg/assets/build"
}

placeholder_page() {
	cat <<EOF
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tilt $TILT_VERSION</title></head>
<body>
<h1>Tilt $TILT_VERSION: the web dashboard is not available</h1>
<p>This Tilt binary was built without its web dashboard because building the dashboard
failed (see $LOG). The command line works: <code>tilt get uiresources</code>,
<code>tilt logs</code>, <code>tilt trigger &lt;resource&gt;</code>, <code>tilt ci</code>.</p>
<p>Re-run <code>bash _dev-env/scripts/build-tilt.bash</code> to try building it again.</p>
</body>
</html>
EOF
}

if [[ $MODE == --web ]]; then
	web_ready || build_web || fail "the dashboard build failed"
	exit 0
fi

reset_assets
if web_ready || build_web; then
	web_ui=dashboard
	cp -R "$SRC/web/build/." "$SRC/pkg/assets/build/"
else
	web_ui=placeholder
	log "the dashboard build failed: embedding a placeholder page"
	placeholder_page >"$SRC/pkg/assets/build/index.html"
fi

# ----- the binary ------------------------------------------------------------------------------

# main.version/main.date are what goreleaser sets: a non-empty build info makes this a release
# build, whose default web mode is prod, served from the embedded assets.
ldflags="-s -w -X main.version=${TILT_VERSION#v} -X main.date=$release_time"
mkdir -p "$TILT_HOME/bin"
tmp_bin="$(mktemp "$TILT_HOME/bin/.tilt.XXXXXX")"
trap 'rm -f "$tmp_bin"' EXIT
log "go build ./cmd/tilt ($ldflags)"
# go.mod has replace directives and an incomplete vendor/: build in module mode.
(cd "$SRC" && GOFLAGS="-mod=mod -buildvcs=false" GONOSUMDB=$MODULE \
	heavy "$GO" build -ldflags "$ldflags" -o "$tmp_bin" ./cmd/tilt) || fail "go build of tilt failed"
chmod 755 "$tmp_bin"
"$tmp_bin" version >>"$LOG" 2>&1 || fail "the built tilt does not run"
# One rename: whoever runs tilt right now keeps the old file open, new runs get the new one.
mv -f "$tmp_bin" "$TILT_BIN"
if [[ $web_ui == dashboard ]]; then
	stamp_with_ui >"$STAMP_FILE.tmp"
else
	printf 'version=%s\nweb_ui=%s\n' "$TILT_VERSION" "$web_ui" >"$STAMP_FILE.tmp"
fi
mv -f "$STAMP_FILE.tmp" "$STAMP_FILE"

took="$(($(date +%s) - START))s"
if [[ $web_ui == dashboard ]]; then
	say built "tilt $TILT_VERSION ($took, with web dashboard) $TILT_BIN"
else
	printf 'build-tilt: WARNING: the web dashboard could not be built (see %s);\n' "$LOG" >&2
	printf 'build-tilt: this tilt serves a placeholder page instead; the CLI works. Re-run to retry.\n' >&2
	say built "tilt $TILT_VERSION ($took, WITHOUT web dashboard: placeholder page) $TILT_BIN"
fi
exit
}
