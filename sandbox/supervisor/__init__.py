"""The supervisor: one small single-threaded process per store that forks, reaps and logs.

From the top down: :mod:`server` is the process (``python -m sandbox.supervisor``:
the socket and the dispatch), :mod:`handlers` its requests by topic,
:mod:`adopt` the recovery after a restart, :mod:`core` the state, :mod:`box`
one container (with :mod:`boxio`, :mod:`health`, :mod:`mounts`, :mod:`execs`),
:mod:`host` what a box needs of the supervisor, and below them :mod:`conn`,
:mod:`events`, :mod:`reaping`, :mod:`loop` (the event loop) and
:mod:`protocol` (the socket format).  :mod:`client` is what the engine uses
to talk to it (and to start it on demand); :mod:`runc` drives runc instead of
our runtime; :mod:`ttykeeper` holds a terminal across supervisor restarts.
"""
