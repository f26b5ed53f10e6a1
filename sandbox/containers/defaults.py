"""What a new container takes from its image, and the daemon-side checks of its limits.

Both run where the container is created: in the supervisor for a create that
names its image (it resolves the image itself, so a cold ``sandbox run``
never loads the image stack), and in the builder for RUN steps.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError


def merge_image_config(image_config: dict[str, Any], config: dict[str, Any],
                       command_given: bool) -> dict[str, Any]:
    """The container's Config: the image's defaults under what the user asked for.

    Docker's rules: ENV merges by name (the user's value wins); CMD comes
    from the image unless a command was given -- or an entrypoint was, which
    resets the image's CMD; labels, volumes and exposed ports are unions.
    """
    img = image_config or {}
    out = dict(config)
    env: dict[str, str] = {}
    for entry in list(img.get("Env") or []) + list(config.get("Env") or []):
        k, _, _ = entry.partition("=")
        env[k] = entry
    out["Env"] = list(env.values())
    entrypoint_given = config.get("Entrypoint") is not None
    if entrypoint_given:
        out["Entrypoint"] = list(config["Entrypoint"])
        if not command_given:
            out["Cmd"] = None
    else:
        out["Entrypoint"] = img.get("Entrypoint")
        if not command_given:
            out["Cmd"] = img.get("Cmd")
    for key in ("WorkingDir", "User", "StopSignal"):
        if not out.get(key) and img.get(key):
            out[key] = img[key]
    if out.get("Healthcheck") is None and img.get("Healthcheck"):
        out["Healthcheck"] = img["Healthcheck"]
    out["Labels"] = {**(img.get("Labels") or {}), **(config.get("Labels") or {})}
    volumes = {**(img.get("Volumes") or {}), **(config.get("Volumes") or {})}
    out["Volumes"] = volumes or None
    ports = {**(img.get("ExposedPorts") or {}), **(config.get("ExposedPorts") or {})}
    out["ExposedPorts"] = ports or None
    if not (out.get("Entrypoint") or out.get("Cmd")):
        raise UsageError("No command specified",
                         hint="give a command after the image name; this image has no CMD or ENTRYPOINT")
    return out


def check_resources(host: dict[str, Any]) -> None:
    """Refuse impossible limits before anything is made (docker's daemon-side checks)."""
    from ..cgroups import Resources
    from ..errors import CgroupError
    try:
        Resources(memory=host.get("Memory") or None, memory_swap=host.get("MemorySwap") or None,
                  memory_reservation=host.get("MemoryReservation") or None,
                  cpu_shares=host.get("CpuShares") or None, cpu_quota=host.get("CpuQuota") or None,
                  cpu_period=host.get("CpuPeriod") or None,
                  cpus=(host["NanoCpus"] / 1e9) if host.get("NanoCpus") else None,
                  cpuset_cpus=host.get("CpusetCpus") or None, cpuset_mems=host.get("CpusetMems") or None,
                  memory_swappiness=host.get("MemorySwappiness"),
                  pids_limit=host.get("PidsLimit")).validate()
    except CgroupError as e:
        raise UsageError(Exception.__str__(e), hint=e.hint) from None
