"""Analyses above both paths: why a target selects what it does (explain), the deactivation test (ablate)."""
