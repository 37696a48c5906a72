// SPDX-License-Identifier: GPL-2.0
/* known.h: execs and connects the container's image already knows are counted, not sent.
 *
 * User space (agent/sources/ebpf/known.py) learns, while an image's baseline learns, the exact
 * form of each exec (path, parent comm, argv hash) and established connect (family, address,
 * port) its containers make; once the image has learned, it writes them into rg_known_exec /
 * rg_known_conn under the image's slot and gives each of the image's cgroups that slot
 * (rg_known_slot). A monitored exec or connect that matches is counted in rg_known_hits
 * (cgroup, entry id) instead of travelling through the ring buffer; user space reads the
 * counts into the behaviour windows (so exec/connect counts, binaries and peers stay right).
 * Never known, whatever user space writes: an exec with truncated argv, a path longer than
 * RG_KNOWN_PATH - 1 bytes, a deleted executable; a failed connect. Rule-relevant forms
 * (writable paths, shells and interpreters) are never written by user space.
 *
 * Room: user space prunes the entries of images with no container left (after a grace
 * period), reuses their slots and deletes the hits of gone cgroups after their final read. When
 * rg_known_hits still has no room for a new (cgroup, entry) key, rg_known_count takes the
 * cgroup's slot away (its later execs and connects are sent, not counted), adds 1 to
 * rg_known_full and returns nonzero: the caller then sends that event too. User space gives
 * the slot back once the hits map has room again.
 */
#ifndef RG_KNOWN_H
#define RG_KNOWN_H

#ifndef RG_KNOWN_MAX
#define RG_KNOWN_MAX 16384
#endif
#define RG_KNOWN_PATH 128
#ifndef RG_KNOWN_HITS
#define RG_KNOWN_HITS 65536
#endif
#define RG_FNV_OFFSET 14695981039346656037ULL
#define RG_FNV_PRIME 1099511628211ULL

struct rg_known_exec_key {
    u32 slot;
    u32 pad;
    u64 argv_hash;      /* rg_argv_hash() of the NUL-separated argv bytes */
    char pcomm[16];
    char path[RG_KNOWN_PATH];
};

struct rg_known_conn_key {
    u32 slot;
    u16 family;
    u16 port;           /* host byte order */
    u8 addr[16];
};

struct rg_known_hit {
    u64 cgroup_id;
    u32 id;             /* the entry's id (user space's table) */
    u32 pad;
};

BPF_HASH(rg_known_slot, u64, u32, RG_MAX_CGROUPS);
BPF_HASH(rg_known_exec, struct rg_known_exec_key, u32, RG_KNOWN_MAX);
BPF_HASH(rg_known_conn, struct rg_known_conn_key, u32, RG_KNOWN_MAX);
BPF_PERCPU_HASH(rg_known_hits, struct rg_known_hit, u64, RG_KNOWN_HITS);
BPF_PERCPU_ARRAY(rg_known_scratch, struct rg_known_exec_key, 1);
BPF_PERCPU_ARRAY(rg_known_full, u64, 1);  /* hits refused: rg_known_hits had no room */

static __always_inline u32 rg_known_slot_of(u64 cg)
{
    u32 *s = rg_known_slot.lookup(&cg);
    return s ? *s : 0;
}

/* Count a hit of entry id for the cgroup: 0 when counted. Nonzero when rg_known_hits had no
 * room for it: the cgroup loses its slot until user space gives it back, the refusal is
 * counted in rg_known_full, and the caller must send the event (it was counted nowhere). */
static __always_inline int rg_known_count(u64 cg, u32 id)
{
    struct rg_known_hit k = {.cgroup_id = cg, .id = id};
    u64 *n = rg_known_hits.lookup(&k);
    if (n) {
        *n += 1;
        return 0;
    }
    u64 one = 1;
    if (!rg_known_hits.update(&k, &one))
        return 0;
    rg_known_slot.delete(&cg);
    int zero = 0;
    u64 *full = rg_known_full.lookup(&zero);
    if (full)
        *full += 1;
    return -1;
}

#endif /* RG_KNOWN_H */
