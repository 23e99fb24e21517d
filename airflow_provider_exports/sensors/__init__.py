"""sensors of the exports provider."""
