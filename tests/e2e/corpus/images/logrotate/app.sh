#!/bin/sh
# The application: one log line a second.
n=0
while true; do
  n=$((n + 1))
  echo "$(date -u +%FT%TZ) request $n served" >> /var/log/app.log
  sleep 1
done
