#!/bin/sh
# The web server on loopback, and a worker that requests it and logs.
httpd -p 127.0.0.1:8080 -h /var/www
while true; do
  if wget -q -O /dev/null http://127.0.0.1:8080/; then
    echo "$(date -u +%FT%TZ) GET / 200" >> /var/log/access.log
  fi
  echo "$(date -u +%FT%TZ) worker tick" >> /var/log/app.log
  sleep 2
done
