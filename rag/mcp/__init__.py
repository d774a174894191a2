"""An MCP server (`python -m rag.mcp`) so coding agents and desktop assistants can search a
collection and ask it questions, over the same chain as the API and the UI."""
