"""Use cases: async functions and small classes that depend only on the ports."""
