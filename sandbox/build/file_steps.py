"""The instructions that write files without running a process: COPY, ADD and WORKDIR.

The image so far is mounted as an overlay over an empty upper directory in
a scratch directory, the files are written into the merged view
(destinations resolved inside the image, symlinks never followed to the
host), and the upper directory is the layer.  It holds exactly the
directories a copy touches, as Docker's commit of its build container does,
which is why the layers list the same files as Docker's.  With the vfs
storage driver the image so far is copied instead and the copy compared with
it, which gives the same layer (see :mod:`sandbox.image.vfs`).

Sources are looked up twice: when the step is prepared (to check them and
hash them for the cache key) and again, from the root's descriptor, when a
cache miss copies them; neither time can a symlink or a ``..`` lead out of
the context or the stage (see :mod:`.context`), and a file that vanished or
changed into a link to the outside in between fails the step, with nothing
tagged and nothing left mounted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import BuildError, ImageNotFound, SandboxError, StoreFull
from . import copyfs, words
from .cache import digest_of
from .context import Source, SourceTree, fd_path
from .parser import Heredoc, Instruction
from ..plain import Record
from .stages import copy_args
from .step import Prepared, State, StepBase


class _Copy(Record):
    """One COPY or ADD, expanded and checked: what its step writes when the cache misses."""

    _fields = ("keyword", "dest", "chown", "chmod", "from_ref", "plain", "tree_chain", "resolved", "contents",
               "downloads", "count")

    def __init__(self, keyword: str, dest: str, chown: str | None, chmod: int | None, from_ref: str | None,
                 plain: list[str], tree_chain: list[str] | None, resolved: list[Source],
                 contents: list[tuple[str, str]], downloads: list[tuple[str, str, str]], count: int) -> None:
        self.keyword = keyword
        self.dest = dest
        self.chown = chown
        self.chmod = chmod
        self.from_ref = from_ref
        self.plain = plain              # the sources given by path
        self.tree_chain = tree_chain    # --from: the layers they are in; None: the context
        self.resolved = resolved        # from the context: the sources found
        self.contents = contents        # heredocs: (name, the text the file will hold)
        self.downloads = downloads      # ADD URL: (url, downloaded file, digest)
        self.count = count              # how many things go to dest (more than one: dest is a directory)


class FileSteps(StepBase):
    """The ``WORKDIR``, ``COPY`` and ``ADD`` handlers."""

    def _do_workdir(self, ins: Instruction, state: State) -> Prepared:
        path = self._expand(ins, ins.rest.strip(), state.expansion_env())
        workdir = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        if workdir.startswith("//"):
            workdir = workdir[1:]

        def run() -> tuple[dict[str, Any], Any]:
            state.config["WorkingDir"] = workdir
            with self._rootfs(state) as root:
                # made inside the image: a symlink /app -> /etc there is the image's /etc
                with self._writing(ins, root.merged, workdir) as root_fd:
                    os.close(copyfs.make_dirs(root_fd, workdir, 0, 0))
                blob = self._commit(root)
            return {"created_by": "/bin/sh -c #(nop) WORKDIR " + workdir}, blob
        return Prepared("", workdir, args=self._used_args(ins, state, ins.rest), run=run)

    # ------------------------------------------------------------------ COPY and ADD

    def _do_copy(self, ins: Instruction, state: State) -> Prepared:
        return self._copy_or_add(ins, state)

    def _do_add(self, ins: Instruction, state: State) -> Prepared:
        return self._copy_or_add(ins, state)

    def _copy_or_add(self, ins: Instruction, state: State) -> Prepared:
        """COPY and ADD: from the context, a stage or an image (``--from``), heredocs, and (ADD) URLs and archives.

        Everything that can fail is checked here, before the cache is asked;
        ``run`` then writes into the image so far (see :meth:`_copy_run`).
        """
        kw = ins.keyword
        env = state.expansion_env()
        raw_sources, raw_dest = copy_args(ins)
        dest = self._copy_destination(ins, raw_dest, env, state.config.get("WorkingDir") or "/")
        chown, chmod, from_ref = self._copy_flags(ins, env)
        plain, docs, urls = self._copy_sources(ins, raw_sources, env)
        tree_chain, source_id = self._copy_origin(ins, state, from_ref)
        files: dict[str, str] = {}
        resolved: list[Source] = []
        if tree_chain is None and plain:
            resolved, files = self._context_sources(ins, plain)
        elif tree_chain is not None:
            files = {f"{source_id}:{p}": "" for p in plain}
        contents = self._heredoc_contents(ins, docs, env)
        for name, content in contents:
            files[f"<<{name}"] = digest_of(content)
        downloads = [self._download(ins, url) for url in urls]
        for url, _path, digest in downloads:
            files[url] = digest
        count = (len(resolved) if tree_chain is None else len(plain)) + len(docs) + len(downloads)
        if tree_chain is None:
            try:
                copyfs.check_many(count, dest, kw)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None
        files_digest = digest_of(sorted(files.items())) if files else None
        kind = "file" if count == 1 and not (resolved and resolved[0].is_dir) else ("dir" if count == 1 else "multi")
        created_by = f"/bin/sh -c #(nop) {kw} {kind}:{(files_digest or '')[:64]} in {dest} "
        job = _Copy(kw, dest, chown, chmod, from_ref, plain, tree_chain, resolved, contents, downloads, count)

        def run() -> tuple[dict[str, Any], Any]:
            return {"created_by": created_by}, self._copy_run(ins, state, job)
        return Prepared("", [kw, dest, chown, chmod, source_id, sorted(plain), urls],
                        files=files or None, files_digest=files_digest,
                        args=self._used_args(ins, state, ins.rest + " " + " ".join(
                            v or "" for v in ins.flags.values())), run=run)

    def _copy_destination(self, ins: Instruction, raw_dest: str, env: dict[str, str], workdir: str) -> str:
        """The destination, expanded and made absolute from WORKDIR; a trailing slash (a directory) stays."""
        dest = self._expand(ins, raw_dest, env)
        if not dest.startswith("/"):
            slash = dest.endswith("/")
            dest = posixpath.normpath(posixpath.join("/", workdir, dest))
            dest = "/" + dest.lstrip("/")
            if slash and dest != "/":
                dest += "/"
        return dest

    def _copy_flags(self, ins: Instruction, env: dict[str, str]) -> tuple[str | None, int | None, str | None]:
        """``--chown``, ``--chmod`` (octal, checked) and ``--from``, expanded."""
        flags = {k: v for k, v in ins.flags.items() if v}
        chown = self._expand(ins, flags["chown"], env) if "chown" in flags else None
        chmod_text = self._expand(ins, flags["chmod"], env) if "chmod" in flags else None
        chmod = None
        if chmod_text is not None:
            if not re.fullmatch(r"[0-7]{3,4}", chmod_text):
                raise ins.error(f"{ins.keyword} --chmod={chmod_text}: expected an octal mode such as 755 or 0644")
            chmod = int(chmod_text, 8)
        from_ref = self._expand(ins, flags["from"], env) if "from" in flags else None
        return chown, chmod, from_ref

    def _copy_sources(self, ins: Instruction, raw_sources: list[str], env: dict[str, str]
                      ) -> tuple[list[str], list[Heredoc], list[str]]:
        """The sources, sorted into paths, heredocs (``<<EOF``) and, for ADD, URLs."""
        heredocs = {f"<<{'-' if h.chomp else ''}{q}{h.name}{q}": h for h in ins.heredocs for q in ("", '"', "'")}
        plain: list[str] = []
        docs = []
        urls = []
        for word in raw_sources:
            if word in heredocs:
                docs.append(heredocs[word])
            else:
                src = self._expand(ins, word, env)
                if ins.keyword == "ADD" and re.match(r"^[a-z][a-z0-9+.-]*://", src, re.I):
                    urls.append(src)
                else:
                    plain.append(src)
        return plain, docs, urls

    def _copy_origin(self, ins: Instruction, state: State, from_ref: str | None) -> tuple[list[str] | None, str]:
        """Where the sources come from: (None, "context"), or a stage's or an image's layers and its id."""
        if from_ref is None:
            return None, "context"
        assert self.plan is not None
        stage = self.plan.stage(from_ref)
        if stage is not None and stage.index != state.stage.index:
            src_state = self._built(stage)
            return src_state.chain_ids, "stage:" + digest_of([l.diff_id for l in src_state.layers])
        if stage is not None:
            raise ins.error(f"COPY --from={from_ref}: a stage cannot copy from itself")
        try:
            img = self.images.get(from_ref)
        except ImageNotFound:
            raise self._error(ins, f"COPY --from={from_ref}: no stage and no local image by that name",
                              hint="name an earlier stage (AS NAME), a stage number, or a local image")
        with self.store.transaction():
            self.images.unpack(img.diff_ids, [l.digest for l in img.layers])
        return img.chain_ids, "image:" + img.id

    def _context_sources(self, ins: Instruction, plain: list[str]) -> tuple[list[Source], dict[str, str]]:
        """The sources found in the context (``.dockerignore`` applied), and their digests for the cache key."""
        if self.context is None:
            raise self._error(ins, f"{ins.keyword} needs a build context, but the Dockerfile came without one",
                              hint="build with a context directory (`sandbox build -f - DIR`)")
        resolved: list[Source] = []
        with self._context_tree() as tree:
            try:
                for src in plain:
                    resolved += tree.resolve(src, ins=ins.keyword)
                _, files = tree.digest(resolved)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None
        return resolved, files

    def _heredoc_contents(self, ins: Instruction, docs: list[Heredoc], env: dict[str, str]) -> list[tuple[str, str]]:
        """(name, the text the file will hold) for each heredoc source, expanded unless quoted."""
        contents: list[tuple[str, str]] = []
        for doc in docs:
            content = doc.content
            if doc.expand:
                try:
                    content = words.expand_heredoc(content, env, self._escape)
                except words.SubstitutionError as e:
                    raise ins.error(f"heredoc <<{doc.name}: {e}") from None
            contents.append((doc.name, content))
        return contents

    def _copy_run(self, ins: Instruction, state: State, job: _Copy) -> Any:
        """Write the copy into the image so far; the layer blob (None when nothing changed)."""
        with self._rootfs(state) as root:
            uid, gid = self._owner(ins, str(root.merged), job.chown)
            with self._writing(ins, root.merged, job.dest) as root_fd:
                if job.tree_chain is not None:
                    self._copy_from_layers(ins, job, job.tree_chain, root_fd, uid, gid)
                elif job.resolved:
                    with self._context_tree() as tree:
                        self._place(ins, tree, job.resolved, root_fd, job.dest, uid, gid, job.chmod, job.count > 1)
                mode = job.chmod if job.chmod is not None else 0o644
                for name, content in job.contents:
                    self._write_file(root_fd, job, name, content.encode(), uid, gid, mode)
                for url, path, _ in job.downloads:
                    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
                    self._write_file(root_fd, job, name, Path(path).read_bytes(), uid, gid,
                                     job.chmod if job.chmod is not None else 0o600)
            return self._commit(root)

    def _write_file(self, root_fd: int, job: _Copy, name: str, data: bytes, uid: int, gid: int, mode: int) -> None:
        parent, at = copyfs.target(root_fd, job.dest, name, job.count > 1, uid, gid)
        try:
            copyfs.write_content(parent, at, data, uid, gid, mode)
        finally:
            os.close(parent)

    @contextlib.contextmanager
    def _writing(self, ins: Instruction, merged: Path, dest: str) -> Iterator[int]:
        """The image's root as a descriptor for writing into; an OSError on the way is the step's BuildError."""
        root_fd = copyfs.open_root(merged)
        try:
            yield root_fd
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"what {ins.keyword} copies into {dest}", str(self.store.root)) from None
            what = f" {e.filename}" if isinstance(e.filename, str) and not e.filename.startswith("/proc/") else ""
            hint = ("a symlink in the image points (through others) to itself" if e.errno == errno.ELOOP
                    else "is a source changing while the build copies it?")
            raise self._error(ins, f"{ins.keyword} into {dest}:{what} {e.strerror or e}", hint=hint) from None
        finally:
            os.close(root_fd)

    def _copy_from_layers(self, ins: Instruction, job: _Copy, chain: list[str], root_fd: int, uid: int,
                          gid: int) -> None:
        """``--from``: resolve the sources in the stage's or image's layers, mounted read-only, and place them.

        Resolved inside that root file system: an image's ``/etc/x -> /../../etc/shadow`` is its own
        ``/etc/shadow``, if it has one.
        """
        with self._readonly(chain) as view, SourceTree(view, what=f"--from={job.from_ref}", shown="") as tree:
            srcs: list[Source] = []
            try:
                for src in job.plain:
                    srcs += tree.resolve(src, ins=job.keyword)
                copyfs.check_many(len(srcs) + len(job.contents), job.dest, job.keyword)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None
            self._place(ins, tree, srcs, root_fd, job.dest, uid, gid, job.chmod, len(srcs) > 1)

    def _place(self, ins: Instruction, tree: SourceTree, sources: list[Source], root_fd: int, dest: str,
               uid: int, gid: int, chmod: int | None, many: bool) -> None:
        """Copy each source, opened again from the tree's root, to its place in the image."""
        for src in sources:
            try:
                with tree.opened(src, ins=ins.keyword) as (fd, st, real):
                    self._place_one(ins, tree, src, fd, st, real, root_fd, dest, uid, gid, chmod, many)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None

    def _place_one(self, ins: Instruction, tree: SourceTree, src: Source, fd: int, st: os.stat_result, real: str,
                   root_fd: int, dest: str, uid: int, gid: int, chmod: int | None, many: bool) -> None:
        from ..image import tarlayer
        if stat.S_ISDIR(st.st_mode):
            copyfs.copy_tree(root_fd, st, tree.entries(fd, real), dest, uid, gid, chmod)
            return
        if ins.keyword == "ADD" and copyfs.is_archive(fd):
            # unpacked below the destination's descriptor by the layer applier, which follows no symlink
            target = copyfs.make_dirs(root_fd, dest.rstrip("/") or "/", uid, gid)
            try:
                with open(fd_path(fd), "rb") as archive:
                    tarlayer.apply_layer(archive, Path(fd_path(target)), mode="merge")
            except SandboxError as e:
                raise self._error(ins, f"ADD {src.rel}: cannot unpack the archive: {e}") from None
            finally:
                os.close(target)
            return
        parent, name = copyfs.target(root_fd, dest, src.name, many, uid, gid)
        try:
            made = copyfs.copy_entry(fd, st, parent, name, uid, gid, chmod)
            if made is not None:
                os.close(made)
        finally:
            os.close(parent)

    def _owner(self, ins: Instruction, root: str, chown: str | None) -> tuple[int, int]:
        if not chown:
            return 0, 0
        from ..containers.setup import resolve_user
        try:
            uid, gid, _ = resolve_user(Path(root), chown)
        except SandboxError as e:
            raise self._error(ins, f"--chown={chown}: {Exception.__str__(e)}",
                              hint="use numbers (--chown=1000:1000) or names the image's /etc/passwd has") from None
        if ":" not in chown and not chown.split(":")[0].isdigit():
            return uid, gid
        if ":" not in chown:
            return uid, uid
        return uid, gid

    def _download(self, ins: Instruction, url: str) -> tuple[str, str, str]:
        import hashlib
        import urllib.error
        import urllib.request
        path = self._scratch() / f"download-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
        try:
            with urllib.request.urlopen(url, timeout=20) as resp, open(path, "wb") as out:  # noqa: S310
                h = hashlib.sha256()
                while True:
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise self._error(ins, f"ADD {url}: cannot download: {reason}",
                              hint="this machine may be offline: download the file into the build context "
                                   "and ADD or COPY it from there") from None
        return url, str(path), "sha256:" + h.hexdigest()
