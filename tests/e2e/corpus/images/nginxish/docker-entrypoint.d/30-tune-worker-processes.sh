#!/bin/sh
# Like nginx's hook: size the workers from the CPUs the container may use.
set -e
ME=$(basename "$0")
cpus=$(sh -c 'grep -c ^processor /proc/cpuinfo')
echo "$ME: info: $cpus CPUs, worker_processes $cpus"
