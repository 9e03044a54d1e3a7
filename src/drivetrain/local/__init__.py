"""``drivetrain up``: a graph's services as supervised processes on this machine."""
