"""hooks of the exports provider."""
