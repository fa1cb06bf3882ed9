"""Store options for tests that use a healthy Redis and are not about timeouts.

The stores' defaults (0.25 s to connect and per command) are what production wants: a
slow Redis fails the call (closed or open, as the policy says) instead of holding the
request. On a loaded test machine, 25 concurrent calls opening connections can take
longer than that, and the budget then answers ``store_error``, which is right for
production and a flake for a test that counts admissions. Tests of timeouts pass their own.
"""

PATIENT = {"connect_timeout_s": 10.0, "command_timeout_s": 10.0}
