"""The HTTP API (`python -m rag.server`): answers streamed as Server-Sent Events, ingest jobs,
collections, costs, health and Prometheus metrics, for many users and several replicas.

It sits on top of the core like the UI does, but lives in `rag/` so it may import neither
`ingest/` nor `ui/`: ingest jobs are enqueued by task name and run by `python -m ingest.worker`,
and the Gradio UI is mounted at /ui through the `gemrag.mounts` entry point that `ui/`
declares, so dependencies keep pointing one way.
"""
