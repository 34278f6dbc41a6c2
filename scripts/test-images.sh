#!/usr/bin/env bash
# Build the systemd test images b24bot-test:<suite> used by Molecule and `make demo`.
#
#   scripts/test-images.sh [suite ...]        default: bookworm trixie
#
# - FROM debian:<suite>; when that cannot be found locally, in the cache or pulled, it is bootstrapped from
#   Debian's mirror (debootstrap --variant=minbase + docker import) and tagged debian:<suite>.
# - The host's extra CA files (/usr/local/share/ca-certificates/*.crt) go into the image (intercepting proxies).
# - Each image carries a label with the hash of its inputs (Dockerfile + CA files + suite); an image whose label
#   matches is left alone. Built images are saved (docker save | zstd) to $B24BOT_IMAGE_CACHE so the next run
#   (e.g. the next CI job on the same machine) loads them in seconds instead of rebuilding.
#
# Environment: B24BOT_IMAGE_CACHE (default /var/cache/b24bot-images; empty = no cache),
#              DEBIAN_MIRROR (default http://deb.debian.org/debian), B24BOT_IMAGE_REBUILD=1 forces a rebuild.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dockerfile="$here/images/Dockerfile"
cache="${B24BOT_IMAGE_CACHE-/var/cache/b24bot-images}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_dir=/usr/local/share/ca-certificates
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)

log() { printf '[test-images] %s\n' "$*" >&2; }
tmpdirs=()
cleanup() { ((${#tmpdirs[@]})) && rm -rf "${tmpdirs[@]}"; return 0; }
trap cleanup EXIT
t0=$SECONDS

if ! docker info >/dev/null 2>&1; then
  log "docker daemon not reachable (start dockerd first; .ci/run does)"
  exit 1
fi
[[ -n "$cache" ]] && mkdir -p "$cache"

# The CA files, sorted by name, for both the hash and the build context.
shopt -s nullglob
ca_files=("$ca_dir"/*.crt)
shopt -u nullglob

inputs_hash() { # $1 = suite
  {
    echo "suite=$1"
    sha256sum <"$dockerfile"
    for f in "${ca_files[@]}"; do
      basename "$f"
      sha256sum <"$f"
    done
  } | sha256sum | cut -c1-16
}

label_of() { # $1 = image; prints the inputs label or nothing
  docker image inspect -f '{{ index .Config.Labels "b24bot.inputs" }}' "$1" 2>/dev/null || true
}

load_cached() { # $1 = archive; true when loaded
  [[ -n "$cache" && -s "$1" ]] || return 1
  zstd -dc -q "$1" | docker load -q >/dev/null 2>&1
}

save_cached() { # $1 = image, $2 = archive, $3 = glob of stale archives to remove
  [[ -n "$cache" ]] || return 0
  local tmp="$2.tmp.$$"
  docker save "$1" | zstd -q -T0 -3 -o "$tmp" && mv -f "$tmp" "$2"
  local old
  for old in $3; do [[ "$old" == "$2" ]] || rm -f "$old"; done
}

ensure_base() { # $1 = suite: make debian:<suite> available
  local suite=$1 image="debian:$1" archive="$cache/debian-$1.tar.zst"
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  if load_cached "$archive"; then
    log "$image loaded from $archive"
    return 0
  fi
  if timeout 120 docker pull -q "$image" >/dev/null 2>&1; then
    log "$image pulled"
  else
    command -v debootstrap >/dev/null || { log "cannot pull $image and debootstrap is missing"; exit 1; }
    log "cannot pull $image: bootstrapping it from $mirror (about 30 s)"
    local root
    root="$(mktemp -d /var/tmp/b24bot-rootfs.XXXXXX)"
    tmpdirs+=("$root")
    if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
      tail -n 30 "$root.log" >&2
      log "debootstrap $suite failed (full log: $root.log)"
      exit 1
    fi
    rm -f "$root.log"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$image" >/dev/null
    rm -rf "$root"
    log "$image imported"
  fi
  save_cached "$image" "$archive" "$cache/debian-$suite.tar.zst"
}

build_one() { # $1 = suite
  local suite=$1 image="b24bot-test:$1" hash ts
  ts=$SECONDS
  hash="$(inputs_hash "$suite")"
  local archive="$cache/b24bot-test-$suite-$hash.tar.zst"

  if [[ "${B24BOT_IMAGE_REBUILD:-}" != 1 ]]; then
    if [[ "$(label_of "$image")" == "$hash" ]]; then
      log "$image up to date ($hash)"
      return 0
    fi
    if load_cached "$archive" && [[ "$(label_of "$image")" == "$hash" ]]; then
      log "$image loaded from cache ($hash, $((SECONDS - ts)) s)"
      return 0
    fi
  fi

  ensure_base "$suite"
  local ctx
  ctx="$(mktemp -d /var/tmp/b24bot-image-ctx.XXXXXX)"
  tmpdirs+=("$ctx")
  cp "$dockerfile" "$ctx/Dockerfile"
  mkdir "$ctx/ca"
  ((${#ca_files[@]})) && cp "${ca_files[@]}" "$ctx/ca/"
  log "building $image ($hash)"
  # The legacy builder is what docker 20.10 without buildx offers; silence the client's notice about it.
  if ! DOCKER_BUILDKIT=0 docker build -q --build-arg "SUITE=$suite" --label "b24bot.inputs=$hash" \
      -t "$image" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    log "building $image failed"
    exit 1
  fi
  rm -rf "$ctx"
  save_cached "$image" "$archive" "$cache/b24bot-test-$suite-*.tar.zst"
  log "$image built in $((SECONDS - ts)) s"
}

for suite in "${suites[@]}"; do
  build_one "$suite"
done
# Dangling layers of replaced images would pile up across many rebuilds.
docker image prune -f --filter label=b24bot.inputs >/dev/null 2>&1 || true
log "done in $((SECONDS - t0)) s: $(printf 'b24bot-test:%s ' "${suites[@]}")"
