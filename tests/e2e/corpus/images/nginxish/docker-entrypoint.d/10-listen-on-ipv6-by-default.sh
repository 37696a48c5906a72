#!/bin/sh
# Like nginx's hook: decide the listen address, through sh -c as the original's helpers do.
set -e
ME=$(basename "$0")
if sh -c 'test -f /proc/net/if_inet6'; then
  echo "$ME: info: IPv6 available"
else
  echo "$ME: info: IPv6 not available"
fi
