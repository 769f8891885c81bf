"""Plain-Python restatements of other simulators' rules, for differential tests."""
