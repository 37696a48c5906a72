#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs riskguard-agent as a systemd service (called by `make install`, after setup-host.sh):
#   /opt/riskguard/venv            the agent and its Python dependencies (not editable)
#   /opt/riskguard/docs            the operator docs
#   /opt/riskguard/share           config/ and probes/: data the agent reads at run time
#   /etc/riskguard/agent.yaml      the documented default config (kept if it already exists)
#   /etc/systemd/system/riskguard-agent.service
# Then: systemctl enable --now riskguard-agent
#   PREFIX=/usr/local/riskguard ETC=/etc/rg scripts/install.sh   another prefix / config dir
#   scripts/install.sh --render-unit                             print the unit for PREFIX/ETC
# The unit in systemd/ is written for /opt/riskguard and /etc/riskguard; the installed copy
# names the real PREFIX and ETC.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/opt/riskguard}
ETC=${ETC:-/etc/riskguard}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
log() { printf 'install: %s\n' "$*" >&2; }

render_unit() {
  local prefix=${PREFIX%/} etc=${ETC%/}
  case "$prefix$etc" in *'|'*|*'&'*|*'\'*) log "PREFIX/ETC may not contain | & or \\"; exit 1 ;; esac
  sed -e "s|/opt/riskguard|$prefix|g" -e "s|/etc/riskguard|$etc|g" systemd/riskguard-agent.service
}
if [ "${1:-}" = "--render-unit" ]; then render_unit; exit 0; fi

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

mkdir -p "$PREFIX" "$ETC"
[ -x "$PREFIX/venv/bin/python" ] || /usr/bin/python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip >/dev/null
"$PREFIX/venv/bin/pip" install -q ".${EXTRAS:+[$EXTRAS]}"   # EXTRAS=kubernetes,gmp for the integrations
# The libraries' own test suites (numpy, scipy, scikit-learn: about 65 MB) are never imported, nor
# is the setuptools that python3 -m venv seeds (9 MB; pip builds in isolated environments); the
# image drops them the same way (Dockerfile).
find "$PREFIX/venv/lib" -type d -name tests -path '*/site-packages/*' -prune -exec rm -rf {} +
"$PREFIX/venv/bin/pip" uninstall -q -y setuptools 2>/dev/null || true
# The Debian-only bindings, exposed one by one exactly as in setup-host.sh.
bash scripts/setup-host.sh --bindings-only "$PREFIX/venv"

rm -rf "$PREFIX/docs"; cp -r docs "$PREFIX/docs"
# Data the agent reads at run time (grok patterns, rules, SELinux templates, eBPF sources); the
# unit points RISKGUARD_DATA_DIR here.
rm -rf "$PREFIX/share"; mkdir -p "$PREFIX/share"; cp -r config probes "$PREFIX/share/"
if [ ! -e "$ETC/agent.yaml" ]; then
  install -m 0600 config/agent.yaml "$ETC/agent.yaml"
  log "wrote $ETC/agent.yaml"
else
  log "kept existing $ETC/agent.yaml"
fi
chmod 0700 "$ETC"
render_unit > "$UNIT_DIR/riskguard-agent.service.tmp"
chmod 0644 "$UNIT_DIR/riskguard-agent.service.tmp"
mv "$UNIT_DIR/riskguard-agent.service.tmp" "$UNIT_DIR/riskguard-agent.service"
"$PREFIX/venv/bin/riskguard-agent" check-config --config "$ETC/agent.yaml"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  log "installed; start it with: systemctl enable --now riskguard-agent"
else
  log "installed; systemd is not PID 1 here, run it in the foreground: $PREFIX/venv/bin/riskguard-agent run"
fi
