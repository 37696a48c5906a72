#!/bin/sh
# The minutely job: a small report of the data directory.
du -s /var/lib/app > /var/lib/app/usage
echo "cron job ran at $(date -u +%FT%TZ): $(cat /var/lib/app/usage)"
