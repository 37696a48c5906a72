#!/bin/sh
# The application's main loop: one job, then the hooks, every two seconds.
. /app/config.ini
n=0
while true; do
  n=$((n + 1))
  sh /app/job.sh "$n"
  for hook in /app/hooks/*.sh; do
    "$hook" "$n"
  done
  echo "cycle $n done"
  sleep "${INTERVAL:-2}"
done
