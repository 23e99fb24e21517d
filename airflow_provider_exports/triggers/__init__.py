"""triggers of the exports provider."""
