#!/usr/bin/env bash
# Keep this checkout's port block out of Linux's ephemeral range; `make up` runs it.
#
# Every port of the stack is <prefix><two digits> (TILT_PORT_PREFIX, or .env.development),
# and most prefixes put the block inside the ephemeral range, where an outgoing connection
# can borrow a service's port while it is still starting. Reserving the block
# (net.ipv4.ip_local_reserved_ports) stops that; the ranges already reserved are kept.
# As root it reserves the block; otherwise it prints the exact command. Always exits 0: the
# stack runs either way, reserving only removes a rare start-up failure.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${CONCEPTOR_VENV:-$REPO_ROOT/.venv}"
# Overridable so the logic can be exercised without touching the machine's settings.
RESERVED_FILE="${RESERVED_FILE:-/proc/sys/net/ipv4/ip_local_reserved_ports}"
RANGE_FILE="${RANGE_FILE:-/proc/sys/net/ipv4/ip_local_port_range}"
SYSCTL="${SYSCTL:-sysctl}"
EUID_OVERRIDE="${EUID_OVERRIDE:-$EUID}"

say() { printf '%-10s %s\n' "$1" "$2"; }

# The prefix as the stack sees it (environment, then .env.development, then 440).
prefix="$("$VENV/bin/conceptor" dev ports --json |
	"$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["prefix"])')"
first=$((10#$prefix * 100))
last=$((first + 99))
block="$first-$last"

read -r eph_low eph_high <"$RANGE_FILE"
if ((last < eph_low || first > eph_high)); then
	say found "ports $block outside the ephemeral range ($eph_low-$eph_high): nothing to reserve"
	exit 0
fi

reserved="$(tr -d '[:space:]' <"$RESERVED_FILE" 2>/dev/null || true)"
# Is every port of the block inside one of the reserved ranges ("a-b,c,d-e")?
covered=0
IFS=',' read -r -a ranges <<<"$reserved"
for range in "${ranges[@]}"; do
	[[ -n $range ]] || continue
	low=${range%-*}
	high=${range#*-}
	if ((low <= first && last <= high)); then covered=1; fi
done
if ((covered)); then
	say found "reserved ports $block (net.ipv4.ip_local_reserved_ports=$reserved)"
	exit 0
fi

wanted="${reserved:+$reserved,}$block"
if [[ $EUID_OVERRIDE -eq 0 ]] && "$SYSCTL" -q -w "net.ipv4.ip_local_reserved_ports=$wanted" 2>/dev/null; then
	say set "reserved ports $block (net.ipv4.ip_local_reserved_ports=$wanted)"
else
	say warning "ports $block are not reserved against ephemeral use; to reserve them run:"
	printf '           sudo sysctl -w net.ipv4.ip_local_reserved_ports=%s\n' "$wanted"
fi
