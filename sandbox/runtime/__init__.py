"""An OCI runtime: a bundle (``config.json`` + rootfs) becomes a running process.

The engine never builds a process by hand: it writes a bundle whose
``config.json`` follows the OCI runtime spec (v1.1.0) and hands it to this
runtime (or to ``runc``).  The pieces:

* :mod:`sandbox.runtime.spec` -- Docker's defaults (14 capabilities, masked and
  read-only ``/proc`` paths, a minimal ``/dev``, namespaces, rlimits) turned into
  a ``config.json`` dict from a :class:`~sandbox.runtime.spec.ContainerOptions`.
* :mod:`sandbox.runtime.seccomp_profile` -- Docker's default seccomp policy as an
  OCI ``linux.seccomp`` object, and the converter for Docker-format profile files
  (``--security-opt seccomp=FILE``).

Both are pure: they read no host state except where a helper says so, so they
can be tested without root.
"""
