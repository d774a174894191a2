"""Stand-ins for services the tests cannot reach (the Gemini API)."""
