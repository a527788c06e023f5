"""The provider's internals: no stable API, changed freely between releases.

The pure core (``api``: requests, parsing and error mapping; ``validation``; ``arguments``;
``submission``: the never-pay-twice lifecycle) and the local I/O helpers the shells share
(``media``, ``output_paths``, ``atomic_output``, ``object_storage``, ``assets``). What a DAG
author may import is listed in docs/public-api.md: the operator, decorator, hook,
trigger, exceptions, ``retry.RetryPolicy``, ``polling``'s event contract, ``pricing`` and
``webhooks``.
"""
