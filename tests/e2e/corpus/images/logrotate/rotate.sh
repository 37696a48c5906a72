#!/bin/sh
# Rotate /var/log/app.log, keep three compressed generations.
cd /var/log || exit 1
[ -s app.log ] || exit 0
rm -f app.log.3.gz
if [ -f app.log.2.gz ]; then mv app.log.2.gz app.log.3.gz; fi
if [ -f app.log.1.gz ]; then mv app.log.1.gz app.log.2.gz; fi
mv app.log app.log.1
touch app.log
gzip -f app.log.1
echo "rotated /var/log/app.log at $(date -u +%FT%TZ)" > /proc/1/fd/1
