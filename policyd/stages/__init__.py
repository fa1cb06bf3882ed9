"""Decision stages: each compiles one section of a policy and runs it per request.

A stage is a small object with ``name`` and ``run(state)`` (and optionally
``arun``, ``record``); the engine only sequences them. See :mod:`.base`.
"""
