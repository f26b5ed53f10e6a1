"""The kit's version, in a module of its own.

``sandbox.__version__`` re-exports it; the engine and the supervisor read it
from here, so nothing below the ``sandbox`` facade has to import the facade
(an arrow up, and a circle with the facade's own imports of the engine).
"""

__version__ = "0.1.0"
