"""The technician's setup page: draw counting lines on the learned background, validate by tally (docs/setup.md)."""
