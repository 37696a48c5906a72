#!/bin/sh
# Install the bundled package from the local file (no network), then run its tool.
set -e
cd /opt/pkgs
apt-get install -y -q --no-install-recommends ./rg-hello.deb
while true; do
  rg-hello
  sleep 5
done
