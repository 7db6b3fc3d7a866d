#!/usr/bin/env bash
# Builds Conceptor's Keycloak extension (whole-realm snapshots: users with their stored
# credentials, which the admin REST API never returns; the realm import's bulk read of users
# with their grants and groups) with the JDK's javac against the pinned
# Keycloak's own jars, and installs it into that Keycloak's providers/ folder.
# The jar is cached per source digest: an unchanged extension costs a checksum, and Keycloak
# re-augments (start-dev does this by itself) only when the jar changed.
# Usage: build-keycloak-extension.bash KEYCLOAK_HOME
set -euo pipefail

keycloak_home="${1:?usage: build-keycloak-extension.bash KEYCLOAK_HOME}"
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../keycloak-extension" && pwd)"
installed="$keycloak_home/providers/conceptor-extension.jar"
stamp="$keycloak_home/providers/.conceptor-extension.sha256"

digest="$(cd "$source_dir" && find src resources -type f -print0 | sort -z | xargs -0 sha256sum |
	sha256sum | cut -d' ' -f1)"
if [[ -f $installed && "$(cat "$stamp" 2>/dev/null)" == "$digest" ]]; then
	printf '%-10s %s\n' found "keycloak-extension ${digest:0:12} $installed"
	exit 0
fi
command -v javac >/dev/null || {
	echo "build-keycloak-extension: javac not found: the JDK 17 builds the Keycloak extension" >&2
	exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/classes"
mapfile -t sources < <(find "$source_dir/src" -name '*.java' | sort)
javac --release 17 -nowarn -cp "$keycloak_home/lib/lib/main/*" -d "$work/classes" "${sources[@]}"
cp -r "$source_dir/resources/." "$work/classes/"
jar --create --file "$work/conceptor-extension.jar" -C "$work/classes" .
mv "$work/conceptor-extension.jar" "$installed"
printf '%s' "$digest" >"$stamp"
printf '%-10s %s\n' built "keycloak-extension ${digest:0:12} $installed"
