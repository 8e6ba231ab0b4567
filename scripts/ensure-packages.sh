#!/usr/bin/env bash
# Makes sure the Debian packages a make target needs are installed: installs them with apt when
# running as root, otherwise prints the exact command and fails.
# Usage: scripts/ensure-packages.sh CHECK:PACKAGE ...
#   CHECK is a shell test that succeeds when the package is usable, PACKAGE its Debian name.
set -euo pipefail

missing=()
for spec in "$@"; do
    check=${spec%%:*}
    package=${spec#*:}
    if ! bash -c "$check" >/dev/null 2>&1; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
