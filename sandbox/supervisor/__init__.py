"""The supervisor: one small single-threaded process per store that forks, reaps and logs.

:mod:`server` is the process (``python -m sandbox.supervisor``), :mod:`box`
one container inside it, :mod:`loop` its event loop, :mod:`protocol` the
socket format and :mod:`client` what the engine uses to talk to it (and to
start it on demand).
"""
