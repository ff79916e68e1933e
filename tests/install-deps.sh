#!/bin/sh
# Installs the Debian packages the test suite needs, once, when run as root.
# Unit tests need nothing beyond python3; the end-to-end suite and the package build need these.
set -eu
PKGS="debootstrap systemd-container debhelper dh-python pybuild-plugin-pyproject python3-setuptools lintian groff-base man-db curl openssl mypy pycodestyle python3-pyflakes piuparts faketime"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run as root, or: apt-get install$missing" >&2
    exit 1
fi
echo "install-deps: installing$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
