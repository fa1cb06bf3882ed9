"""Decision stages: each compiles one section of a policy and runs it per request.

A stage has a ``name``, declares the decision fields it ``writes``, and does its work
in ``run(state)``, or in ``flow(state)`` when it needs I/O (:mod:`.flow`); the contract
is in :mod:`.base`, the ordered list in :mod:`policyd.pipeline`.
"""
