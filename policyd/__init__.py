"""policyd: declarative policies for production LLM applications.

The public API lives here; everything else is an implementation module.
"""

__version__ = "0.1.0"
