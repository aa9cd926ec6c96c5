#!/usr/bin/env bash
# Builds a real kube-apiserver (v1.20.2, from Debian 12's `kubernetes` source package) for the
# Kubernetes-mode tests, and caches it: /var/cache/vipd/kube-apiserver-1.20.2. No API server is
# packaged for Debian 12 or npm; LAB.md records how this build was found to work (~8 min cold).
# Also installs etcd-server and kubectl (kubernetes-client). Idempotent. Prints the binary path.
set -euo pipefail
CACHE=/var/cache/vipd
BIN=$CACHE/kube-apiserver-1.20.2
log() { printf '[kube-apiserver] %s\n' "$*" >&2; }

need=()
for p in golang-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
# kubectl: Debian's kubernetes-client, unless some kubectl is already installed.
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time (two CI runs on one machine share the tree and the result).
exec 9>"$CACHE/build.lock"
flock 9
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
# One build tree, kept when a build fails: Kubernetes' make keeps Go's build cache inside it
# (_output/local/go/cache; hack/lib/golang.sh sets GOCACHE there whatever the caller says), so a
# build killed by the timeout (25 min at load ~15 on 2 cores) resumes from what it compiled.
work=$CACHE/build
rm -rf "$CACHE"/build.??????  # trees of the earlier mktemp layout
mkdir -p "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
if [[ -z "$src" || ! -f "$work/source-ready" ]]; then
  rm -rf "${work:?}"/*
  # A private apt configuration with deb-src lines for the same mirror as the system's deb lines;
  # the system's sources are not touched.
  mirror=$(grep -rhoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [[ -n "$mirror" ]] || mirror=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  [[ -n "$mirror" ]] || { log "cannot find the Debian mirror"; exit 1; }
  mkdir -p "$work/lists/partial"
  echo "deb-src $mirror bookworm main" >"$work/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists")
  log "fetching the kubernetes source package from $mirror"
  apt-get "${aptopts[@]}" update -qq
  (cd "$work" && apt-get "${aptopts[@]}" source -qq kubernetes >/dev/null 2>&1)
  src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  [[ -n "$src" ]] || { log "no source tree"; exit 1; }
  # The vendored reflect2 v1.0.1 crashes on the first custom-resource write under Go >= 1.18.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  touch "$work/source-ready"
else
  log "resuming the build in $src"
fi
log "building (8-25 min on 2 cores, depending on load)"
(cd "$src" && timeout 2400 make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1) || {
  tail -30 "$work/build.log" >&2
  exit 1
}
out=$(find "$src/_output" -type f -name kube-apiserver -perm -u+x | head -1)
install -m 0755 "$out" "$BIN"
rm -rf "$work"
log "built $BIN"
echo "$BIN"
