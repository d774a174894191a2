"""Test support that tests and benchmarks import: the loopback fake Gemini server.

Nothing in the product imports this package; it lives under `rag/` so `bench/` and
`tests/` reach it as an ordinary import (`rag.testing.fake_gemini`) without path hacks.
"""
