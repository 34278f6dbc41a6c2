#!/usr/bin/env bash
# Make this machine able to run `make test` and `make demo`: the host tools they need and exactly one running
# dockerd. Called by the Makefile (venv, images) and by .ci/run, so a fresh Debian/Ubuntu machine needs nothing
# typed beforehand. Idempotent and quick when everything is there already.
#
#   scripts/bootstrap.sh            host tools + a running docker daemon
#   scripts/bootstrap.sh --no-docker  host tools for lint and pytest only (python3-venv, make, chromium and its
#                                     driver for the browser tests; no docker daemon needed)
#
# Where it cannot install (not root, no apt-get) it prints the exact command to run and exits 1.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/sbin:/sbin"
log() { printf '[bootstrap] %s\n' "$*" >&2; }
docker_wanted=1
[[ "${1:-}" == --no-docker ]] && docker_wanted=0

# Debian package -> the command (or Python module) that shows it is present.
need=()
command -v make >/dev/null || need+=(make)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The viewer's browser tests drive Debian's chromium through its own driver (no download at run time).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if ((docker_wanted)); then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v zstd >/dev/null || need+=(zstd)
fi

if ((${#need[@]})); then
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    log "missing: ${need[*]}. Install them, then run make again:"
    printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n' "${need[*]}" >&2
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
((docker_wanted)) || exit 0

# One dockerd only: wait for one that is already starting (apt's postinst may have started it via systemd),
# then prefer systemd, and only then start it ourselves.
docker_up() { docker info >/dev/null 2>&1; }
wait_docker() { for _ in $(seq "$1"); do docker_up && return 0; sleep 1; done; return 1; }
docker_up && exit 0
if [[ $EUID -ne 0 ]]; then
  log "the docker daemon is not reachable. Start it (or add yourself to the docker group), then run make again:"
  printf '  sudo systemctl start docker\n' >&2
  exit 1
fi
dockerd_log=/var/log/b24bot-dockerd.log
if pgrep -x dockerd >/dev/null; then
  log "dockerd is starting; waiting for it"
elif [[ -d /run/systemd/system ]] && systemctl start docker 2>/dev/null; then
  log "started docker.service"
else
  log "starting dockerd (log: $dockerd_log)"
  nohup /usr/sbin/dockerd >>"$dockerd_log" 2>&1 &
fi
wait_docker 60 && exit 0
log "the docker daemon did not come up"
tail -n 30 "$dockerd_log" >&2 2>/dev/null || true
exit 1
