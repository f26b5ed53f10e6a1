"""Containers as the engine sees them: records, set-up, logs, volumes and the docker-py-shaped API.

The supervisor (:mod:`sandbox.supervisor`) runs them; this package holds what
both it and the clients need (:mod:`records`, :mod:`setup`, :mod:`logs`,
:mod:`volumes`) and the client-side API (:mod:`api`, :mod:`options`).
"""
