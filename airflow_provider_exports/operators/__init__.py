"""operators of the exports provider."""
