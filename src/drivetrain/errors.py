"""The root of every exception drivetrain raises on purpose (a leaf: imports nothing of drivetrain).

``except drivetrain.DrivetrainError`` catches every error the package defines, and none that it
does not (a bug still surfaces as the built-in exception it is).  Each package keeps its own
subclasses next to the code that raises them; classes that were ``ValueError`` before keep that
base too, so existing ``except ValueError`` callers are unaffected.
"""

from __future__ import annotations


class DrivetrainError(Exception):
    """Base class of every exception drivetrain defines."""
