"""The pure core: values, rules and decisions. No I/O, no asyncio, no frameworks."""
