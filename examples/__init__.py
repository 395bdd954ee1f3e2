"""Runnable examples of tokenward.client (docs/resource-servers.md); tests/e2e/test_examples.py runs them."""
