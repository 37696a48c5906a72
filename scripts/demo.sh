#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The riskguard-agent demo (as root): sets the host up, then runs scripts/demo.py, which builds a
# small host of real containers from local images, starts the agent in enforce mode, lets it
# learn, plays six attacks inside one container, shows the findings and isolations, and releases
# the container after each. Everything it made is removed at the end (--keep leaves it running).
#
#   scripts/demo.sh [--learn-seconds 60] [--workdir /tmp/riskguard-demo] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
exec .venv/bin/python scripts/demo.py "$@"
