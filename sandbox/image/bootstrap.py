"""Offline base images: a classroom has no Docker Hub.

``busybox:latest`` is made from the host's static busybox binary (Debian's
busybox-static), laid out like the busybox image people know: the binary in
/bin with every applet hard-linked beside it, and a minimal /etc.  A
dynamically linked busybox would not run in an image with no libc, so it is
refused.  ``debian:bookworm`` comes from debootstrap (slow; it needs a Debian
mirror).

The result is reproducible: files and ``created`` take the busybox binary's
mtime (or ``SOURCE_DATE_EPOCH``), so bootstrapping twice on one host gives the
same image id.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import struct
import subprocess
from pathlib import Path

from ..errors import BootstrapError
from . import tarlayer
from .images import Image, ImageStore, new_config
from .layers import write_layer_blob

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/lib/initramfs-tools/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
"""
SHADOW = "".join(f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in PASSWD.splitlines())
#: The runtime bind-mounts the real /etc/hosts; this placeholder is what the image itself holds.
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def is_static_elf(path: Path) -> bool:
    """True if ``path`` is an ELF executable without a PT_INTERP program header."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            raise BootstrapError(f"{path} is not an ELF executable",
                                 hint="install Debian's busybox-static (apt install busybox-static)")
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, = struct.unpack(end + "Q", head[32:40])
            phentsize, phnum = struct.unpack(end + "HH", head[54:58])
        else:
            phoff, = struct.unpack(end + "I", head[28:32])
            phentsize, phnum = struct.unpack(end + "HH", head[42:46])
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(end + "I", f.read(4))
            if p_type == 3:  # PT_INTERP: needs a dynamic loader
                return False
    return True


def find_busybox(binary: str | None = None) -> Path:
    """The static busybox to use: ``binary`` if given, else the first one found on the host."""
    candidates = [binary] if binary else [c for c in BUSYBOX_CANDIDATES if os.path.exists(c)]
    if not candidates:
        raise BootstrapError("no busybox binary found on this host",
                             hint="install Debian's busybox-static (apt install busybox-static)")
    path = Path(os.path.realpath(candidates[0]))
    if not path.is_file():
        raise BootstrapError(f"{candidates[0]} does not exist", hint="give the path of a static busybox binary")
    if not is_static_elf(path):
        raise BootstrapError(f"{path} is dynamically linked and cannot run in an image without a C library",
                             hint="install Debian's busybox-static (apt install busybox-static), "
                                  "or pass --binary with a static busybox")
    return path


def _applets(busybox: Path) -> list[str]:
    try:
        out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BootstrapError(f"cannot list the applets of {busybox}: {e}") from None
    names = sorted({n.strip() for n in out.split() if n.strip() and "/" not in n})
    return [n for n in names if n != "busybox"]


def _version(busybox: Path) -> str:
    out = subprocess.run([str(busybox)], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out else "BusyBox"
    return first.split(" multi-call")[0].strip()


def _busybox_tree(root: Path, busybox: Path, epoch: int) -> None:
    for d, mode in [("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("lib", 0o755),
                    ("proc", 0o555), ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755),
                    ("usr/sbin", 0o755), ("var", 0o755), ("var/spool", 0o755),
                    ("var/spool/mail", 0o755), ("var/www", 0o755)]:
        (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / d, mode)
    target = root / "bin" / "busybox"
    shutil.copyfile(busybox, target)
    os.chmod(target, 0o755)
    for applet in _applets(busybox):
        os.link(target, root / "bin" / applet)
    for name, text, mode in [("passwd", PASSWD, 0o644), ("group", GROUP, 0o644),
                             ("shadow", SHADOW, 0o640), ("hosts", HOSTS, 0o644)]:
        (root / "etc" / name).write_text(text)
        os.chmod(root / "etc" / name, mode)
    as_root = os.geteuid() == 0  # without root the layer writer maps our own files to 0:0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if as_root:
                os.lchown(path, 0, 0)
            os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def _rfc3339(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bootstrap_busybox(images: ImageStore, *, tag: str = "busybox:latest", binary: str | None = None) -> Image:
    """Build ``busybox:latest`` from the host's static busybox."""
    busybox = find_busybox(binary)
    epoch = tarlayer.source_date_epoch() or int(busybox.stat().st_mtime)
    version = _version(busybox)
    with images.store.scratch("bootstrap-") as tmp:
        root = tmp / "rootfs"
        root.mkdir()
        _busybox_tree(root, busybox, epoch)
        with images.store.transaction():
            layer = write_layer_blob(images.store, lambda out: tarlayer.write_tree(root, out, epoch=epoch))
            created = _rfc3339(epoch)
            config = new_config([layer], [
                {"created": created, "created_by": f"BOOTSTRAP {busybox} ({version}) /"},
                {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
            ], config={"Env": [DEFAULT_PATH], "Cmd": ["sh"]}, created=created)
            return images.create(config, [layer], tags=[tag])


def bootstrap_debian(images: ImageStore, *, suite: str = "bookworm", tag: str | None = None,
                     mirror: str | None = None) -> Image:
    """Build ``debian:SUITE`` with debootstrap (minbase).  Needs root and a Debian mirror."""
    if shutil.which("debootstrap") is None:
        raise BootstrapError("debootstrap is not installed", hint="apt install debootstrap")
    if os.geteuid() != 0:
        raise BootstrapError("debootstrap needs root", hint="run 'sandbox bootstrap debian' as root")
    with images.store.scratch("debootstrap-") as tmp:
        root = tmp / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", suite, str(root)] + ([mirror] if mirror else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join(proc.stdout.strip().splitlines()[-3:] + proc.stderr.strip().splitlines()[-3:])
            raise BootstrapError(f"debootstrap {suite} failed (exit {proc.returncode}): {tail}",
                                 hint="check that a Debian mirror is reachable, or pass --mirror URL")
        # Like Docker's debian image: no package caches, and an empty /dev (the
        # runtime mounts its own; device nodes in a layer are only trouble).
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "dev"):
            for entry in (root / sub).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.is_file() or entry.is_symlink() or entry.exists() or os.path.lexists(entry):
                    entry.unlink()
        epoch = tarlayer.source_date_epoch()
        with images.store.transaction():
            layer = write_layer_blob(images.store, lambda out: tarlayer.write_tree(root, out, epoch=epoch))
            config = new_config([layer], [
                {"created_by": f"BOOTSTRAP debootstrap --variant=minbase {suite} /"},
                {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True}],
                config={"Env": [DEFAULT_PATH], "Cmd": ["bash"]})
            for entry in config["history"]:
                entry["created"] = config["created"]
            return images.create(config, [layer], tags=[tag or f"debian:{suite}"])
