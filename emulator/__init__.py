"""The emulator: a stand-in LLM upstream, deterministic answers and faults, two protocols.

Run it with ``python -m emulator --help`` (or ``aivbatch emulator``). One process serves,
on one port, the Aivvm protocol (``POST /api/chat`` answered with prose-like text streamed
as raw UTF-8 chunks, the original model table at ``GET /api/models``; ``emulator.aivvm``)
and the OpenAI protocol under ``/v1`` (``emulator.openai``). For tests it reports what it
served at ``GET /_emulator/stats`` and what it received at ``GET /_emulator/requests``.
Markers in message text (``[[emulator fault=429 times=1]]``) shape one request; see
``emulator.faults``. It always announces itself (headers ``x-aivvm-emulator`` and
``x-aivbatch-emulator``).
"""
