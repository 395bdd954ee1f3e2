"""Routes, one module per area."""
