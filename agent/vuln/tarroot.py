# SPDX-License-Identifier: Apache-2.0
"""``TarImageRoot``: the merged filesystem of a ``docker save`` tarball, read without extracting.

Layers are applied in order into an in-memory tree (a node per path plus a children index per
directory). A whiteout (``.wh.<name>``) or an opaque marker (``.wh..wh..opq``) removes a subtree by
walking the children index, so applying a layer costs time linear in its members plus the
entries it removes: 40K whiteouts no longer rescan every known path (the old prefix scan was
quadratic). Hostile archives are bounded: at most ``MAX_MEMBERS`` entries over all layers and
``MAX_MANIFEST_BYTES`` of manifest/config JSON; beyond that the image is refused with a
``RootError``.
"""

from __future__ import annotations

import os
import posixpath
import tarfile

from agent.vuln.limits import MAX_JSON_DEPTH, JsonLimitError, loads_bounded
from agent.vuln.rootfs import Node, RootError, VirtualRoot

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_MEMBERS = 2_000_000  # entries over every layer of one image
MAX_MANIFEST_BYTES = 16 << 20  # manifest.json and the image config


class TarImageRoot(VirtualRoot):
    """The merged filesystem of a ``docker save`` tarball (``manifest.json`` + layer tars)."""

    def __init__(self, path: str | os.PathLike[str], image: str = "") -> None:
        self.label = str(path)
        try:
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed in close()
        except (tarfile.TarError, OSError) as exc:
            raise RootError(f"{path}: not a readable tar archive ({exc})") from None
        self._nodes: dict[str, Node] = {"/": Node("dir")}
        self._kids: dict[str, set[str]] = {"/": set()}
        self._layers: list[tarfile.TarFile] = []
        self._members = 0
        self.config: dict[str, object] = {}
        try:
            self._load(image)
        except BaseException:
            self.close()
            raise

    def _load(self, image: str) -> None:
        try:
            manifest = loads_bounded(self._member_bytes("manifest.json"), max_depth=MAX_JSON_DEPTH)
        except (KeyError, ValueError, JsonLimitError, tarfile.TarError) as exc:
            raise RootError(f"{self.label}: not a docker save archive (manifest.json: {exc})") from None
        if not (isinstance(manifest, list) and manifest and all(isinstance(m, dict) for m in manifest)):
            raise RootError(f"{self.label}: manifest.json is not a list of image entries")
        entry = manifest[0]
        if image:
            for m in manifest:
                if image in (m.get("RepoTags") or []):
                    entry = m
        try:
            config = loads_bounded(self._member_bytes(str(entry["Config"])), max_depth=MAX_JSON_DEPTH)
            self.config = config if isinstance(config, dict) else {}
        except (KeyError, ValueError, JsonLimitError, tarfile.TarError):
            self.config = {}
        self.image_id = "sha256:" + posixpath.basename(str(entry.get("Config", ""))).removesuffix(".json")
        layers = entry.get("Layers")
        if not isinstance(layers, list):
            raise RootError(f"{self.label}: manifest entry without a Layers list")
        for layer in layers:
            self._apply_layer(str(layer))

    def _member_bytes(self, name: str) -> bytes:
        info = self._tar.getmember(name)
        if info.size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{name} is larger than {MAX_MANIFEST_BYTES} bytes")
        f = self._tar.extractfile(info)
        if f is None:
            raise KeyError(name)
        return f.read(MAX_MANIFEST_BYTES + 1)

    def _apply_layer(self, name: str) -> None:
        try:
            data = self._tar.extractfile(name)
        except (KeyError, tarfile.TarError):
            data = None
        if data is None:
            raise RootError(f"layer {name} missing from the archive")
        # Only the index is kept in memory; file bytes are read lazily from the (seekable) layer
        # member of the archive when a reader asks for them.
        try:
            layer = tarfile.open(fileobj=data, mode="r:*")  # noqa: SIM115 - kept open for lazy reads
        except tarfile.TarError as exc:
            raise RootError(f"layer {name}: not a tar archive ({exc})") from None
        self._layers.append(layer)
        try:
            for m in layer:
                self._members += 1
                if self._members > MAX_MEMBERS:
                    raise RootError(f"{self.label}: more than {MAX_MEMBERS} entries in its layers")
                self._apply_member(layer, m)
        except tarfile.TarError as exc:
            raise RootError(f"layer {name}: {exc}") from None

    def _apply_member(self, layer: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        path = _member_path(m.name)
        if path is None:
            return  # a hostile member name: there is nothing above the root
        parent, base = posixpath.split(path)
        if base == OPAQUE_MARKER:
            for kid in list(self._kids.get(parent, ())):
                self._drop(posixpath.join(parent, kid))
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._drop(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]))
            return
        if m.isdir():
            node = Node("dir")
        elif m.issym():
            node = Node("symlink", target=m.linkname)
        elif m.islnk():
            target = _member_path(m.linkname)
            node = self._nodes.get(target, Node("other")) if target else Node("other")
        elif m.isreg():
            node = Node("file", ref=(layer, m))
        else:
            node = Node("other")
        self._put(path, node)

    def _put(self, path: str, node: Node) -> None:
        if path == "/":
            return
        missing = []
        parent = posixpath.dirname(path)
        while parent not in self._nodes and parent != "/":  # missing parents, iteratively
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for p in reversed(missing):
            self._set(p, Node("dir"))
        old = self._nodes.get(path)
        if old is not None and old.kind == "dir" and node.kind != "dir":
            self._drop(path)
        self._set(path, node)

    def _set(self, path: str, node: Node) -> None:
        parent, base = posixpath.split(path)
        self._nodes[path] = node
        self._kids.setdefault(parent, set()).add(base)
        if node.kind == "dir":
            self._kids.setdefault(path, set())

    def _drop(self, path: str) -> None:
        """Remove ``path`` and everything below it (a walk of its subtree, nothing else)."""
        stack = [path]
        while stack:
            p = stack.pop()
            self._nodes.pop(p, None)
            stack.extend(posixpath.join(p, kid) for kid in self._kids.pop(p, ()))
        parent, base = posixpath.split(path)
        kids = self._kids.get(parent)
        if kids is not None:
            kids.discard(base)

    def _lookup(self, path: str) -> Node | None:
        return self._nodes.get(path)

    def _children(self, path: str) -> list[str]:
        return list(self._kids.get(path, ()))

    def _read(self, node: Node, limit: int) -> bytes:
        ref = node.ref
        assert isinstance(ref, tuple)
        layer, member = ref
        assert isinstance(layer, tarfile.TarFile) and isinstance(member, tarfile.TarInfo)
        if member.size > limit:
            raise RootError(f"{member.name}: larger than {limit} bytes")
        try:
            f = layer.extractfile(member)
            if f is None:
                raise RootError(f"{member.name}: unreadable")
            return f.read(limit + 1)
        except (tarfile.TarError, OSError) as exc:
            raise RootError(f"{member.name}: {exc}") from None

    def close(self) -> None:
        for layer in self._layers:
            layer.close()
        self._tar.close()


def _member_path(name: str) -> str | None:
    """A tar member name as a normalised absolute path, ``None`` if it climbs above the root.

    Leading slashes are dropped first: POSIX ``normpath`` keeps a leading ``//``, whose dirname
    is itself (a member named ``/abs`` once looped the parent walk forever).
    """
    depth = 0
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return None
            parts.pop()
            continue
        depth += 1
        parts.append(part)
    return "/" + "/".join(parts)
