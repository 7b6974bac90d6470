"""``make bench``: Vitalis measured against the physical limit and the stack users would pick instead."""
