"""transfers of the exports provider."""
