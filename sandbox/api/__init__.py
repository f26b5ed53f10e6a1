"""The Docker Engine API (1.41) over the engine: ``sandbox daemon``.

A third face of the engine beside the command line and the magics, and a
client of :class:`sandbox.Engine` like them: the routes parse a request,
call the engine and shape Docker's JSON.  :mod:`.http` is the HTTP layer
(h11), :mod:`.router` the routes and the errors, :mod:`.shapes` Docker's
documents, :mod:`.routes` the endpoints by topic, :mod:`.server` the
listening sockets and the threads.  Nothing here is imported by a cold
``sandbox run``.
"""
