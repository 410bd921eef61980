#!/usr/bin/env bash
# The whole test suite (what `npm test` and CI run): type-check, lint and
# format check, then every test file, the Nix ones against Nix 2.8, 2.26 and
# the newest Debian has (2.34 when written; it prints the versions it used).
# Installs the three when missing (needs root and the Debian archives); set
# NIXOS_CLOSURE_TEST_NIX_BINS (colon-separated directories holding `nix`) to
# test with Nix versions you already have instead.
#
# With --unit (`npm run test:unit`): the pure tests alone, the files that ask
# for no Nix (no testNixes() call), several at once: the inner loop while
# changing code. No Nix needed, no type-check, no lint.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=false
case "${1:-}" in
--unit) unit=true ;;
"") ;;
*)
  echo "usage: scripts/test.sh [--unit]" >&2
  exit 2
  ;;
esac

if ! $unit; then
  if [ -z "${NIXOS_CLOSURE_TEST_NIX_BINS:-}" ]; then
    eval "$(bash scripts/install-nix.sh)"
    NIXOS_CLOSURE_TEST_NIX_BINS="$(dirname "$NIX_28"):$(dirname "$NIX_226"):$(dirname "$NIX_234")"
  fi
  export NIXOS_CLOSURE_TEST_NIX_BINS
  echo "Nix versions under test:"
  for bin in ${NIXOS_CLOSURE_TEST_NIX_BINS//:/ }; do echo "  $("$bin/nix" --version) ($bin)"; done
fi

# The tests hand the steps environments of their own: worker variables of the
# calling shell must change nothing, so here they point at unrelated places.
export WORKERS_DIR=/nonexistent/workers WORKER_INDEX=7 WORKBENCH_DIR=/nonexistent SYSTEM_DIR=/nonexistent/system \
  VENDOR_DIR=/nonexistent/vendor NIXOS_FLAKE_DIR=/nonexistent/nixos-flake NIX_BIN=/nonexistent/bin

echo "== build the CLI (dist/nixos-closure.cjs, which the CLI tests run)"
npm run -s build

mapfile -t files < <(find tests -name '*.test.ts' | sort)
runner=(node --import tsx --test)
if $unit; then
  mapfile -t files < <(grep -L 'testNixes()' "${files[@]}")
  # Pure tests share nothing (each has its own temporary directories): run them side by side.
  runner+=(--test-concurrency=4)
else
  echo "== type-check"
  npx tsc -p .
  echo "== lint and format"
  npx biome ci .
fi

echo "== tests"
nonexistent_before=$([ -e /nonexistent ] && echo yes || echo no)
tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
status=0
"${runner[@]}" --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "${files[@]}" || status=$?
# The closing line, plain: "N passed, N failed".
echo "$(sed -n 's/^# pass //p' "$tap") passed, $(sed -n 's/^# fail //p' "$tap") failed"
# A test that took the calling shell's worker variables wrote where they point.
if [ "$nonexistent_before" = no ] && [ -e /nonexistent ]; then
  echo "a test wrote under /nonexistent (the worker variables above): it must use a workbench of its own"
  status=1
fi
exit "$status"
