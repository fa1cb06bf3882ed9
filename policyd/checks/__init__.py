"""Semantic checks of one policy, one module per section of the policy format.

:mod:`policyd.validate` runs them (see :func:`policyd.validate.check_bundle`); each appends
:class:`policyd.diagnostics.Diagnostic` values to a shared :class:`~policyd.checks.base.Checker`
and never raises for a user's mistake.
"""
