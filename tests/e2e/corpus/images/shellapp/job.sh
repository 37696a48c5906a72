#!/bin/sh
# One unit of work: checksum the inputs, keep a small state file and a log line.
. /app/config.ini
sum=$(sha1sum /app/config.ini | cut -d' ' -f1)
count=$(ls /app | wc -l)
# the API token ships base64-encoded in the config (decoded, never executed)
echo "$TOKEN_B64" | base64 -d > /var/lib/app/token
echo "$(date -u +%FT%TZ) job $1 files=$count sum=$sum" >> /var/log/app/job.log
echo "$1" > /var/lib/app/last
if [ "$(($1 % 5))" = 0 ]; then
  sh -c "tail -n 20 /var/log/app/job.log > /var/lib/app/recent"
  # a backup that keeps the original's timestamps (explicit utimensat, like tar x or cp -p)
  cp -p /app/config.ini /var/lib/app/config.ini.bak
fi
