"""The insights service of Vitalis."""
