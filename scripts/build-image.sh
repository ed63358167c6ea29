#!/usr/bin/env bash
# Builds magpie's runtime image without a Docker engine and reports its real size.
#
# The Dockerfile's runtime is distroless's `cc` image (glibc, libgcc, libstdc++, CA
# certificates, time zones, /etc/passwd) plus the stripped binary and /data owned by uid 1000.
# No engine runs here, so this script assembles the same two layers the way distroless itself
# is made, from Debian bookworm's packages (apt-get download, dpkg-deb -x), packs them as an
# OCI image with umoci (gzip layers, as a registry stores them), checks the result by running
# the binary inside the image's root filesystem (chroot: `magpie demo --no-serve`), and can
# export a tarball for `docker load` with skopeo.
#
#   usage: scripts/build-image.sh [OUT_DIR]        (default /var/cache/magpie-ci/image)
#   env:   BIN=path/to/magpie (default: the release build), ARCH=amd64|arm64 (default amd64),
#          DOCKER_ARCHIVE=1 also writes OUT_DIR/magpie-image.tar
# Needs root (chroot, file ownership), umoci, and skopeo for DOCKER_ARCHIVE.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
OUT="${1:-/var/cache/magpie-ci/image}"
ARCH="${ARCH:-amd64}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q -p magpie
  BIN="$CARGO_TARGET_DIR/release/magpie"
fi
command -v umoci >/dev/null || { echo "umoci is needed (apt-get install umoci)" >&2; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT/debs" "$OUT/base" "$OUT/app"

echo "== base layer: distroless cc's contents from Debian bookworm ($ARCH)"
# The packages distroless/cc-debian12 is made of (base-files' and netbase's few files, glibc,
# libgcc, libstdc++, CA certificates, time zones).
PACKAGES="libc6 libgcc-s1 libstdc++6 gcc-12-base ca-certificates tzdata netbase base-files"
(cd "$OUT/debs" && for p in $PACKAGES; do apt-get download -qq "$p:$ARCH" 2>/dev/null || apt-get download -qq "$p"; done)
for deb in "$OUT"/debs/*.deb; do dpkg-deb -x "$deb" "$OUT/base"; done
# What an image never runs: documentation, manuals, locales, the package scripts' helpers.
rm -rf "$OUT"/base/usr/share/{doc,man,info,lintian,locale} "$OUT"/base/usr/sbin "$OUT"/base/usr/bin
# The CA bundle (update-ca-certificates builds it at install: take the one built from the same
# package on this Debian machine), users and groups like distroless's, and /tmp.
mkdir -p "$OUT/base/etc/ssl/certs" "$OUT/base/tmp" "$OUT/base/home/nonroot"
cp /etc/ssl/certs/ca-certificates.crt "$OUT/base/etc/ssl/certs/"
chmod 1777 "$OUT/base/tmp"
cat > "$OUT/base/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
magpie:x:1000:1000:magpie:/data:/sbin/nologin
PASSWD
cat > "$OUT/base/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
nonroot:x:65532:
magpie:x:1000:
GROUP
printf 'hosts: files dns\n' > "$OUT/base/etc/nsswitch.conf"

echo "== app layer: the stripped binary and /data"
mkdir -p "$OUT/app/usr/local/bin" "$OUT/app/data"
cp "$BIN" "$OUT/app/usr/local/bin/magpie"
strip "$OUT/app/usr/local/bin/magpie" 2>/dev/null || aarch64-linux-gnu-strip "$OUT/app/usr/local/bin/magpie"
chown 1000:1000 "$OUT/app/data"

echo "== OCI image (umoci)"
LAYOUT="$OUT/oci"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:magpie"
umoci config --image "$LAYOUT:magpie" --architecture "$ARCH" --os linux
umoci unpack --image "$LAYOUT:magpie" "$OUT/bundle" >/dev/null
cp -a "$OUT/base/." "$OUT/bundle/rootfs/"
# --refresh-bundle: the next repack's layer is then only what changed after this one.
umoci repack --refresh-bundle --image "$LAYOUT:magpie" "$OUT/bundle"
cp -a "$OUT/app/." "$OUT/bundle/rootfs/"
umoci repack --image "$LAYOUT:magpie" "$OUT/bundle"
umoci config --image "$LAYOUT:magpie" \
  --config.user 1000:1000 --config.workingdir /data \
  --config.entrypoint /usr/local/bin/magpie --config.cmd serve \
  --config.env MAGPIE_DATA_DIR=/data --config.env MAGPIE_SERVER__BIND=0.0.0.0 \
  --config.env MAGPIE_SERVER__PORT=8080 --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.volume /data --config.exposedports 8080/tcp --config.stopsignal SIGTERM
umoci gc --layout "$LAYOUT"

echo "== check: the binary runs from the image's root filesystem alone"
rm -rf "$OUT/bundle" && umoci unpack --image "$LAYOUT:magpie" "$OUT/bundle" >/dev/null
ROOT="$OUT/bundle/rootfs"
if [ "$ARCH" = amd64 ]; then
  chroot --userspec=1000:1000 "$ROOT" /usr/local/bin/magpie --version
  chroot --userspec=1000:1000 "$ROOT" /usr/local/bin/magpie --data-dir /data/demo demo --no-serve --plays 3000 > "$OUT/demo.log" 2>&1 \
    || { cat "$OUT/demo.log"; exit 1; }
  tail -3 "$OUT/demo.log"
  rm -rf "$ROOT/data/demo"
fi

echo "== size"
python3 - "$LAYOUT" <<'PY'
import json, os, sys
layout = sys.argv[1]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest_desc = index["manifests"][0]
manifest = json.load(open(blob(manifest_desc["digest"])))
compressed = manifest_desc["size"] + manifest["config"]["size"]
for i, layer in enumerate(manifest["layers"]):
    compressed += layer["size"]
    print(f"layer {i + 1}: {layer['size'] / 1e6:.1f} MB compressed ({layer['mediaType']})")
config = json.load(open(blob(manifest["config"]["digest"])))
print(f"image: {compressed / 1e6:.1f} MB compressed, {len(manifest['layers'])} layers, {config['architecture']}")
PY
du -sh "$ROOT" | awk '{print "uncompressed root filesystem: " $1}'

if [ "${DOCKER_ARCHIVE:-0}" = 1 ]; then
  skopeo copy -q "oci:$LAYOUT:magpie" "docker-archive:$OUT/magpie-image.tar:magpie:local"
  ls -l "$OUT/magpie-image.tar"
fi
