"""CI's own tooling for this repository (the deployment check): run from the repository root, in no wheel."""
