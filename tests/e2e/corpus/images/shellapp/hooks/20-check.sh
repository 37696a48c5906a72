#!/bin/sh
# Check the state the job left, through a sub-shell as many hook scripts do.
sh -c 'test -s /var/lib/app/last' || echo "check failed" >&2
[ -n "$(find /var/lib/app -name last -newer /app/config.ini)" ] || echo "stale state" >&2
