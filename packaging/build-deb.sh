#!/bin/sh
# Builds the seestack-systemd .deb ("make deb").
#
# The source tree (tracked and not-ignored files) and packaging/debian are copied
# to a temporary directory, built there with "dpkg-buildpackage -us -uc -b", and
# the .deb, .changes and .buildinfo are put in dist/ (with the build log as
# dist/seestack-systemd_VERSION_all.build). Nothing else in the checkout changes.
# As root, missing build tools are installed with apt-get; otherwise they are named.
# Then lintian checks the result and fails the build on any error or warning.
#
# Environment:
#   DEB_BUILD_OPTIONS=nocheck   skip the unit tests during the build
#   SEESTACK_DEB_LINTIAN=0      skip lintian
#   SEESTACK_DEB_KEEP=1         keep the temporary build directory
#   SEESTACK_DEB_VERBOSE=1      show the build log as it is written
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEBIAN_DIR=$ROOT/packaging/debian
DIST=$ROOT/dist
PKG=seestack-systemd
started=$(date +%s)

say() { echo "build-deb: $*"; }
die() { echo "build-deb: error: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=""
apt_install() {
	# apt_install PKG...: installs packages as root, or says what is missing.
	if ! is_root; then
		die "missing: $*; run this as root, or: apt-get install --no-install-recommends $*"
	fi
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=yes
	fi
	say "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

[ -f "$DEBIAN_DIR/control" ] || die "$DEBIAN_DIR/control not found"
command -v dpkg-buildpackage >/dev/null 2>&1 || apt_install dpkg-dev

# The Debian version's upstream part must be the project's version.
deb_version=$(dpkg-parsechangelog -l "$DEBIAN_DIR/changelog" -S Version)
upstream=${deb_version#*:}
upstream=${upstream%-*}
py_version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)
if [ -n "$py_version" ] && [ "$py_version" != "$upstream" ]; then
	die "pyproject.toml has version $py_version but packaging/debian/changelog has $deb_version: add a changelog entry (dch -v $py_version-1)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/seestack-deb.XXXXXX")
# mktemp makes it 0700. As root, the unit tests in the build drop to uid 65534 to
# prove permission errors, and that user must reach the source tree (and TMPDIR,
# which is this directory too) to import the package: the tree holds no secret.
chmod 0755 "$WORK"
cleanup() {
	if [ "${SEESTACK_DEB_KEEP:-0}" = 1 ]; then
		say "kept build directory $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=$WORK/$PKG-$upstream
mkdir -p "$SRC" "$WORK/home"

# Copy the source: in a git checkout, the tracked files and the new ones not
# ignored (others' uncommitted work included, caches and dist/ not); otherwise
# everything but the usual build debris.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
		(cd "$ROOT" && /usr/bin/python3 -c '
import os, shutil, sys
dest = sys.argv[1]
for path in sys.stdin.buffer.read().split(b"\0"):
    path = os.fsdecode(path)
    if not path or path.startswith(("debian/", "dist/", "build/")) or not os.path.lexists(path):
        continue
    target = os.path.join(dest, path)
    os.makedirs(os.path.dirname(target) or dest, exist_ok=True)
    shutil.copy2(path, target, follow_symlinks=False)
' "$SRC")
else
	(cd "$ROOT" && tar -cf - --exclude=./.git --exclude=./dist --exclude=./build --exclude=./debian \
		--exclude='*.egg-info' --exclude=__pycache__ --exclude='*.pyc' .) | (cd "$SRC" && tar -xf -)
fi
rm -rf "$SRC/debian"
cp -a "$DEBIAN_DIR" "$SRC/debian"
chmod 0755 "$SRC/debian/rules"

# Build dependencies (and build-essential, which dpkg-buildpackage also checks).
if ! (cd "$SRC" && dpkg-checkbuilddeps >/dev/null 2>&1); then
	is_root || die "$(cd "$SRC" && dpkg-checkbuilddeps 2>&1 | sed 's/^dpkg-checkbuilddeps: error: //'); run this as root to install them"
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=yes
	fi
	say "installing the build dependencies"
	DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq --no-install-recommends "$SRC" >/dev/null
	installed build-essential || apt_install build-essential
fi

# A clean environment: no pyenv or virtualenv python3 ahead of Debian's, no
# PYTHON* variables, no proxies; the build needs no network.
LOG=$WORK/build.log
say "building $PKG $deb_version in $WORK"
set +e
if [ "${SEESTACK_DEB_VERBOSE:-0}" = 1 ]; then
	(cd "$SRC" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/home" \
		LANG=C.UTF-8 LC_ALL=C.UTF-8 TMPDIR="$WORK" \
		DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" DEB_BUILD_PROFILES="${DEB_BUILD_PROFILES:-}" \
		dpkg-buildpackage -us -uc -b 2>&1; echo $? >"$WORK/rc") | tee "$LOG"
else
	(cd "$SRC" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/home" \
		LANG=C.UTF-8 LC_ALL=C.UTF-8 TMPDIR="$WORK" \
		DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" DEB_BUILD_PROFILES="${DEB_BUILD_PROFILES:-}" \
		dpkg-buildpackage -us -uc -b >"$LOG" 2>&1; echo $? >"$WORK/rc")
fi
set -e
rc=$(cat "$WORK/rc" 2>/dev/null || echo 1)
if [ "$rc" != 0 ]; then
	[ "${SEESTACK_DEB_VERBOSE:-0}" = 1 ] || tail -n 60 "$LOG" >&2
	mkdir -p "$DIST" && cp "$LOG" "$DIST/$PKG-build-failed.log" && say "full log: dist/$PKG-build-failed.log" >&2
	die "dpkg-buildpackage failed (exit $rc)"
fi
grep -h '^seestack-systemd: WARNING' "$LOG" >&2 || true

# dist/ holds the one version just built.
mkdir -p "$DIST"
rm -f "$DIST/$PKG-build-failed.log"
rm -f "$DIST/${PKG}"_*.deb "$DIST/${PKG}"_*.changes "$DIST/${PKG}"_*.buildinfo "$DIST/${PKG}"_*.build
for f in "$WORK/${PKG}"_*.deb "$WORK/${PKG}"_*.changes "$WORK/${PKG}"_*.buildinfo; do
	if [ -f "$f" ]; then cp "$f" "$DIST/"; fi
done
noepoch=${deb_version#*:}
cp "$LOG" "$DIST/${PKG}_${noepoch}_all.build"
deb=$(ls "$DIST/${PKG}_${noepoch}"_all.deb)
changes=$(ls "$DIST/${PKG}_${noepoch}"_*.changes)
say "built ${deb#"$ROOT"/} in $(( $(date +%s) - started )) s"

if [ "${SEESTACK_DEB_LINTIAN:-1}" != 0 ]; then
	if ! command -v lintian >/dev/null 2>&1; then
		if is_root; then
			apt_install lintian
		else
			say "lintian is not installed: not checked (apt-get install lintian)"
			exit 0
		fi
	fi
	# lintian only prints a notice when run as root (it does not refuse):
	# --allow-root silences it; the checks are the same.
	root_flag=""
	is_root && root_flag=--allow-root
	say "lintian --fail-on error,warning ${changes#"$ROOT"/}"
	set +e
	lintian --fail-on error,warning $root_flag "$changes"
	lrc=$?
	set -e
	[ "$lrc" = 0 ] || die "lintian found errors or warnings (exit $lrc)"
	say "lintian: no errors or warnings"
fi
