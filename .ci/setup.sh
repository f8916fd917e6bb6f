#!/usr/bin/env bash
# Set up everything trio_live's demo and tests need, from scratch: system
# packages, a virtual environment in .venv with the package and its extras.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Install Debian packages that are not there yet (apt-get update only once).
apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        $sudo apt-get update -q
        apt_updated=1
    fi
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PYTHON --version)"
    $PYTHON -m venv .venv
fi
# pip in the venv, without the noise of index locations this machine lacks.
venv_pip() {
    .venv/bin/python -m pip --disable-pip-version-check "$@" 2>&1 \
        | { grep -v "^WARNING: Location 'file:///" || true; }
    return "${PIPESTATUS[0]}"
}
PIP=venv_pip
say "installing trio_live (editable) with its dev tools"
$PIP install -q -e '.[dev]'

# Each piece of the project adds its own setup step here (voice back ends,
# the local model, the browser for the page's test...).
for step in .ci/setup.d/*.sh; do
    [ -e "$step" ] || continue
    say "setup step ${step##*/}"
    # shellcheck source=/dev/null
    source "$step"
done
say "setup done"
