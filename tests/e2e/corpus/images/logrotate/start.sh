#!/bin/sh
# crond in the background for the rotation, the app in the foreground.
crond -b -l 8 -L /dev/null -c /etc/crontabs
exec sh /app/app.sh
