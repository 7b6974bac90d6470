"""File importers: each turns a file into a stream of import items, in bounded memory."""
