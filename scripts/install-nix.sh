#!/usr/bin/env bash
# Installs the three Nix versions the test suite runs against, without touching
# the system's Nix configuration:
#   - Nix 2.8 from Debian bookworm (`nix-bin`), at /usr/bin/nix;
#   - Nix 2.26 from Debian trixie, unpacked into a private prefix and patched to
#     use that prefix's libraries (see docs/testing.md);
#   - the newest Nix Debian has (sid's `nix-bin`, 2.34 when written; that suite
#     moves), the same way into a prefix of its own.
# Idempotent: what is already there is kept. Prints the three `nix` paths as
#   NIX_28=/usr/bin/nix
#   NIX_226=<trixie prefix>/usr/bin/nix
#   NIX_234=<sid prefix>/usr/bin/nix
# Needs root (apt-get) and the Debian archives.
set -euo pipefail

trixie_prefix=${NIX_TRIXIE_PREFIX:-/opt/nix-trixie}
sid_prefix=${NIX_SID_PREFIX:-/opt/nix-sid}
apt_quiet=(-o Dpkg::Use-Pty=0 -qq)

need_update=1
apt_update_once() {
  if [ "$need_update" = 1 ]; then
    apt-get "${apt_quiet[@]}" update >&2
    need_update=0
  fi
}

# Nix 2.8 and the tools this script and the tests use.
missing=()
command -v /usr/bin/nix >/dev/null 2>&1 || missing+=(nix-bin)
command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)
# The shells whose completion scripts the tests load.
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_quiet[@]}" install -y --no-install-recommends "${missing[@]}" >&2
fi

# The Debian mirror the machine's own sources use.
debian_mirror() {
  local mirror
  mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  mirror=${mirror%/}
  [ -n "$mirror" ] || { echo "install-nix: no Debian mirror found in /etc/apt/sources*" >&2; exit 1; }
  echo "$mirror"
}

# `nix-bin` of another Debian suite and its dependencies, unpacked into a
# prefix, its nix patched to load that prefix's loader and libraries.
work=""
trap 'rm -rf "$work"' EXIT
install_private() {
  local suite=$1 prefix=$2 mirror pkgs deb
  [ -x "$prefix/usr/bin/nix" ] && return 0
  work=$(mktemp -d)
  mirror=$(debian_mirror)
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
  echo "deb $mirror $suite main" >"$work/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::Status=/dev/null
    -o APT::Architecture=amd64 -o APT::Sandbox::User=root)
  apt-get "${apt_quiet[@]}" "${apt_opts[@]}" update >&2
  pkgs=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances nix-bin | grep -E '^[a-z0-9]' | sort -u)
  (cd "$work/debs" && apt-get "${apt_quiet[@]}" "${apt_opts[@]}" download $pkgs >&2)
  rm -rf "$prefix.tmp"
  mkdir -p "$prefix.tmp"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix.tmp"; done
  patchelf --set-interpreter "$prefix/usr/lib64/ld-linux-x86-64.so.2" --force-rpath \
    --set-rpath "$prefix/usr/lib/x86_64-linux-gnu" "$prefix.tmp/usr/bin/nix"
  rm -rf "$prefix" "$work"
  work=""
  mv "$prefix.tmp" "$prefix"
}

install_private trixie "$trixie_prefix"
install_private sid "$sid_prefix"

echo "NIX_28=/usr/bin/nix"
echo "NIX_226=$trixie_prefix/usr/bin/nix"
echo "NIX_234=$sid_prefix/usr/bin/nix"
