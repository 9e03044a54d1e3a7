"""drivetrain: deploy distributed LLM inference graphs and the RL training beside them."""

__version__ = "0.1.0"
