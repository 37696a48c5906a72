# SPDX-License-Identifier: Apache-2.0
# riskguard-agent image: Debian 12 + bcc from Debian + the agent in a venv + the probe sources.
# Built by scripts/build-image.sh, which prepares the build context (the wheels of the agent and
# its dependencies, so the build needs no Python index) and picks a LOCAL Debian base image:
# riskguard-test/debian, imported by scripts/setup-host.sh from a debootstrap rootfs (no registry).
# Only apt talks to the network here (deb.debian.org).
#
# The image expects the node's kernel headers at /lib/modules and /usr/src (mounted from the host,
# as config/kubernetes/ does): bcc compiles the probes against the running kernel's headers.
ARG BASE_IMAGE=riskguard-test/debian

# --- stage 1: the venv, from the wheels in the build context (no index) ----------------------
FROM ${BASE_IMAGE} AS venv
ARG VERSION=0.0.0
ARG EXTRAS=kubernetes
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/riskguard/venv \
 && /opt/riskguard/venv/bin/pip install -q --no-cache-dir --no-index --find-links /tmp/wheels \
      "riskguard-agent[${EXTRAS}]==${VERSION}" \
 && /opt/riskguard/venv/bin/pip uninstall -q -y setuptools pip \
 && find /opt/riskguard/venv -type d -name tests -prune -exec rm -rf {} +
# ^ the libraries' own test suites (scipy, sklearn, numpy …: ~65 MB) are never imported, nor are
#   the setuptools the venv was seeded with and pip.

# --- stage 2: the image (the wheels stay behind in stage 1) ---------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=0.0.0
ARG TREE_HASH=unknown
ARG EXTRAS=kubernetes
LABEL org.opencontainers.image.title="riskguard-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.riskguard.tree-hash="${TREE_HASH}"

# bcc (python3-bpfcc, libbpfcc and its LLVM), tcpdump/libpcap for capture evidence, nftables and
# audit bindings for quarantine and the audit source, iproute2 for netns work, secilc to check the
# per-container SELinux policies the agent writes.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-bpfcc bpfcc-tools \
      tcpdump libpcap0.8 nftables python3-nftables python3-audit iproute2 secilc ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

COPY --from=venv /opt/riskguard/venv /opt/riskguard/venv
COPY setup-host.sh /tmp/setup-host.sh
# Debian's bcc, libauparse and libnftables bindings, exposed to the venv one by one.
RUN bash /tmp/setup-host.sh --bindings-only /opt/riskguard/venv && rm /tmp/setup-host.sh

# Grok patterns, rules, SELinux templates and the eBPF sources the agent reads at run time.
COPY share /opt/riskguard/share
COPY agent.yaml /etc/riskguard/agent.yaml
RUN chmod 0700 /etc/riskguard && chmod 0600 /etc/riskguard/agent.yaml

ENV RISKGUARD_DATA_DIR=/opt/riskguard/share \
    PATH=/opt/riskguard/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["riskguard-agent"]
CMD ["run", "--config", "/etc/riskguard/agent.yaml"]
