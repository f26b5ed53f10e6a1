"""The limits an OCI bundle may ask for beyond Docker's everyday flags, as runc applies them.

``linux.resources`` has fields no ``docker run`` of a class sets but that
bundles written by other tools do: block I/O weights and throttles, huge page
limits, network class ids and priorities, RDMA, real-time CPU time, CPU
burst and idle, and raw cgroup v2 files
(``unified``).  Each is applied where this kernel has the file, and refused
with the field named where it has not, never dropped in silence.

Writing is planned first: :func:`plan_v1` and :func:`plan_v2` turn the
limits into a list of (file, value) writes, checking that every file exists
(a missing controller, a page size the kernel lacks, an I/O scheduler without
weights), so a refusal writes nothing.  The files and values are runc's
(libcontainer/cgroups/fs/{blkio,hugetlb,net_cls,net_prio,rdma,cpu}.go and
fs2/{io,hugetlb,rdma}.go):

==========================  =====================================  ==============================
field                       v1                                     v2
==========================  =====================================  ==============================
blockIO.weight              blkio.bfq.weight, else blkio.weight    io.bfq.weight, else io.weight
                                                                   (10..1000 -> 1..10000)
blockIO.leafWeight          blkio.leaf_weight (CFQ only)           refused: v2 has none
blockIO.weightDevice        blkio.[bfq.]weight_device "M:m W"      io.[bfq.]weight "M:m W"
blockIO.throttle*Device     blkio.throttle.{read,write}_           io.max "M:m rbps=N" ...
                            {bps,iops}_device "M:m RATE"           (0 is "max")
hugepageLimits              hugetlb.SIZE.limit_in_bytes            hugetlb.SIZE.max
network.classID/priorities  net_cls.classid, net_prio.ifpriomap    refused: v2 has none
rdma                        rdma.max "DEV hca_handle=N ..."        rdma.max
cpu.realtimePeriod/Runtime  cpu.rt_period_us, cpu.rt_runtime_us    refused: v2 has none
cpu.burst / cpu.idle        cpu.cfs_burst_us / cpu.idle            cpu.max.burst / cpu.idle
unified                     refused: v1 has no unified files       each KEY file in the group
==========================  =====================================  ==============================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CgroupUnavailable, InvalidResources

#: blkio weights (CFQ's range; BFQ accepts 1..1000, runc checks neither, Docker checks this one)
MIN_WEIGHT, MAX_WEIGHT = 10, 1000
THROTTLES = ("read_bps", "write_bps", "read_iops", "write_iops")
#: v2's io.max key for each throttle
_IO_MAX_KEY = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}
_PAGE_SIZE = re.compile(r"^[0-9]+[KMG]B$")

Write = tuple[Path, str]


@dataclass
class DeviceWeight:
    """blockIO.weightDevice[]: a weight (and CFQ's leaf weight) for one block device."""
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass
class DeviceThrottle:
    """blockIO.throttle{Read,Write}{Bps,IOPS}Device[]: ``kind`` is one of THROTTLES; 0 removes it."""
    kind: str
    major: int
    minor: int
    rate: int


@dataclass
class ExtraLimits:
    """The fields of the module docstring's table; None (or empty) leaves a setting alone."""

    blkio_weight: int | None = None
    blkio_leaf_weight: int | None = None
    blkio_weight_device: list[DeviceWeight] = field(default_factory=list)
    blkio_throttle: list[DeviceThrottle] = field(default_factory=list)
    #: page size as the kernel names it ("2MB", "1GB") -> limit in bytes
    hugetlb: dict[str, int] = field(default_factory=dict)
    net_classid: int | None = None
    #: interface name -> priority
    net_priorities: dict[str, int] = field(default_factory=dict)
    #: device name -> {"hca_handle": n, "hca_object": n} (either may be missing)
    rdma: dict[str, dict[str, int]] = field(default_factory=dict)
    cpu_rt_period: int | None = None
    cpu_rt_runtime: int | None = None
    cpu_burst: int | None = None
    cpu_idle: int | None = None
    #: v2 file name -> content
    unified: dict[str, str] = field(default_factory=dict)

    def requested(self) -> bool:
        return any(v is not None and v != [] and v != {} for v in vars(self).values())

    def validate(self) -> None:
        """InvalidResources for a value runc or the kernel would refuse, naming the OCI field."""
        for where, w in (("blockIO.weight", self.blkio_weight), ("blockIO.leafWeight", self.blkio_leaf_weight),
                         *((f"blockIO.weightDevice[{i}].weight", d.weight)
                           for i, d in enumerate(self.blkio_weight_device)),
                         *((f"blockIO.weightDevice[{i}].leafWeight", d.leaf_weight)
                           for i, d in enumerate(self.blkio_weight_device))):
            if w is not None and not MIN_WEIGHT <= w <= MAX_WEIGHT:
                raise InvalidResources(f"Range of blkio weight is from {MIN_WEIGHT} to {MAX_WEIGHT} "
                                       f"(linux.resources.{where} is {w})")
        for t in self.blkio_throttle:
            if t.kind not in THROTTLES or t.rate < 0:
                raise InvalidResources(f"invalid block I/O throttle {t.kind} {t.rate} for {t.major}:{t.minor}",
                                       hint="a rate is bytes or operations per second, 0 to remove it")
        for size, limit in self.hugetlb.items():
            if not _PAGE_SIZE.match(size):
                raise InvalidResources(f"linux.resources.hugepageLimits: page size {size!r} is not of the "
                                       "form 2MB or 1GB", hint="write the size as the kernel names it: 2MB, 1GB")
            if limit < 0:
                raise InvalidResources(f"linux.resources.hugepageLimits: the limit for {size} is negative")
        if self.cpu_idle not in (None, 0, 1):
            raise InvalidResources(f"linux.resources.cpu.idle must be 0 or 1, not {self.cpu_idle}")
        for name in self.net_priorities:
            if not name or " " in name or "/" in name:
                raise InvalidResources(f"linux.resources.network.priorities: {name!r} is not an interface name")
        for key in self.unified:
            if "/" in key or key.startswith(".") or "." not in key:
                raise InvalidResources(f"linux.resources.unified: {key!r} is not a cgroup v2 file name",
                                       hint="keys are file names in the group's directory, e.g. memory.high")


def _missing(field_name: str, what: str, hint: str) -> CgroupUnavailable:
    return CgroupUnavailable(f"cannot apply linux.resources.{field_name}: {what}", hint=hint)


def _first(d: Path, names: tuple[str, ...], field_name: str, what: str) -> Path:
    for name in names:
        if (d / name).exists():
            return d / name
    raise _missing(field_name, f"{what} (no {' or '.join(names)} in {d})",
                   "the device's I/O scheduler must be BFQ (or CFQ on old kernels) for weights: "
                   "echo bfq > /sys/block/DEV/queue/scheduler; or leave it unset")


def _file(d: Path | None, name: str, field_name: str, controller: str, version: str) -> Path:
    if d is None:
        raise _missing(field_name, f"the cgroup {version} {controller} controller is not available",
                       f"mount or enable the {controller} controller, or leave the field unset")
    if not (d / name).exists():
        raise _missing(field_name, f"this kernel has no {name} (in {d})",
                       "the kernel lacks the feature (a config option or a newer version); leave the field unset")
    return d / name


def plan_v1(x: ExtraLimits, dirs: dict[str, Path]) -> list[Write]:
    """The writes for cgroup v1 (controller directories ``dirs``), every file checked first."""
    out: list[Write] = []
    blkio = dirs.get("blkio")
    if x.blkio_weight is not None or x.blkio_weight_device or x.blkio_leaf_weight is not None or x.blkio_throttle:
        if blkio is None:
            raise _missing("blockIO", "the cgroup v1 blkio controller is not mounted",
                           "mount it: mount -t cgroup -o blkio cgroup /sys/fs/cgroup/blkio; or leave it unset")
    if x.blkio_weight is not None:
        assert blkio is not None
        out.append((_first(blkio, ("blkio.bfq.weight", "blkio.weight"), "blockIO.weight", "no I/O weights"),
                    str(x.blkio_weight)))
    if x.blkio_leaf_weight is not None:
        out.append((_file(blkio, "blkio.leaf_weight", "blockIO.leafWeight", "blkio", "v1"), str(x.blkio_leaf_weight)))
    for i, d in enumerate(x.blkio_weight_device):
        assert blkio is not None
        if d.weight is not None:
            f = _first(blkio, ("blkio.bfq.weight_device", "blkio.weight_device"),
                       f"blockIO.weightDevice[{i}]", "no per-device weights")
            out.append((f, f"{d.major}:{d.minor} {d.weight}"))
        if d.leaf_weight is not None:
            out.append((_file(blkio, "blkio.leaf_weight_device", f"blockIO.weightDevice[{i}].leafWeight",
                              "blkio", "v1"), f"{d.major}:{d.minor} {d.leaf_weight}"))
    for t in x.blkio_throttle:
        f = _file(blkio, f"blkio.throttle.{t.kind}_device", f"blockIO.throttle ({t.kind})", "blkio", "v1")
        out.append((f, f"{t.major}:{t.minor} {t.rate}"))
    for size, limit in x.hugetlb.items():
        out.append((_file(dirs.get("hugetlb"), f"hugetlb.{size}.limit_in_bytes", f"hugepageLimits ({size})",
                          "hugetlb", "v1"), str(limit)))
    if x.net_classid is not None:
        out.append((_file(dirs.get("net_cls"), "net_cls.classid", "network.classID", "net_cls", "v1"),
                    str(x.net_classid)))
    for name, prio in x.net_priorities.items():
        out.append((_file(dirs.get("net_prio"), "net_prio.ifpriomap", "network.priorities", "net_prio", "v1"),
                    f"{name} {prio}"))
    out += _rdma(x, dirs.get("rdma"), "v1")
    cpu = dirs.get("cpu")
    # period before runtime, as runc: a runtime above the old period would be refused
    if x.cpu_rt_period is not None:
        out.append((_file(cpu, "cpu.rt_period_us", "cpu.realtimePeriod", "cpu", "v1"), str(x.cpu_rt_period)))
    if x.cpu_rt_runtime is not None:
        out.append((_file(cpu, "cpu.rt_runtime_us", "cpu.realtimeRuntime", "cpu", "v1"), str(x.cpu_rt_runtime)))
    if x.cpu_burst is not None:
        out.append((_file(cpu, "cpu.cfs_burst_us", "cpu.burst", "cpu", "v1"), str(x.cpu_burst)))
    if x.cpu_idle is not None:
        out.append((_file(cpu, "cpu.idle", "cpu.idle", "cpu", "v1"), str(x.cpu_idle)))
    if x.unified:
        raise InvalidResources("linux.resources.unified needs cgroup v2; this host runs cgroup v1",
                               hint="move the settings to their v1 fields, or run on a cgroup v2 host")
    return out


def _rdma(x: ExtraLimits, d: Path | None, version: str) -> list[Write]:
    out = []
    for dev, limits in x.rdma.items():
        parts = [f"{key}={value}" for key, value in limits.items() if value is not None]
        if parts:
            out.append((_file(d, "rdma.max", f"rdma.{dev}", "rdma", version), f"{dev} {' '.join(parts)}"))
    return out


def io_weight(blkio_weight: int) -> int:
    """runc's blkio weight (10..1000) -> v2 io.weight (1..10000)."""
    return 1 + (blkio_weight - 10) * 9999 // 990


def plan_v2(x: ExtraLimits, path: Path, controllers: set[str]) -> list[Write]:
    """The writes for cgroup v2 (the group's directory ``path``), every file checked first."""
    out: list[Write] = []
    for name, value in (("blockIO.leafWeight", x.blkio_leaf_weight), ("network.classID", x.net_classid),
                        ("cpu.realtimePeriod", x.cpu_rt_period), ("cpu.realtimeRuntime", x.cpu_rt_runtime)):
        if value is not None:
            raise InvalidResources(f"linux.resources.{name} has no cgroup v2 equivalent",
                                   hint="leave it unset on a cgroup v2 host (runc refuses or ignores it too)")
    if x.net_priorities:
        raise InvalidResources("linux.resources.network.priorities has no cgroup v2 equivalent",
                               hint="leave it unset on a cgroup v2 host")
    if any(d.leaf_weight is not None for d in x.blkio_weight_device):
        raise InvalidResources("linux.resources.blockIO.weightDevice[].leafWeight has no cgroup v2 equivalent")
    io = path if "io" in controllers else None
    if x.blkio_weight is not None:
        f = _io_weight_file(io, "blockIO.weight")
        out.append((f, str(x.blkio_weight if f.name == "io.bfq.weight" else io_weight(x.blkio_weight))))
    for i, d in enumerate(x.blkio_weight_device):
        if d.weight is not None:
            f = _io_weight_file(io, f"blockIO.weightDevice[{i}]")
            w = d.weight if f.name == "io.bfq.weight" else io_weight(d.weight)
            out.append((f, f"{d.major}:{d.minor} {w}"))
    for t in x.blkio_throttle:
        f = _file(io, "io.max", f"blockIO.throttle ({t.kind})", "io", "v2")
        out.append((f, f"{t.major}:{t.minor} {_IO_MAX_KEY[t.kind]}={t.rate if t.rate else 'max'}"))
    for size, limit in x.hugetlb.items():
        out.append((_file(path if "hugetlb" in controllers else None, f"hugetlb.{size}.max",
                          f"hugepageLimits ({size})", "hugetlb", "v2"), str(limit)))
    out += _rdma(x, path if "rdma" in controllers else None, "v2")
    cpu = path if "cpu" in controllers else None
    if x.cpu_burst is not None:
        out.append((_file(cpu, "cpu.max.burst", "cpu.burst", "cpu", "v2"), str(x.cpu_burst)))
    if x.cpu_idle is not None:
        out.append((_file(cpu, "cpu.idle", "cpu.idle", "cpu", "v2"), str(x.cpu_idle)))
    for key, content in x.unified.items():
        if not (path / key).exists():
            controller = key.split(".")[0]
            raise _missing(f"unified[{key!r}]", f"{path} has no file {key}",
                           f"enable the {controller} controller for the group (cgroup.subtree_control of "
                           "its parent), or check the file's name")
        out.append((path / key, content))
    return out


def _io_weight_file(io: Path | None, field_name: str) -> Path:
    if io is None:
        raise _missing(field_name, "the cgroup v2 io controller is not available",
                       "enable it: echo +io > PARENT/cgroup.subtree_control; or leave it unset")
    return _first(io, ("io.bfq.weight", "io.weight"), field_name, "no I/O weights")
