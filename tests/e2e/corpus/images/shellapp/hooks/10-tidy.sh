#!/bin/sh
# Keep the job log short.
lines=$(wc -l < /var/log/app/job.log)
if [ "$lines" -gt 200 ]; then
  tail -n 100 /var/log/app/job.log > /var/log/app/job.log.tmp && mv /var/log/app/job.log.tmp /var/log/app/job.log
fi
