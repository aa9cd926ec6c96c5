#!/usr/bin/env bash
# The Debian mirror the image is built from: the machine's own, read from its apt sources, so the
# scripts name no mirror host. Sourced by image/build.sh and image/rootfs.sh; run directly it
# prints the mirror (for tests: `bash image/mirror.sh [SUITE]`).
#
#   VIPD_IMAGE_MIRROR=URL   overrides everything (as before)
#   VIPD_APT_ETC=DIR        where apt's configuration is (default /etc/apt; tests point it elsewhere)
#
# Sources read, in apt's order: DIR/sources.list, DIR/sources.list.d/*.list (one-line format,
# `deb [options] URI SUITE COMPONENT...`), DIR/sources.list.d/*.sources (deb822 paragraphs with
# Types, URIs, Suites, Components, Enabled). The first `deb` entry for SUITE itself (not
# SUITE-updates or SUITE-security) with the `main` component wins. cdrom: entries are skipped.

# debian_mirror SUITE: prints "URI<TAB>FILE" of the mirror to use, or fails with a message.
debian_mirror() {
  local suite=${1:-bookworm} etc=${VIPD_APT_ETC:-/etc/apt}
  if [[ -n ${VIPD_IMAGE_MIRROR:-} ]]; then
    printf '%s\t%s\n' "$VIPD_IMAGE_MIRROR" "VIPD_IMAGE_MIRROR"
    return 0
  fi
  local f found
  local files=()
  [[ -f $etc/sources.list ]] && files+=("$etc/sources.list")
  for f in "$etc"/sources.list.d/*.list; do [[ -f $f ]] && files+=("$f"); done
  for f in "${files[@]}"; do
    # One-line format: drop comments, options in [...]; fields: type URI suite components.
    found=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//g' "$f" | awk -v suite="$suite" '
      $1 == "deb" && $3 == suite && $2 !~ /^cdrom:/ {
        for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit }
      }')
    if [[ -n $found ]]; then
      printf '%s\t%s\n' "${found%/}" "$f"
      return 0
    fi
  done
  for f in "$etc"/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # deb822: paragraphs separated by blank lines; a field may continue on indented lines.
    found=$(awk -v suite="$suite" '
      function flush(   n, i, u) {
        if (!done && (" " f["types"] " ") ~ / deb / && (" " f["suites"] " ") ~ (" " suite " ") &&
            (" " f["components"] " ") ~ / main / && tolower(f["enabled"]) != "no") {
          n = split(f["uris"], u, " ")
          for (i = 1; i <= n; i++) if (u[i] !~ /^cdrom:/) { print u[i]; done = 1; break }
        }
        delete f
        last = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v); if (last != "") f[last] = f[last] " " v; next }
      {
        k = tolower($0); sub(/:.*/, "", k)
        v = $0; sub(/^[^:]*:[ \t]*/, "", v); gsub(/[ \t]+$/, "", v)
        f[k] = v; last = k
      }
      END { flush() }' "$f")
    if [[ -n $found ]]; then
      printf '%s\t%s\n' "${found%/}" "$f"
      return 0
    fi
  done
  echo "no Debian mirror for '$suite' (deb, component main) in $etc/sources.list, $etc/sources.list.d/*.list or *.sources; set VIPD_IMAGE_MIRROR=URL" >&2
  return 1
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  debian_mirror "${1:-bookworm}"
fi
