"""The documents service of Vitalis."""
