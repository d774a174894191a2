"""Evaluation: how well retrieval and answers do on a test set, and whether a change made
them worse. Run it with `python -m rag.eval TESTSET`."""
