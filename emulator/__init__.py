"""The Aivvm-protocol emulator: a stand-in upstream with deterministic answers and faults.

Run it with ``python -m emulator --help`` (or ``aivbatch emulator``). It answers
``POST /api/chat`` with prose-like text streamed as raw UTF-8 chunks, lists the original
model table at ``GET /api/models``, and reports what it served at ``GET /_emulator/stats``.
Markers in message content (``[[emulator fault=429 times=1]]``) shape one request; see
``emulator.faults``. It always announces itself (header ``x-aivvm-emulator``).
"""
