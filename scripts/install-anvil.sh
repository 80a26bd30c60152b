#!/usr/bin/env bash
# Installs the pinned Tempo dev node (anvil with `--network tempo`) from its npm package into
# .tools/ (git-ignored) and verifies the package checksum. Idempotent; prints the binary's path.
set -euo pipefail

ANVIL_NPM_PACKAGE="@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION="1.7.1"
ANVIL_TGZ_SHA256="5727dd8f08f3bf6dde4ec1d9832e87c43f9315ef824bff1ab18486bf51bc7af3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.tools/anvil-$ANVIL_VERSION"
bin="$dest/anvil"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$ANVIL_NPM_PACKAGE@$ANVIL_VERSION" >/dev/null)
tgz="$(ls "$work"/*.tgz)"
actual="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [ "$actual" != "$ANVIL_TGZ_SHA256" ]; then
  echo "install-anvil: checksum mismatch for $ANVIL_NPM_PACKAGE@$ANVIL_VERSION" >&2
  echo "  expected $ANVIL_TGZ_SHA256" >&2
  echo "  got      $actual" >&2
  exit 1
fi

tar -xzf "$tgz" -C "$work"
found="$(find "$work/package" -type f -name anvil | head -n 1)"
if [ -z "$found" ]; then
  echo "install-anvil: no anvil binary inside $ANVIL_NPM_PACKAGE@$ANVIL_VERSION" >&2
  exit 1
fi
mkdir -p "$dest"
install -m 0755 "$found" "$bin"
echo "$bin"
