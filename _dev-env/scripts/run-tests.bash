#!/usr/bin/env bash
# Runs the whole test suite in groups. Each group that needs live services gets its own
# port block (CONCEPTOR_TEST_PORT_PREFIX), so its stack, workers and API never collide with
# another group's. Every group runs even if an earlier one failed; the exit code is the worst.
# Extra pytest arguments pass through: run-tests.bash -k provision
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
venv="${CONCEPTOR_VENV:-$PWD/.venv}"
pytest=("$venv/bin/pytest" -ra -p no:cacheprovider)
mkdir -p tests/artifacts

# name | port prefix (or -) | test paths (globs)
groups=(
  "unit|-|tests/unit"
  "services|451|tests/integration/test_services.py tests/integration/test_dev_*.py tests/integration/test_k8s_*.py tests/integration/test_tiltfile_*.py"
  "provision|453|tests/integration/test_provision*.py tests/e2e/test_provision_*.py"
  "workers|454|tests/integration/workers"
  "api|455|tests/integration/test_api*.py tests/e2e/test_panel*.py"
  "tilt|-|tests/e2e/test_tilt_*.py tests/integration/test_environment_tilt.py tests/e2e/test_team_stack.py"
  # One quick round of every bench/*.py, one after the other on this block: none breaks unseen.
  "bench|452|tests/integration/test_benchmarks.py"
)

# Every test file must belong to a group: a new file nobody runs would be a silent gap.
declare -A covered=()
for group in "${groups[@]}"; do
  IFS='|' read -r _ _ paths <<<"$group"
  for path in $paths; do
    if [[ -d $path ]]; then
      while IFS= read -r f; do covered[$f]=1; done < <(find "$path" -name 'test_*.py')
    elif [[ -f $path ]]; then
      covered[$path]=1
    fi
  done
done
orphans=0
while IFS= read -r f; do
  if [[ -z ${covered[$f]:-} ]]; then
    echo "run-tests: $f is in no test group: add it to a group in $0" >&2
    orphans=1
  fi
done < <(find tests -name 'test_*.py' | sort)
(( orphans == 0 )) || exit 2

# While `make test` still builds kube-apiserver (CONCEPTOR_TEST_TOOLS_PENDING), the groups that
# use it run last, after a set-up that waits for that build.
uses_kube_apiserver=" services "
ordered=()
later=()
for group in "${groups[@]}"; do
  if [[ -n ${CONCEPTOR_TEST_TOOLS_PENDING:-} && $uses_kube_apiserver == *" ${group%%|*} "* ]]; then
    later+=("$group")
  else
    ordered+=("$group")
  fi
done
ordered+=("${later[@]}")

worst=0
summary=()
for group in "${ordered[@]}"; do
  IFS='|' read -r name prefix paths <<<"$group"
  if [[ -n ${CONCEPTOR_TEST_TOOLS_PENDING:-} && $uses_kube_apiserver == *" $name "* ]]; then
    CONCEPTOR_TEST_TOOLS_PENDING=
    bash _dev-env/scripts/dev-setup.bash || echo "run-tests: the set-up failed (above)" >&2
  fi
  # shellcheck disable=SC2206 # the globs are meant to expand here
  files=($paths)
  existing=()
  for f in "${files[@]}"; do [[ -e $f ]] && existing+=("$f"); done
  if (( ${#existing[@]} == 0 )); then
    summary+=("$name: no tests")
    continue
  fi
  echo "=== test group $name (port prefix ${prefix/-/none}): ${existing[*]}"
  start=$SECONDS
  if [[ $prefix == - ]]; then
    "${pytest[@]}" --junitxml="tests/artifacts/junit-$name.xml" "${existing[@]}" "$@"
  else
    CONCEPTOR_TEST_PORT_PREFIX=$prefix \
      "${pytest[@]}" --junitxml="tests/artifacts/junit-$name.xml" "${existing[@]}" "$@"
  fi
  code=$?
  # pytest exits 5 when a -k filter leaves a group empty: not a failure of the suite.
  (( code == 5 )) && code=0
  (( code > worst )) && worst=$code
  summary+=("$name: exit $code in $((SECONDS - start)) s")
done

echo "=== test groups"
printf '  %s\n' "${summary[@]}"
exit "$worst"
