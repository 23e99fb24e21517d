"""links of the exports provider."""
