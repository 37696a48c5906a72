#!/bin/sh
# Modelled on the official nginx image's entrypoint: run the hooks, then exec the server.
set -e
entrypoint_log() {
  if [ -z "${ENTRYPOINT_QUIET_LOGS:-}" ]; then
    echo "$@"
  fi
}
if [ "$1" = "httpd" ]; then
  if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print | read -r _; then
    entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
    entrypoint_log "$0: Looking for shell scripts in /docker-entrypoint.d/"
    find /docker-entrypoint.d/ -type f -print | sort | while read -r f; do
      case "$f" in
        *.envsh)
          if [ -x "$f" ]; then
            entrypoint_log "$0: Sourcing $f"
            . "$f"
          fi
          ;;
        *.sh)
          if [ -x "$f" ]; then
            entrypoint_log "$0: Launching $f"
            "$f"
          else
            entrypoint_log "$0: Ignoring $f, not executable"
          fi
          ;;
        *) entrypoint_log "$0: Ignoring $f" ;;
      esac
    done
    entrypoint_log "$0: Configuration complete; ready for start up"
  fi
fi
exec "$@"
