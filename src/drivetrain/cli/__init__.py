"""The ``drivetrain`` command line (typer): ``main`` and one module per topic."""
